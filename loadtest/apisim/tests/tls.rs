//! HTTPS serving: a client that trusts the serving CA works through `kube::Client`; a client trusting
//! another CA, or speaking plain HTTP, does not; a reloaded certificate is served to new connections.

use apisim::tls::TlsConfig;
use apisim::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

struct Ca {
    pem: String,
    params: CertificateParams,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("ca key: {e}"));
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("ca cert: {e}"));
    Ca {
        pem: cert.pem(),
        params,
        key,
    }
}

fn serving(ca: &Ca) -> TlsConfig {
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "apisim");
    params.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params
        .signed_by(&key, &issuer)
        .unwrap_or_else(|e| panic!("cert: {e}"));
    TlsConfig {
        cert_chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: Some(ca.pem.clone()),
    }
}

async fn client(yaml: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(yaml).unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("config: {e}"));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("client: {e}"))
}

#[tokio::test]
async fn https_verifies_against_the_configured_ca_only() {
    let ca_a = ca("ca-a");
    let sim = Simulator::start(SimConfig {
        tls: Some(serving(&ca_a)),
        ..SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start: {e}"));
    assert!(sim.url().starts_with("https://127.0.0.1:"), "{}", sim.url());
    let yaml = sim.kubeconfig_yaml("tls");
    assert!(yaml.contains("certificate-authority-data"), "{yaml}");
    assert!(!yaml.contains("insecure-skip-tls-verify"), "{yaml}");

    let namespaces: Api<Namespace> = Api::all(client(&yaml).await);
    let list = namespaces
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("list over https: {e}"));
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );

    // A client trusting another CA refuses the server.
    let ca_b = ca("ca-b");
    use base64::Engine as _;
    let wrong = yaml.replace(
        &base64::engine::general_purpose::STANDARD.encode(&ca_a.pem),
        &base64::engine::general_purpose::STANDARD.encode(&ca_b.pem),
    );
    assert_ne!(wrong, yaml);
    let refused: Api<Namespace> = Api::all(client(&wrong).await);
    assert!(refused.list(&Default::default()).await.is_err());

    // Plain HTTP to the TLS port gets no API answer.
    let plain = yaml.replace("https://", "http://");
    let plain: Api<Namespace> = Api::all(client(&plain).await);
    assert!(plain.list(&Default::default()).await.is_err());

    // After a reload to a certificate from CA b, clients trusting b connect.
    sim.reload_tls(&serving(&ca_b))
        .unwrap_or_else(|e| panic!("reload: {e}"));
    let after: Api<Namespace> = Api::all(client(&sim.kubeconfig_yaml("tls")).await);
    after
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("list after reload: {e}"));
    sim.shutdown().await;
}

#[tokio::test]
async fn unparsable_pem_is_a_config_error() {
    let result = Simulator::start(SimConfig {
        tls: Some(TlsConfig {
            cert_chain_pem: "not a pem".into(),
            key_pem: "nope".into(),
            ca_pem: None,
        }),
        ..SimConfig::default()
    })
    .await;
    assert!(matches!(result, Err(apisim::SimError::Config(_))));
}
