//! PEM parsing and the rustls configurations of the agent: its serving side (client certificates requested,
//! verified per tenant after the handshake) and its client side towards the kubelet.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// Errors reading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input held no usable item.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("{what}: {source}")]
    Rustls {
        /// Which configuration.
        what: &'static str,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider used everywhere (ring, as kube and tonic use).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM string (at least one).
pub fn certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate in the PEM".into(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM string.
pub fn key(what: &'static str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what,
        reason: e.to_string(),
    })
}

/// A root store holding every certificate of a PEM bundle.
pub fn roots(what: &'static str, pem: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(what, pem)? {
        store
            .add(cert)
            .map_err(|source| TlsError::Rustls { what, source })?;
    }
    Ok(store)
}

/// Serving configuration: the agent's certificate; a client certificate is requested but its chain is checked
/// after the handshake against the CA of the tenant it names ([`crate::identity::TenantCas`]), so that a
/// refused caller gets an HTTP 401 (with a metric and a log line) rather than a bare handshake failure. The
/// handshake still proves the client holds the certificate's private key.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(DeferredClientAuth {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "serving TLS versions",
            source,
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs("serving certificate", cert_pem)?,
            key("serving key", key_pem)?,
        )
        .map_err(|source| TlsError::Rustls {
            what: "serving certificate",
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client configuration towards the kubelet: the agent's kubelet-client certificate, and the kubelet's serving
/// certificate verified against `kubelet_ca_pem` (never skipped).
pub fn kubelet_client_config(
    kubelet_ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "kubelet TLS versions",
            source,
        })?
        .with_root_certificates(roots("kubelet CA", kubelet_ca_pem)?)
        .with_client_auth_cert(
            certs("kubelet client certificate", cert_pem)?,
            key("kubelet client key", key_pem)?,
        )
        .map_err(|source| TlsError::Rustls {
            what: "kubelet client certificate",
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Requests a client certificate and checks the handshake signature with it; the chain itself is verified
/// per tenant by [`crate::identity::TenantCas::authenticate`] before anything is served.
#[derive(Debug)]
struct DeferredClientAuth {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
