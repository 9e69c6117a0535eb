//! Forwarding a translated request: the [`Forwarder`] trait and its direct-to-kubelet implementation
//! ([`KubeletForwarder`]: mutual TLS with the agent's kubelet-client certificate; the kubelet's serving
//! certificate verified against a configured CA). The other implementation goes through the super API server
//! ([`crate::apiserver::ApiServerForwarder`]).
//!
//! Response bodies are streamed, never buffered; dropping the response closes the upstream connection. An
//! upstream `101 Switching Protocols` keeps its upgrade handle in the response extensions, so the caller can
//! take it with `hyper::upgrade::on`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, combinators::UnsyncBoxBody};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use crate::route::{Verb, kubelet_path};

/// Boxed error of streamed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed response body.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// The future a [`Forwarder`] returns.
pub type ForwardFuture<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<UpstreamBody>, ForwardError>> + Send + 'a>>;

/// Longest wait for the TCP connection and TLS handshake to the kubelet.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// TCP or TLS connection to the upstream failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Upstream address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// HTTP exchange failed.
    #[error("upstream HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// The API server client failed.
    #[error("API server: {0}")]
    Kube(#[from] kube::Error),
    /// An upgraded stream the agent reads itself (`/run` in API-server mode) failed.
    #[error("stream: {0}")]
    Stream(String),
    /// This forwarding mode cannot serve the verb.
    #[error("{0} is not available in this forwarding mode")]
    Unsupported(&'static str),
}

/// A translated request, in super-cluster names, ready to be sent upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// What is asked.
    pub verb: Verb,
    /// Method of the caller's request (GET or POST).
    pub method: http::Method,
    /// Super namespace.
    pub namespace: String,
    /// Super pod name.
    pub pod: String,
    /// Super pod UID, when the caller used the `{podUID}` form and it is known.
    pub uid: Option<String>,
    /// Container, for everything but port forwarding.
    pub container: Option<String>,
    /// The allowed kubelet query parameters, values as received.
    pub query: Vec<(String, String)>,
    /// The protocol headers of a streaming upgrade (nothing of the caller's credentials).
    pub headers: http::HeaderMap,
}

/// Where translated requests go.
pub trait Forwarder: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `request` and returns the upstream response with its body still streaming (and, on a 101, its
    /// upgrade handle in the extensions).
    fn forward(&self, request: Upstream) -> ForwardFuture<'_>;

    /// Name of the mode for logs (`kubelet`, `apiserver`).
    fn mode(&self) -> &'static str;
}

/// Headers of the streaming protocols that pass to the upstream (request) and back to the caller (101
/// response): everything else, notably any credential of the caller, stays behind.
pub fn is_protocol_header(name: &http::HeaderName) -> bool {
    let name = name.as_str();
    name == "upgrade"
        || name == "connection"
        || name == "x-stream-protocol-version"
        || name.starts_with("sec-websocket-")
}

/// The protocol headers of `headers` (all values of each).
pub fn protocol_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for (name, value) in headers {
        if is_protocol_header(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// A kubelet endpoint reached over mutual TLS.
#[derive(Clone)]
pub struct KubeletForwarder {
    addr: String,
    server_name: ServerName<'static>,
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for KubeletForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletForwarder")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl KubeletForwarder {
    /// Forwarder to `addr` (`host:port`), verifying the kubelet certificate for `server_name`.
    pub fn new(addr: String, server_name: ServerName<'static>, tls: Arc<ClientConfig>) -> Self {
        KubeletForwarder {
            addr,
            server_name,
            tls,
        }
    }

    /// Sends `GET path_and_query` and returns the kubelet's response with its body still streaming.
    pub async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<http::Response<UpstreamBody>, ForwardError> {
        self.send(http::Method::GET, path_and_query, http::HeaderMap::new())
            .await
    }

    /// Sends one request on a fresh connection (upgrades enabled) with an empty body.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: http::HeaderMap,
    ) -> Result<http::Response<UpstreamBody>, ForwardError> {
        let connect_err = |source| ForwardError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
            let _ = tcp.set_nodelay(true);
            tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(self.server_name.clone(), tcp)
                .await
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect_err)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "kubelet connection ended");
            }
        });
        let mut request = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, self.server_name.to_str().as_ref())
            .body(Empty::<Bytes>::new())?;
        request.headers_mut().extend(headers);
        let response = sender.send_request(request).await?;
        Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
    }
}

impl Forwarder for KubeletForwarder {
    fn forward(&self, request: Upstream) -> ForwardFuture<'_> {
        Box::pin(async move {
            let path = kubelet_path(
                request.verb,
                &request.namespace,
                &request.pod,
                request.uid.as_deref(),
                request.container.as_deref(),
                &request.query,
            );
            self.send(request.method, &path, request.headers).await
        })
    }

    fn mode(&self) -> &'static str {
        "kubelet"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_protocol_headers_pass() {
        let mut caller = http::HeaderMap::new();
        for (name, value) in [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            (
                "sec-websocket-protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "channel.k8s.io"),
            ("authorization", "Bearer secret"),
            ("cookie", "session=1"),
            ("impersonate-user", "admin"),
            ("x-remote-user", "admin"),
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "tenant"),
        ] {
            caller.append(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        let passed = protocol_headers(&caller);
        let mut names: Vec<&str> = passed.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "connection",
                "sec-websocket-key",
                "sec-websocket-protocol",
                "sec-websocket-version",
                "upgrade",
                "x-stream-protocol-version"
            ]
        );
        assert_eq!(
            passed.get_all("x-stream-protocol-version").iter().count(),
            2
        );
    }
}
