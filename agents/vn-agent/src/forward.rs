//! Forwarding to the node's real kubelet over mutual TLS (the agent's kubelet-client certificate; the
//! kubelet's serving certificate verified against a configured CA). Response bodies are streamed, never
//! buffered; dropping the response closes the kubelet connection.

use std::sync::Arc;

use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// TCP or TLS connection to the kubelet failed.
    #[error("connecting to the kubelet at {addr}: {source}")]
    Connect {
        /// Kubelet address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// HTTP exchange failed.
    #[error("kubelet HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Request(#[from] http::Error),
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
    ) -> Result<http::Response<Incoming>, ForwardError> {
        let connect_err = |source| ForwardError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(connect_err)?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(connect_err)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "kubelet connection ended");
            }
        });
        let request = http::Request::get(path_and_query)
            .header(http::header::HOST, self.server_name.to_str().as_ref())
            .body(Empty::<bytes::Bytes>::new())?;
        Ok(sender.send_request(request).await?)
    }
}
