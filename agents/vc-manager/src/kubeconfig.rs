//! Kubeconfigs for a tenant API server: the cluster CA is always the tenant's root CA (never
//! `insecure-skip-tls-verify`), the user authenticates with a client certificate.

use base64::Engine as _;
use serde_json::json;

/// Everything a kubeconfig names.
#[derive(Clone, Debug)]
pub struct KubeconfigParts<'a> {
    /// Cluster, user and context name.
    pub name: &'a str,
    /// `https://host:port` of the tenant API server.
    pub server: &'a str,
    /// PEM of the CA that signed the server's certificate.
    pub ca_pem: &'a str,
    /// PEM client certificate.
    pub client_cert_pem: &'a str,
    /// PEM client key.
    pub client_key_pem: &'a str,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Renders the kubeconfig as YAML.
pub fn render(parts: &KubeconfigParts<'_>) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": parts.name, "cluster": {
            "server": parts.server,
            "certificate-authority-data": b64(parts.ca_pem),
        }}],
        "users": [{"name": parts.name, "user": {
            "client-certificate-data": b64(parts.client_cert_pem),
            "client-key-data": b64(parts.client_key_pem),
        }}],
        "contexts": [{"name": parts.name, "context": {"cluster": parts.name, "user": parts.name}}],
        "current-context": parts.name,
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// The server URL and CA PEM of a kubeconfig's current context, if it has them.
pub fn server_and_ca(yaml: &str) -> Option<(String, String)> {
    let config = kube::config::Kubeconfig::from_yaml(yaml).ok()?;
    let current = config.current_context.as_deref()?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)?
        .cluster
        .as_ref()?;
    let ca = cluster.certificate_authority_data.as_deref()?;
    let ca = base64::engine::general_purpose::STANDARD.decode(ca).ok()?;
    Some((cluster.server.clone()?, String::from_utf8(ca).ok()?))
}

/// A `kube::Client` for a kubeconfig given as YAML text.
pub async fn client(yaml: &str) -> Result<kube::Client, kube::Error> {
    let config = kube::config::Kubeconfig::from_yaml(yaml).map_err(kube::Error::InferKubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_verifying_kubeconfig() {
        let yaml = render(&KubeconfigParts {
            name: "t",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            client_cert_pem: "CERT",
            client_key_pem: "KEY",
        });
        assert!(!yaml.contains("insecure"));
        assert_eq!(
            server_and_ca(&yaml),
            Some(("https://127.0.0.1:6443".to_string(), "CA".to_string()))
        );
    }
}
