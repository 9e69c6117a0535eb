//! Writing and loading the kubeconfig file every backend exposes.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::TestClusterError;

/// Client TLS material embedded in a kubeconfig: the CA that signed the server certificate, and the
/// client certificate and key that authenticate the user.
#[derive(Debug, Clone)]
pub(crate) struct TlsClientMaterial {
    /// PEM of the CA certificate.
    pub(crate) ca_pem: String,
    /// PEM of the client certificate.
    pub(crate) cert_pem: String,
    /// PEM of the client key.
    pub(crate) key_pem: String,
}

/// A kubeconfig with one cluster, user and context named `name`, pointing at `server`.
///
/// With TLS material the server certificate is verified against the embedded CA (never
/// `insecure-skip-tls-verify`) and the user authenticates with the client certificate.
pub(crate) fn render(
    name: &str,
    server: &str,
    tls: &TlsClientMaterial,
) -> Result<String, TestClusterError> {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(&tls.ca_pem),
            },
        }],
        "users": [{
            "name": name,
            "user": {
                "client-certificate-data": STANDARD.encode(&tls.cert_pem),
                "client-key-data": STANDARD.encode(&tls.key_pem),
            },
        }],
        "contexts": [{
            "name": name,
            "context": { "cluster": name, "user": name, "namespace": "default" },
        }],
        "current-context": name,
        "preferences": {},
    });
    serde_yaml::to_string(&doc).map_err(TestClusterError::SerializeKubeconfig)
}

/// Writes `yaml` to `path`.
pub(crate) fn write(path: &Path, yaml: &str) -> Result<(), TestClusterError> {
    std::fs::write(path, yaml).map_err(|source| TestClusterError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The client configuration for the current context of the kubeconfig at `path`.
pub(crate) async fn config_from_file(path: &Path) -> Result<kube::Config, TestClusterError> {
    let kubeconfig_err = |source| TestClusterError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_err)
}

/// A fresh `kube::Client` for the current context of the kubeconfig at `path`.
pub(crate) async fn client_from_file(path: &Path) -> Result<kube::Client, TestClusterError> {
    let config = config_from_file(path).await?;
    kube::Client::try_from(config).map_err(TestClusterError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rendered_kubeconfig_loads_with_embedded_tls() -> anyhow::Result<()> {
        let tls = TlsClientMaterial {
            ca_pem: "CA".to_string(),
            cert_pem: "CERT".to_string(),
            key_pem: "KEY".to_string(),
        };
        let yaml = render("tc", "https://127.0.0.1:6443", &tls)?;
        let parsed = Kubeconfig::from_yaml(&yaml)?;
        assert_eq!(parsed.current_context.as_deref(), Some("tc"));
        let cluster = parsed.clusters[0].cluster.clone().unwrap_or_default();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.insecure_skip_tls_verify, None);
        let ca = STANDARD.decode(cluster.certificate_authority_data.unwrap_or_default())?;
        assert_eq!(ca, b"CA");
        let user = parsed.auth_infos[0].auth_info.clone().unwrap_or_default();
        let cert = STANDARD.decode(user.client_certificate_data.unwrap_or_default())?;
        assert_eq!(cert, b"CERT");
        Ok(())
    }
}
