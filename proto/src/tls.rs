//! Mutual TLS for the syncer's gRPC API.
//!
//! Both ends hold a certificate signed by one CA: the server requires a client certificate signed by its
//! client CA (`ServerTlsConfig::client_ca_root`), the client verifies the server against the same CA. A
//! [`TlsMaterial`] is the three PEM strings one end needs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tenancy_proto::{tls, v1::tenant_registry_client::TenantRegistryClient};
//! let material = tls::TlsMaterial::from_files(
//!     "syncer-data/grpc/ca.pem".as_ref(),
//!     "syncer-data/grpc/client.pem".as_ref(),
//!     "syncer-data/grpc/client-key.pem".as_ref(),
//! )?;
//! let channel = tls::connect("127.0.0.1:9465", Some(material.client_config(tls::DEFAULT_SERVER_NAME))).await?;
//! let mut registry = TenantRegistryClient::new(channel);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

/// The name clients verify the server certificate against by default (the generated server certificate
/// carries it, plus `127.0.0.1` and `::1`).
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// Errors building a TLS configuration or a channel.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM string holds no certificate or key.
    #[error("{what} is not PEM")]
    NotPem {
        /// Which input.
        what: &'static str,
    },
    /// The address is not a valid endpoint URI.
    #[error("invalid gRPC address {addr:?}")]
    Address {
        /// The address given.
        addr: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The TLS configuration was refused by the transport.
    #[error("invalid TLS configuration")]
    Config(#[source] tonic::transport::Error),
    /// The connection could not be established (including a failed TLS handshake).
    #[error("failed to connect to {addr}")]
    Connect {
        /// The address.
        addr: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
}

/// The PEM material of one end of a mutual-TLS connection.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// CA that signed the *other* end's certificate (server: the client CA; client: the server's CA).
    pub ca_pem: String,
    /// This end's certificate (chain).
    pub cert_pem: String,
    /// This end's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// From PEM strings; checks that each holds a PEM block.
    pub fn new(
        ca_pem: impl Into<String>,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Result<Self, TlsError> {
        let material = Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        };
        for (what, pem) in [
            ("CA", &material.ca_pem),
            ("certificate", &material.cert_pem),
            ("key", &material.key_pem),
        ] {
            if !pem.contains("-----BEGIN ") {
                return Err(TlsError::NotPem { what });
            }
        }
        Ok(material)
    }

    /// Reads the CA, certificate and key PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::new(read(ca)?, read(cert)?, read(key)?)
    }

    /// Server side: serve with this certificate and require client certificates signed by `ca_pem`.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
    }

    /// Client side: present this certificate and verify the server against `ca_pem` and `server_name`.
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The endpoint for `addr` (`host:port`, or a full `http://`/`https://` URI), with TLS when `tls` is given.
pub fn endpoint(addr: &str, tls: Option<ClientTlsConfig>) -> Result<Endpoint, TlsError> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else if tls.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|source| TlsError::Address {
        addr: addr.to_string(),
        source,
    })?;
    match tls {
        Some(tls) => endpoint.tls_config(tls).map_err(TlsError::Config),
        None => Ok(endpoint),
    }
}

/// Connects to the syncer's gRPC API at `addr` (TLS when `tls` is given; plain only against a server started
/// with `--grpc-insecure`).
pub async fn connect(addr: &str, tls: Option<ClientTlsConfig>) -> Result<Channel, TlsError> {
    endpoint(addr, tls)?
        .connect()
        .await
        .map_err(|source| TlsError::Connect {
            addr: addr.to_string(),
            source,
        })
}
