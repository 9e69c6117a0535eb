//! Who is calling: the tenant named by the client certificate's common name (its cluster key), accepted only
//! when the chain verifies under that tenant's kubelet-client CA.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

/// Why a caller was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No client certificate was presented.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate could not be parsed or has no common name.
    #[error("client certificate without a usable common name")]
    Malformed,
    /// The common name is not a registered tenant (or the tenant has no kubelet-client CA).
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// The chain does not verify under the tenant's CA.
    #[error("certificate for {tenant:?} not signed by its CA: {reason}")]
    Rejected {
        /// The tenant the certificate claims.
        tenant: String,
        /// The verifier's reason.
        reason: String,
    },
}

/// Errors registering a tenant CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The PEM bundle is unusable.
    #[error(transparent)]
    Pem(#[from] crate::tls::TlsError),
    /// rustls refused to build a verifier from it.
    #[error("verifier: {0}")]
    Verifier(String),
}

/// The kubelet-client CAs of the registered tenants, by cluster key.
#[derive(Default)]
pub struct TenantCas {
    verifiers: RwLock<HashMap<String, Arc<dyn ClientCertVerifier>>>,
}

impl std::fmt::Debug for TenantCas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCas")
            .field("tenants", &self.verifiers.read().len())
            .finish()
    }
}

impl TenantCas {
    /// Registers (or replaces) the CA bundle of `cluster_key`. An empty bundle removes the tenant: nobody can
    /// authenticate as a tenant without a CA.
    pub fn upsert(&self, cluster_key: &str, ca_pem: &str) -> Result<(), CaError> {
        if ca_pem.trim().is_empty() {
            self.remove(cluster_key);
            return Ok(());
        }
        let roots = crate::tls::roots("tenant kubelet-client CA", ca_pem)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .build()
                .map_err(|e| CaError::Verifier(e.to_string()))?;
        self.verifiers
            .write()
            .insert(cluster_key.to_string(), verifier);
        Ok(())
    }

    /// Forgets `cluster_key`.
    pub fn remove(&self, cluster_key: &str) {
        self.verifiers.write().remove(cluster_key);
    }

    /// Keeps only the tenants in `keys` (after a fresh snapshot).
    pub fn retain(&self, keys: &std::collections::HashSet<String>) {
        self.verifiers.write().retain(|k, _| keys.contains(k));
    }

    /// Number of tenants with a CA.
    pub fn len(&self) -> usize {
        self.verifiers.read().len()
    }

    /// True when no tenant is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tenant (cluster key) the presented chain (leaf first) proves, or why not.
    pub fn authenticate(&self, chain: &[CertificateDer<'static>]) -> Result<String, AuthError> {
        let (leaf, intermediates) = chain.split_first().ok_or(AuthError::NoCertificate)?;
        let tenant = common_name(leaf).ok_or(AuthError::Malformed)?;
        let verifier = self
            .verifiers
            .read()
            .get(&tenant)
            .cloned()
            .ok_or_else(|| AuthError::UnknownTenant(tenant.clone()))?;
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| AuthError::Rejected {
                tenant: tenant.clone(),
                reason: e.to_string(),
            })?;
        Ok(tenant)
    }
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty()).then(|| cn.to_string())
}
