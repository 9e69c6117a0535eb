//! The HTTPS server: accept, authenticate the caller, parse the route, translate, forward, stream back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;

use crate::forward::KubeletForwarder;
use crate::identity::{AuthError, TenantCas};
use crate::metrics::{self as m, StreamGuard};
use crate::route::Route;
use crate::translate::{TranslateError, Translator};

/// Response body type of the agent.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// What the agent needs to serve.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Super node this agent runs on: pods placed elsewhere are refused. `None` accepts any node.
    pub node_name: Option<String>,
}

/// A running agent's shared state.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    translator: Arc<Translator>,
    kubelet: KubeletForwarder,
}

impl Agent {
    /// An agent translating with `translator` and forwarding to `kubelet`.
    pub fn new(
        config: AgentConfig,
        translator: Arc<Translator>,
        kubelet: KubeletForwarder,
    ) -> Arc<Self> {
        Arc::new(Agent {
            config,
            translator,
            kubelet,
        })
    }

    fn cas(&self) -> &TenantCas {
        self.translator.cas()
    }

    /// Serves HTTPS on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, tls: Arc<ServerConfig>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let agent = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(error) => {
                        tracing::info!(%peer, %error, "TLS handshake failed");
                        m::request("", "handshake", "unauthenticated");
                        return;
                    }
                };
                let chain: Arc<Vec<CertificateDer<'static>>> = Arc::new(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.to_vec())
                        .unwrap_or_default(),
                );
                let service = hyper::service::service_fn(move |req| {
                    let agent = agent.clone();
                    let chain = chain.clone();
                    async move { Ok::<_, Infallible>(agent.handle(peer, &chain, req).await) }
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await
                {
                    tracing::debug!(%peer, %error, "connection ended");
                }
            });
        }
    }

    /// Handles one request from a caller that presented `chain`.
    pub async fn handle(
        &self,
        peer: SocketAddr,
        chain: &[CertificateDer<'static>],
        req: http::Request<Incoming>,
    ) -> http::Response<Body> {
        let started = Instant::now();
        let tenant = match self.cas().authenticate(chain) {
            Ok(tenant) => tenant,
            Err(error) => {
                tracing::warn!(%peer, %error, path = req.uri().path(), "caller refused");
                let claimed = match &error {
                    AuthError::UnknownTenant(t) | AuthError::Rejected { tenant: t, .. } => {
                        t.as_str()
                    }
                    _ => "",
                };
                m::request(claimed, "unknown", "unauthenticated");
                return text(http::StatusCode::UNAUTHORIZED, "Unauthorized");
            }
        };
        let Some(route) = Route::parse(req.method(), req.uri().path(), req.uri().query()) else {
            m::request(&tenant, "unknown", "not_found");
            return text(http::StatusCode::NOT_FOUND, "404 page not found");
        };
        let verb = route.verb();
        let (namespace, pod) = route.pod();
        let loc = match self.translator.to_super(&tenant, namespace, pod).await {
            Ok(loc) => loc,
            Err(TranslateError::NotFound) => {
                tracing::warn!(%peer, %tenant, namespace, pod, "pod not found for tenant");
                m::request(&tenant, verb, "forbidden");
                return text(http::StatusCode::FORBIDDEN, "Forbidden");
            }
            Err(error @ TranslateError::Inconsistent(_)) => {
                tracing::error!(%tenant, namespace, pod, %error, "translation refused");
                m::request(&tenant, verb, "upstream_error");
                return text(http::StatusCode::BAD_GATEWAY, "translation inconsistent");
            }
            Err(error) => {
                tracing::warn!(%tenant, %error, "translation unavailable");
                m::request(&tenant, verb, "unavailable");
                return text(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "translation unavailable",
                );
            }
        };
        if let Some(node) = &self.config.node_name
            && &loc.node_name != node
        {
            tracing::warn!(%tenant, namespace, pod, pod_node = %loc.node_name, "pod is not on this node");
            m::request(&tenant, verb, "forbidden");
            return text(http::StatusCode::FORBIDDEN, "Forbidden");
        }
        let path = route.super_path(&loc.super_namespace, &loc.super_pod);
        let upstream = match self.kubelet.get(&path).await {
            Ok(resp) => resp,
            Err(error) => {
                tracing::warn!(%tenant, %error, "kubelet unreachable");
                m::request(&tenant, verb, "upstream_error");
                return text(http::StatusCode::BAD_GATEWAY, "kubelet unreachable");
            }
        };
        metrics::histogram!(m::DURATION, "verb" => verb).record(started.elapsed().as_secs_f64());
        m::request(&tenant, verb, "ok");
        tracing::debug!(%tenant, %path, status = %upstream.status(), "forwarded");
        let (parts, body) = upstream.into_parts();
        let guard = StreamGuard::new();
        let bytes = metrics::counter!(m::BYTES, "verb" => verb);
        let body = body
            .map_frame(move |frame| {
                let _held = &guard;
                if let Some(data) = frame.data_ref() {
                    bytes.increment(data.len() as u64);
                }
                frame
            })
            .boxed();
        http::Response::from_parts(parts, body)
    }
}

fn text(status: http::StatusCode, message: &'static str) -> http::Response<Body> {
    let mut resp = http::Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
