//! Optional HTTPS: a serving certificate (PEM) makes the instance speak TLS 1.2/1.3 (rustls, ring
//! provider, HTTP/1.1 over ALPN). The certificate can be replaced while serving ([`SimTls::reload`]): new
//! connections use the new one, open connections keep theirs.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Serving certificate of a simulator that speaks HTTPS.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_chain_pem: String,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// PEM of the CA that signed the chain, written into [`crate::Simulator::kubeconfig_yaml`] as
    /// `certificate-authority-data` so clients verify the server. `None` leaves verification to the
    /// client's own trust roots.
    pub ca_pem: Option<String>,
}

/// The live TLS state of one instance.
pub struct SimTls {
    server: RwLock<Arc<ServerConfig>>,
    ca_pem: RwLock<Option<String>>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

/// Builds a rustls server configuration from PEM.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, crate::SimError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(config.cert_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| crate::SimError::Config(format!("TLS certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(crate::SimError::Config(
            "TLS certificate chain: no certificate in the PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(config.key_pem.as_bytes())
        .map_err(|e| crate::SimError::Config(format!("TLS private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::SimError::Config(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| crate::SimError::Config(format!("TLS certificate: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

impl SimTls {
    /// Validates `config` and builds the serving state.
    pub fn new(config: &TlsConfig) -> Result<SimTls, crate::SimError> {
        Ok(SimTls {
            server: RwLock::new(server_config(config)?),
            ca_pem: RwLock::new(config.ca_pem.clone()),
        })
    }

    /// Replaces the serving certificate (and CA) for new connections.
    pub fn reload(&self, config: &TlsConfig) -> Result<(), crate::SimError> {
        let server = server_config(config)?;
        *self.server.write() = server;
        *self.ca_pem.write() = config.ca_pem.clone();
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.read().clone())
    }

    /// The CA PEM clients should trust, if known.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.read().clone()
    }
}
