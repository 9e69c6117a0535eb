//! HTTP/1.1 accept loop: one tokio task per instance accepting connections, one per connection, all
//! aborted when the instance is dropped. Each request goes through faults → routing → a handler.
//! With TLS configured, each connection first completes a rustls handshake (in its own task).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::FaultDecision;
use crate::handlers::{self, ApiRequest, Body, error_response, json_response};
use crate::routing::{self, Route};
use crate::state::ApiState;
use crate::status::ApiError;
use crate::tls::SimTls;
use crate::{admin, discovery};

/// The accept loop of one instance; dropping it aborts the loop and every connection it served.
pub struct ServerHandle {
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Starts accepting on `listener`.
    pub fn spawn(listener: TcpListener, state: Arc<ApiState>) -> ServerHandle {
        Self::spawn_with_tls(listener, state, None)
    }

    /// Starts accepting on `listener`, speaking TLS when `tls` is given.
    pub fn spawn_with_tls(
        listener: TcpListener,
        state: Arc<ApiState>,
        tls: Option<Arc<SimTls>>,
    ) -> ServerHandle {
        let task = tokio::spawn(accept_loop(listener, state, tls));
        ServerHandle { task: Some(task) }
    }

    /// Stops accepting, closes all connections and waits until the listening socket is closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ApiState>, tls: Option<Arc<SimTls>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    match &tls {
                        None => {
                            connections.spawn(serve_connection(stream, state.clone()));
                        }
                        Some(tls) => {
                            let acceptor = tls.acceptor();
                            let state = state.clone();
                            connections.spawn(async move {
                                match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => serve_connection(stream, state).await,
                                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!("TLS handshake timed out"),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

async fn serve_connection<S>(stream: S, state: Arc<ApiState>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req).await) }
    });
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn text_response(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Bytes of an oversized body read and thrown away before answering 413, so the client (still sending)
/// reads the answer instead of a reset connection (Go's server does the same with a bounded delay).
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
/// Time spent draining an oversized body at most.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads the body up to the configured limit (413 beyond it, after draining the rest within bounds).
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    let mut too_large = false;
    let mut seen: usize = 0;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    loop {
        let next = if too_large {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => break,
            }
        } else {
            body.frame().await
        };
        let Some(frame) = next else {
            break;
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) if too_large => {
                tracing::debug!(error = %e, "oversized body ended early");
                break;
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "failed to read the request body: {e}"
                )));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            too_large = true;
            buf = bytes::BytesMut::new();
            if seen > DRAIN_LIMIT {
                break;
            }
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(ApiError::too_large(limit))
    } else {
        Ok(buf.freeze())
    }
}

async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let route = routing::route(req.uri().path());
    let exempt = matches!(route, Route::Health | Route::Admin(_));
    if !exempt {
        if let Some(delay) = state.faults.latency() {
            tokio::time::sleep(delay).await;
        }
        match state.faults.decide() {
            FaultDecision::Pass => {}
            FaultDecision::ServerError => return error_response(&ApiError::injected_internal()),
            FaultDecision::TooManyRequests { retry_after } => {
                return error_response(&ApiError::too_many_requests(retry_after));
            }
        }
    }
    if let Route::Resource(path) = &route
        && let Some(sub) = crate::podproxy::proxied(path)
    {
        return crate::podproxy::handle(&state, path, sub, req).await;
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let get = parts.method == Method::GET;
    let result: Result<Response<Body>, ApiError> = match route {
        Route::Health => return text_response(StatusCode::OK, "ok"),
        Route::Api if get => Ok(json_response(
            StatusCode::OK,
            &discovery::api_versions(state.addr()),
        )),
        Route::CoreResources if get => discovery::api_resource_list(&state.registry, "", "v1")
            .map(|d| json_response(StatusCode::OK, &d)),
        Route::Apis if get => Ok(json_response(
            StatusCode::OK,
            &discovery::api_group_list(&state.registry),
        )),
        Route::Group(g) if get => {
            discovery::api_group(&state.registry, &g).map(|d| json_response(StatusCode::OK, &d))
        }
        Route::GroupVersion(g, v) if get => discovery::api_resource_list(&state.registry, &g, &v)
            .map(|d| json_response(StatusCode::OK, &d)),
        Route::Version if get => Ok(json_response(StatusCode::OK, &discovery::version())),
        Route::OpenApiV2 | Route::OpenApiV3(_) if get => crate::openapi_routes::serve(
            &state,
            &route,
            parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        ),
        Route::Admin(admin_route) => admin::handle(&state, &admin_route, &parts.method, &body),
        Route::Resource(path) => {
            let request = ApiRequest {
                method: parts.method.clone(),
                path,
                query: routing::parse_query(parts.uri.query()),
                content_type: header_str(&parts.headers, header::CONTENT_TYPE),
                accept: header_str(&parts.headers, header::ACCEPT),
                body,
            };
            return handlers::handle(&state, request).await;
        }
        Route::NotFound => return text_response(StatusCode::NOT_FOUND, "404 page not found\n"),
        _ => Err(ApiError::method_not_allowed()),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::faults::FaultConfig;
    use crate::{SimConfig, Simulator};

    /// Sends one HTTP/1.1 request (connection closed after it); returns the raw response.
    async fn raw(sim: &Simulator, method: &str, path: &str, body: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(sim.addr())
            .await
            .expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn faults_spare_health_and_admin() {
        let config = SimConfig {
            faults: FaultConfig {
                error_500_fraction: 1.0,
                ..FaultConfig::default()
            },
            ..SimConfig::default()
        };
        let sim = Simulator::start(config).await.expect("start");
        let health = raw(&sim, "GET", "/healthz", b"").await;
        assert!(
            health.starts_with("HTTP/1.1 200") && health.ends_with("ok"),
            "{health}"
        );
        let api = raw(&sim, "GET", "/api/v1/namespaces", b"").await;
        assert!(
            api.starts_with("HTTP/1.1 500") && api.contains("\"reason\":\"InternalError\""),
            "{api}"
        );
        let throttled = br#"{"error429Fraction": 1.0, "retryAfterSeconds": 7}"#;
        let set = raw(&sim, "PUT", "/apisim/v1/faults", throttled).await;
        assert!(set.starts_with("HTTP/1.1 200"), "{set}");
        let api = raw(&sim, "GET", "/api/v1/namespaces", b"").await;
        assert!(api.starts_with("HTTP/1.1 429"), "{api}");
        assert!(api.to_ascii_lowercase().contains("retry-after: 7"), "{api}");
        assert!(api.contains("\"retryAfterSeconds\":7"), "{api}");
        let got = raw(&sim, "GET", "/apisim/v1/faults", b"").await;
        assert!(got.contains("\"error429Fraction\":1.0"), "{got}");
        raw(&sim, "PUT", "/apisim/v1/faults", b"{}").await;
        let before = sim.revision();
        let compact = raw(&sim, "POST", "/apisim/v1/compact", b"").await;
        assert!(compact.starts_with("HTTP/1.1 200"), "{compact}");
        let watch = raw(
            &sim,
            "GET",
            &format!(
                "/api/v1/namespaces?watch=true&resourceVersion={}&timeoutSeconds=1",
                before - 1
            ),
            b"",
        )
        .await;
        assert!(
            watch.contains("\"code\":410"),
            "history is gone after compaction: {watch}"
        );
    }

    #[tokio::test]
    async fn oversized_bodies_and_unknown_paths() {
        let config = SimConfig {
            max_body_bytes: 1024,
            ..SimConfig::default()
        };
        let sim = Simulator::start(config).await.expect("start");
        let big = vec![b' '; 2048];
        let resp = raw(&sim, "POST", "/api/v1/namespaces/default/configmaps", &big).await;
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        assert!(
            resp.contains("Request entity too large: limit is 1024"),
            "{resp}"
        );
        let resp = raw(&sim, "GET", "/nothing/here", b"").await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
        let resp = raw(&sim, "GET", "/api/v1/widgets", b"").await;
        assert!(
            resp.starts_with("HTTP/1.1 404") && resp.contains("\"kind\":\"Status\""),
            "{resp}"
        );
        // A body far over the limit is drained, so the client reads the 413 rather than a reset.
        let huge = vec![b' '; 4 * 1024 * 1024];
        let resp = raw(&sim, "POST", "/api/v1/namespaces/default/configmaps", &huge).await;
        assert!(
            resp.starts_with("HTTP/1.1 413"),
            "{}",
            &resp[..resp.len().min(200)]
        );
        let version = raw(&sim, "GET", "/version", b"").await;
        assert!(
            version.contains("\"gitVersion\":\"v1.33.0-apisim\""),
            "{version}"
        );
        sim.shutdown().await;
    }
}
