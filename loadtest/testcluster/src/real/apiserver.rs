//! kube-apiserver on loopback, backed by an [`super::etcd::Etcd`], with the PKI of [`super::pki`].

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use super::pki::PkiFiles;
use super::process::ManagedProcess;
use crate::TestClusterError;

/// How long kube-apiserver may take to answer `/readyz` and create the `default` namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Service ClusterIP range given to the apiserver (kubeadm's default).
pub(crate) const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The first address of [`SERVICE_CIDR`]: the `kubernetes` Service's ClusterIP, a SAN of the serving cert.
pub(crate) const FIRST_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// What the apiserver needs from the rest of the cluster.
pub(crate) struct ApiserverInputs<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) etcd_url: String,
    pub(crate) port: u16,
    pub(crate) pki: &'a PkiFiles,
    pub(crate) dir: &'a Path,
}

/// Command-line flags: loopback only, RBAC, client certificates signed by our CA, service-account tokens
/// signed by our key. The `ServiceAccount` admission plugin is disabled because no controller creates
/// the `default` service account without kube-controller-manager (pods would be rejected).
fn apiserver_args(inputs: &ApiserverInputs<'_>, cert_dir: &Path) -> Vec<String> {
    let path = |p: &PathBuf| p.display().to_string();
    vec![
        format!("--etcd-servers={}", inputs.etcd_url),
        format!("--secure-port={}", inputs.port),
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".to_string(),
        format!("--cert-dir={}", cert_dir.display()),
        format!("--tls-cert-file={}", path(&inputs.pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&inputs.pki.serving_key)),
        format!("--client-ca-file={}", path(&inputs.pki.ca_cert)),
        "--authorization-mode=RBAC".to_string(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--disable-admission-plugins=ServiceAccount".to_string(),
        "--allow-privileged=true".to_string(),
        format!(
            "--service-account-key-file={}",
            path(&inputs.pki.sa_public_key)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&inputs.pki.sa_private_key)
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        "--profiling=false".to_string(),
    ]
}

/// A running kube-apiserver. Dropping it kills the process.
#[derive(Debug)]
pub(crate) struct Apiserver {
    process: ManagedProcess,
}

impl Apiserver {
    /// Starts the apiserver and waits until `/readyz` answers `ok` and the `default` namespace exists,
    /// using `client` (built from the admin kubeconfig) for the checks.
    pub(crate) async fn start(
        inputs: ApiserverInputs<'_>,
        client: &kube::Client,
    ) -> Result<Self, TestClusterError> {
        let cert_dir = inputs.dir.join("apiserver-certs");
        let process = ManagedProcess::spawn(
            "kube-apiserver",
            inputs.binary,
            &apiserver_args(&inputs, &cert_dir),
            &[],
            inputs.dir.join("kube-apiserver.log"),
        )?;
        let mut apiserver = Self { process };
        apiserver.wait_ready(client).await?;
        Ok(apiserver)
    }

    async fn wait_ready(&mut self, client: &kube::Client) -> Result<(), TestClusterError> {
        let started = Instant::now();
        let mut last_check = String::from("not probed yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(error) = self.process.exited_error() {
                return Err(error);
            }
            match ready_and_bootstrapped(client).await {
                Ok(()) => {
                    tracing::debug!(waited = ?started.elapsed(), "kube-apiserver ready");
                    return Ok(());
                }
                Err(check) => last_check = check,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Err(TestClusterError::NotReady {
            name: self.process.name(),
            waited: started.elapsed(),
            last_check,
            log_tail: self.process.log_tail(),
        })
    }

    /// The error to report if the process has exited.
    pub(crate) fn exited_error(&mut self) -> Option<TestClusterError> {
        self.process.exited_error()
    }
}

/// `Ok(())` once `/readyz` says `ok` and the bootstrap controller has created the `default` namespace.
async fn ready_and_bootstrapped(client: &kube::Client) -> Result<(), String> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| format!("building /readyz request: {e}"))?;
    let body = client
        .request_text(request)
        .await
        .map_err(|e| format!("/readyz: {e}"))?;
    if body.trim() != "ok" {
        return Err(format!("/readyz answered {body:?}"));
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt("default").await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("namespace default does not exist yet".to_string()),
        Err(e) => Err(format!("get namespace default: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_bind_loopback_and_wire_the_pki() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let pki = super::super::pki::generate(dir.path(), FIRST_SERVICE_IP)?;
        let inputs = ApiserverInputs {
            binary: Path::new("/kube-apiserver"),
            etcd_url: "http://127.0.0.1:2379".to_string(),
            port: 6443,
            pki: &pki,
            dir: dir.path(),
        };
        let args = apiserver_args(&inputs, &dir.path().join("certs"));
        let has = |prefix: &str| args.iter().any(|a| a.starts_with(prefix));
        for expected in [
            "--etcd-servers=http://127.0.0.1:2379",
            "--secure-port=6443",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--disable-admission-plugins=ServiceAccount",
            "--tls-cert-file=",
            "--client-ca-file=",
            "--service-account-key-file=",
            "--service-account-signing-key-file=",
            "--service-account-issuer=",
        ] {
            assert!(has(expected), "{expected} missing from {args:?}");
        }
        Ok(())
    }
}
