//! Optional kube-controller-manager: with it, namespace deletion completes and service accounts exist.

use std::path::Path;
use std::time::Duration;

use super::pki::PkiFiles;
use super::process::ManagedProcess;
use crate::TestClusterError;

/// How long the process must stay up after start to count as started (it has no cheap readiness probe
/// without serving HTTPS; its controllers start within seconds and tests wait for their effects).
const SETTLE: Duration = Duration::from_millis(500);

/// Command-line flags: talk to the apiserver as admin, no leader election, no HTTPS endpoint of its own.
fn controller_manager_args(kubeconfig: &Path, pki: &PkiFiles) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".to_string(),
        "--secure-port=0".to_string(),
        "--use-service-account-credentials=false".to_string(),
        format!(
            "--service-account-private-key-file={}",
            pki.sa_private_key.display()
        ),
        format!("--root-ca-file={}", pki.ca_cert.display()),
    ]
}

/// A running kube-controller-manager. Dropping it kills the process.
#[derive(Debug)]
pub(crate) struct ControllerManager {
    process: ManagedProcess,
}

impl ControllerManager {
    /// Starts kube-controller-manager against the apiserver described by `kubeconfig`.
    pub(crate) async fn start(
        binary: &Path,
        kubeconfig: &Path,
        pki: &PkiFiles,
        dir: &Path,
    ) -> Result<Self, TestClusterError> {
        let mut process = ManagedProcess::spawn(
            "kube-controller-manager",
            binary,
            &controller_manager_args(kubeconfig, pki),
            &[],
            dir.join("kube-controller-manager.log"),
        )?;
        tokio::time::sleep(SETTLE).await;
        if let Some(error) = process.exited_error() {
            return Err(error);
        }
        Ok(Self { process })
    }

    /// The error to report if the process has exited.
    pub(crate) fn exited_error(&mut self) -> Option<TestClusterError> {
        self.process.exited_error()
    }
}
