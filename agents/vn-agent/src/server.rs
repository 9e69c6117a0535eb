//! The HTTPS server: accept, authenticate the caller, parse the route, translate, forward, stream back (or
//! splice an upgraded connection).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;

use crate::forward::{BoxError, ForwardError, Forwarder, Upstream, protocol_headers};
use crate::identity::{AuthError, TenantCas};
use crate::metrics::{self as m, StreamGuard};
use crate::route::{self, Route, Verb};
use crate::translate::{TranslateError, Translator};
use crate::{pods, splice};

/// Response body type of the agent.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

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
    forwarder: Arc<dyn Forwarder>,
}

impl Agent {
    /// An agent translating with `translator` and forwarding with `forwarder` (to the kubelet or through the
    /// API server).
    pub fn new(
        config: AgentConfig,
        translator: Arc<Translator>,
        forwarder: impl Forwarder,
    ) -> Arc<Self> {
        Self::with_forwarder(config, translator, Arc::new(forwarder))
    }

    /// Like [`Agent::new`] with a shared forwarder.
    pub fn with_forwarder(
        config: AgentConfig,
        translator: Arc<Translator>,
        forwarder: Arc<dyn Forwarder>,
    ) -> Arc<Self> {
        Arc::new(Agent {
            config,
            translator,
            forwarder,
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
        mut req: http::Request<Incoming>,
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
        let mut route = match Route::parse(req.method(), req.uri().path(), req.uri().query()) {
            Some(Route::Pod(route)) => route,
            Some(Route::Pods) => return self.pods(&tenant).await,
            None => {
                m::request(&tenant, "unknown", "not_found");
                return text(http::StatusCode::NOT_FOUND, "404 page not found");
            }
        };
        let verb = route.verb.as_str();
        if route.verb == Verb::Run && !route.query.iter().any(|(k, _)| k == "cmd") {
            // `curl -d cmd=…` style: the command is in a small form body.
            match read_small_body(req.body_mut()).await {
                Some(body) => route
                    .query
                    .extend(route::form_params(&body, route::RUN_PARAMS)),
                None => {
                    m::request(&tenant, verb, "bad_request");
                    return text(
                        http::StatusCode::BAD_REQUEST,
                        "unreadable or oversized body",
                    );
                }
            }
        }
        let (namespace, pod) = (route.namespace.as_str(), route.pod.as_str());
        let loc = match self.translator.to_super(&tenant, namespace, pod).await {
            Ok(loc) => loc,
            Err(TranslateError::NotFound) => {
                tracing::warn!(%peer, %tenant, namespace, pod, verb, "pod not found for tenant");
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
        if let Some(uid) = &route.uid
            && !loc.tenant_uid.is_empty()
            && uid != &loc.tenant_uid
        {
            tracing::warn!(%tenant, namespace, pod, uid, "pod UID does not match");
            m::request(&tenant, verb, "not_found");
            return text(http::StatusCode::NOT_FOUND, "pod not found");
        }
        let upgrade = route.verb.is_upgrade() && wants_upgrade(req.headers());
        let upstream_req = Upstream {
            verb: route.verb,
            method: req.method().clone(),
            namespace: loc.super_namespace.clone(),
            pod: loc.super_pod.clone(),
            uid: route
                .uid
                .as_ref()
                .and(Some(loc.super_uid.clone()))
                .filter(|u| !u.is_empty()),
            container: route.container.clone(),
            query: route.query.clone(),
            headers: if upgrade {
                protocol_headers(req.headers())
            } else {
                http::HeaderMap::new()
            },
        };
        let caller_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let mut upstream = match self.forwarder.forward(upstream_req).await {
            Ok(resp) => resp,
            Err(ForwardError::Unsupported(what)) => {
                m::request(&tenant, verb, "unsupported");
                tracing::info!(%tenant, what, mode = self.forwarder.mode(), "verb not available");
                return text(
                    http::StatusCode::NOT_IMPLEMENTED,
                    "not available in this forwarding mode",
                );
            }
            Err(error) => {
                tracing::warn!(%tenant, %error, mode = self.forwarder.mode(), "upstream unreachable");
                m::request(&tenant, verb, "upstream_error");
                return text(http::StatusCode::BAD_GATEWAY, "upstream unreachable");
            }
        };
        metrics::histogram!(m::DURATION, "verb" => verb).record(started.elapsed().as_secs_f64());
        let status = upstream.status();
        tracing::debug!(%tenant, verb, namespace = %loc.super_namespace, pod = %loc.super_pod, %status, "forwarded");
        if status == http::StatusCode::SWITCHING_PROTOCOLS {
            let Some(caller_upgrade) = caller_upgrade else {
                tracing::warn!(%tenant, verb, "upstream switched protocols unasked");
                m::request(&tenant, verb, "upstream_error");
                return text(http::StatusCode::BAD_GATEWAY, "unexpected upgrade");
            };
            m::request(&tenant, verb, "ok");
            let upstream_upgrade = hyper::upgrade::on(&mut upstream);
            let guard = StreamGuard::new(&tenant, verb);
            tokio::spawn(splice::splice(
                caller_upgrade,
                upstream_upgrade,
                verb,
                guard,
            ));
            let mut resp = http::Response::new(empty());
            *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
            *resp.headers_mut() = protocol_headers(upstream.headers());
            return resp;
        }
        m::request(
            &tenant,
            verb,
            if status.is_success() {
                "ok"
            } else {
                "upstream_status"
            },
        );
        let (parts, body) = upstream.into_parts();
        let guard = StreamGuard::new(&tenant, verb);
        let bytes = m::bytes(verb, "down");
        let body = body
            .map_frame(move |frame| {
                let _held = &guard;
                if let Some(data) = frame.data_ref() {
                    bytes.increment(data.len() as u64);
                }
                frame
            })
            .boxed_unsync();
        http::Response::from_parts(parts, body)
    }

    /// `GET /pods`: the caller's pods on this node in tenant names.
    async fn pods(&self, tenant: &str) -> http::Response<Body> {
        let Some(node) = &self.config.node_name else {
            m::request(tenant, "pods", "unavailable");
            return text(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "node name not configured",
            );
        };
        let answer = match self.translator.pods_on_node(tenant, node).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%tenant, %error, "pods on node unavailable");
                m::request(tenant, "pods", "unavailable");
                return text(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "translation unavailable",
                );
            }
        };
        let list = pods::pod_list(pods::visible(tenant, node, &answer));
        m::request(tenant, "pods", "ok");
        let mut resp = http::Response::new(
            Full::new(Bytes::from(list.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Largest request body the agent reads (a `/run` form).
const MAX_FORM: usize = 64 * 1024;

/// Reads a request body of at most [`MAX_FORM`] bytes as text; `None` when larger or broken.
async fn read_small_body(body: &mut Incoming) -> Option<String> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > MAX_FORM {
                return None;
            }
        }
    }
    String::from_utf8(buf).ok()
}

/// Whether the caller asks for a protocol upgrade (`Connection: Upgrade` plus an `Upgrade` header).
fn wants_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text(status: http::StatusCode, message: &'static str) -> http::Response<Body> {
    let mut resp = http::Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v),
            );
        }
        h
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(wants_upgrade(&headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "SPDY/3.1")
        ])));
        assert!(wants_upgrade(&headers(&[
            ("connection", "keep-alive"),
            ("connection", "upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!wants_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!wants_upgrade(&headers(&[("connection", "Upgrade")])));
        assert!(!wants_upgrade(&headers(&[
            ("connection", "upgraded"),
            ("upgrade", "websocket")
        ])));
    }
}
