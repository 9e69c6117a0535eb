//! Real etcd + kube-apiserver (+ optional kube-controller-manager) processes on loopback.
//!
//! Start-up order: etcd (wait for `/health`) → PKI → admin kubeconfig → kube-apiserver (wait for
//! `/readyz` and the `default` namespace) → kube-controller-manager if given. Drop order is the reverse.

pub(crate) mod apiserver;
pub(crate) mod controller_manager;
pub mod etcd;
pub(crate) mod http_probe;
pub(crate) mod pki;
pub(crate) mod ports;
pub(crate) mod process;

use std::path::{Path, PathBuf};

use apiserver::{Apiserver, ApiserverInputs, FIRST_SERVICE_IP};
use controller_manager::ControllerManager;
use etcd::Etcd;

use crate::TestClusterError;
use crate::kubeconfig::{self, TlsClientMaterial};

/// Start attempts for kube-apiserver when its port turns out to be taken.
const APISERVER_START_ATTEMPTS: usize = 3;

/// The binaries a real cluster runs.
#[derive(Debug, Clone)]
pub(crate) struct RealBinaries {
    pub(crate) apiserver: PathBuf,
    pub(crate) etcd: PathBuf,
    pub(crate) controller_manager: Option<PathBuf>,
}

/// A running real control plane. Fields drop in declaration order: controller-manager, apiserver, etcd.
#[derive(Debug)]
pub(crate) struct RealCluster {
    controller_manager: Option<ControllerManager>,
    apiserver: Apiserver,
    _etcd: Etcd,
}

impl RealCluster {
    /// Starts the control plane with all files under `dir` and writes the admin kubeconfig to
    /// `kubeconfig_path`.
    pub(crate) async fn start(
        binaries: &RealBinaries,
        dir: &Path,
        kubeconfig_path: &Path,
    ) -> Result<Self, TestClusterError> {
        let etcd = Etcd::start(&binaries.etcd, dir).await?;
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir).map_err(|source| TestClusterError::WriteFile {
            path: pki_dir.clone(),
            source,
        })?;
        let pki = pki::generate(&pki_dir, FIRST_SERVICE_IP)?;
        let mut attempt = 0;
        let apiserver = loop {
            attempt += 1;
            let started = Self::start_apiserver(binaries, dir, kubeconfig_path, &etcd, &pki).await;
            match started {
                Ok(apiserver) => break apiserver,
                // The free port may have been taken between probing and binding it: try another.
                Err(TestClusterError::Exited { ref log_tail, .. })
                    if attempt < APISERVER_START_ATTEMPTS
                        && log_tail.contains("address already in use") =>
                {
                    tracing::warn!(
                        attempt,
                        "kube-apiserver port was taken; retrying on another port"
                    );
                }
                Err(error) => {
                    // The error carries the apiserver's log; etcd's is printed here because the
                    // temporary directory holding it is removed when the caller drops it.
                    eprintln!("etcd log (last lines):\n{}", etcd.log_tail());
                    return Err(error);
                }
            }
        };
        let controller_manager = match &binaries.controller_manager {
            Some(binary) => {
                Some(ControllerManager::start(binary, kubeconfig_path, &pki, dir).await?)
            }
            None => None,
        };
        Ok(Self {
            controller_manager,
            apiserver,
            _etcd: etcd,
        })
    }

    /// Picks a port, writes the admin kubeconfig for it and starts kube-apiserver on it.
    async fn start_apiserver(
        binaries: &RealBinaries,
        dir: &Path,
        kubeconfig_path: &Path,
        etcd: &Etcd,
        pki: &pki::PkiFiles,
    ) -> Result<Apiserver, TestClusterError> {
        let port = ports::free_loopback_port().map_err(TestClusterError::FreePort)?;
        let yaml = kubeconfig::render(
            "testcluster",
            &format!("https://127.0.0.1:{port}"),
            &TlsClientMaterial {
                ca_pem: pki.ca_cert_pem.clone(),
                cert_pem: pki.admin_cert_pem.clone(),
                key_pem: pki.admin_key_pem.clone(),
            },
        )?;
        kubeconfig::write(kubeconfig_path, &yaml)?;
        let client = kubeconfig::client_from_file(kubeconfig_path).await?;
        Apiserver::start(
            ApiserverInputs {
                binary: &binaries.apiserver,
                etcd_url: etcd.client_url(),
                port,
                pki,
                dir,
            },
            &client,
        )
        .await
    }

    /// `true` when kube-controller-manager runs, so namespace deletion completes.
    pub(crate) fn has_controller_manager(&self) -> bool {
        self.controller_manager.is_some()
    }

    /// The error of the first component that has exited, if any.
    pub(crate) fn exited_error(&mut self) -> Option<TestClusterError> {
        if let Some(error) = self.apiserver.exited_error() {
            return Some(error);
        }
        self.controller_manager
            .as_mut()
            .and_then(ControllerManager::exited_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs etcd for real (when `ETCD_BIN` is set) and a stand-in apiserver that exits at once: the
    /// start-up must fail with the apiserver's own log, after writing a kubeconfig that verifies TLS.
    #[tokio::test]
    async fn apiserver_that_exits_fails_start_with_its_log() -> anyhow::Result<()> {
        let Some(etcd) = std::env::var_os(crate::ENV_ETCD_BIN) else {
            eprintln!("SKIPPED: ETCD_BIN is not set");
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let fake = dir.path().join("fake-apiserver");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"fake apiserver got $*\" >&2\nexit 2\n",
        )?;
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&fake)
            .status()?;
        let binaries = RealBinaries {
            apiserver: fake,
            etcd: etcd.into(),
            controller_manager: None,
        };
        let kubeconfig_path = dir.path().join("kubeconfig");
        let result = RealCluster::start(&binaries, dir.path(), &kubeconfig_path).await;
        match result {
            Err(TestClusterError::Exited { name, log_tail, .. }) => {
                assert_eq!(name, "kube-apiserver");
                assert!(
                    log_tail.contains("--etcd-servers=http://127.0.0.1:"),
                    "{log_tail}"
                );
            }
            other => panic!("expected the apiserver to be reported as exited, got {other:?}"),
        }
        let yaml = std::fs::read_to_string(&kubeconfig_path)?;
        assert!(yaml.contains("certificate-authority-data"), "{yaml}");
        assert!(!yaml.contains("insecure-skip-tls-verify"), "{yaml}");
        Ok(())
    }

    /// A stand-in for kube-apiserver: `openssl s_server` with the generated serving certificate,
    /// requiring a client certificate signed by the generated CA, serving `/readyz` and the `default`
    /// namespace from files. Its first start fails like a taken port. Start-up must complete, which
    /// proves the PKI, the kubeconfig (TLS verified against the CA, admin client certificate), the
    /// readiness loop, the retry on a taken port and the process handling.
    #[tokio::test]
    async fn start_completes_against_a_tls_stand_in() -> anyhow::Result<()> {
        let Some(etcd) = std::env::var_os(crate::ENV_ETCD_BIN) else {
            eprintln!("SKIPPED: ETCD_BIN is not set");
            return Ok(());
        };
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: openssl is not installed");
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let www = dir.path().join("www");
        std::fs::create_dir_all(www.join("api/v1/namespaces"))?;
        std::fs::write(www.join("readyz"), "ok")?;
        std::fs::write(
            www.join("api/v1/namespaces/default"),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"}}"#,
        )?;
        let fake = dir.path().join("fake-apiserver");
        let script = format!(
            r#"#!/bin/sh
for a in "$@"; do
  case "$a" in
    --secure-port=*) PORT="${{a#*=}}" ;;
    --tls-cert-file=*) CERT="${{a#*=}}" ;;
    --tls-private-key-file=*) KEY="${{a#*=}}" ;;
    --client-ca-file=*) CA="${{a#*=}}" ;;
  esac
done
if [ ! -e "{www}/../first-attempt-done" ]; then
  touch "{www}/../first-attempt-done"
  echo "failed to listen on 127.0.0.1:$PORT: listen tcp 127.0.0.1:$PORT: bind: address already in use" >&2
  exit 1
fi
cd "{www}" || exit 1
exec openssl s_server -quiet -accept "127.0.0.1:$PORT" -cert "$CERT" -key "$KEY" \
  -CAfile "$CA" -Verify 1 -verify_return_error -WWW
"#,
            www = www.display()
        );
        std::fs::write(&fake, script)?;
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&fake)
            .status()?;
        let binaries = RealBinaries {
            apiserver: fake,
            etcd: etcd.into(),
            controller_manager: None,
        };
        let kubeconfig_path = dir.path().join("kubeconfig");
        let mut cluster = RealCluster::start(&binaries, dir.path(), &kubeconfig_path).await?;
        assert!(!cluster.has_controller_manager());
        assert!(cluster.exited_error().is_none());
        assert!(
            dir.path().join("first-attempt-done").exists(),
            "the failing first attempt did not run"
        );

        // A fresh client from the written kubeconfig reaches the server over verified TLS.
        let client = kubeconfig::client_from_file(&kubeconfig_path).await?;
        let body = client
            .request_text(http::Request::get("/readyz").body(Vec::new())?)
            .await?;
        assert_eq!(body, "ok");
        drop(cluster);
        Ok(())
    }
}
