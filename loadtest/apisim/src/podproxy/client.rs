//! The simulator's kubelet client: HTTPS with a configured client certificate, the kubelet's serving
//! certificate verified against a configured CA (like kube-apiserver's `--kubelet-client-certificate`,
//! `--kubelet-client-key`, `--kubelet-certificate-authority`). One connection per proxied request, HTTP/1.1
//! with upgrades (exec/attach/portforward switch protocols on it).
//!
//! The simulator only dials loopback kubelets (`127.0.0.0/8`, `::1`, `localhost`) unless
//! [`KubeletClientConfig::allow_non_loopback`] is set: nodes of the built-in kubelet advertise addresses
//! such as `172.18.0.2` that belong to no simulated machine.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::location::DEFAULT_ADDRESS_TYPES;

/// The kubelet port assumed when a node advertises none (kube-apiserver's `--kubelet-port` default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How the simulator reaches node kubelets for `pods/log`, `pods/exec`, `pods/attach` and
/// `pods/portforward`.
#[derive(Clone, Debug)]
pub struct KubeletClientConfig {
    /// PEM CA the kubelets' serving certificates must chain to (`--kubelet-certificate-authority`).
    pub ca_pem: String,
    /// PEM client certificate chain presented to kubelets (`--kubelet-client-certificate`); `None` = none.
    pub client_cert_pem: Option<String>,
    /// PEM key of the client certificate (`--kubelet-client-key`).
    pub client_key_pem: Option<String>,
    /// Node address types tried in order (`--kubelet-preferred-address-types`).
    pub preferred_address_types: Vec<String>,
    /// Port used when a node's `daemonEndpoints.kubeletEndpoint.Port` is 0 or absent.
    pub default_port: u16,
    /// Dial non-loopback node addresses too (off: such a dial fails like an unreachable kubelet).
    pub allow_non_loopback: bool,
}

impl KubeletClientConfig {
    /// Verifies kubelets against `ca_pem` and presents `cert_pem`/`key_pem`; default address types and port.
    pub fn new(ca_pem: String, cert_pem: String, key_pem: String) -> Self {
        KubeletClientConfig {
            ca_pem,
            client_cert_pem: Some(cert_pem),
            client_key_pem: Some(key_pem),
            preferred_address_types: DEFAULT_ADDRESS_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            default_port: DEFAULT_KUBELET_PORT,
            allow_non_loopback: false,
        }
    }
}

/// A ready kubelet client of one simulator instance.
pub struct KubeletClient {
    config: KubeletClientConfig,
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

/// Why a kubelet could not be dialed (rendered like Go's `dial tcp …` errors).
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The address is not on loopback and the configuration does not allow others.
    #[error("dial tcp {0}: the simulator only dials loopback kubelets")]
    NotLoopback(String),
    /// TCP connect failed.
    #[error("dial tcp {addr}: connect: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (e.g. the kubelet's certificate does not verify).
    #[error("tls: {0}")]
    Tls(std::io::Error),
    /// The host is neither an IP address nor a DNS name.
    #[error("invalid kubelet host {0:?}")]
    Host(String),
    /// The HTTP/1.1 handshake failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

fn parse_err(what: &str, e: impl std::fmt::Display) -> crate::SimError {
    crate::SimError::Config(format!("kubelet client {what}: {e}"))
}

impl KubeletClient {
    /// Parses the PEM material of `config`.
    pub fn new(config: &KubeletClientConfig) -> Result<KubeletClient, crate::SimError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(config.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| parse_err("CA", e))?;
            roots.add(cert).map_err(|e| parse_err("CA", e))?;
        }
        if roots.is_empty() {
            return Err(parse_err("CA", "no certificate in the PEM"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| parse_err("TLS versions", e))?
            .with_root_certificates(roots);
        let mut tls = match (&config.client_cert_pem, &config.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|e| parse_err("certificate", e))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| parse_err("key", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| parse_err("certificate", e))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(parse_err(
                    "certificate",
                    "a client certificate needs its key and the other way round",
                ));
            }
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            config: config.clone(),
            tls: Arc::new(tls),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &KubeletClientConfig {
        &self.config
    }

    /// Opens an HTTPS connection to `host:port` (the kubelet's certificate verified for `host`) and returns
    /// its request sender; the connection task supports upgrades and ends when sender and bodies are gone.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<SendRequest<Empty<Bytes>>, DialError> {
        let addr = join_host_port(host, port);
        let ip = host.parse::<IpAddr>().ok();
        let loopback = ip.is_some_and(|ip| ip.is_loopback()) || host == "localhost";
        if !loopback && !self.config.allow_non_loopback {
            return Err(DialError::NotLoopback(addr));
        }
        let server_name = match ip {
            Some(ip) => ServerName::IpAddress(ip.into()),
            None => {
                ServerName::try_from(host.to_string()).map_err(|_| DialError::Host(host.into()))?
            }
        };
        let tcp = match ip {
            Some(ip) => tokio::net::TcpStream::connect((ip, port)).await,
            None => tokio::net::TcpStream::connect((host, port)).await,
        }
        .map_err(|source| DialError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(DialError::Tls)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
        Ok(sender)
    }
}

/// `host:port`, IPv6 hosts in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
