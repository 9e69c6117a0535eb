//! Pod subresources proxied to the node's kubelet, like kube-apiserver does:
//!
//! * `GET pods/{name}/log` → kubelet `GET /containerLogs/{ns}/{pod}/{container}?…` (follow, previous,
//!   timestamps, sinceSeconds, sinceTime, tailLines, limitBytes), the answer streamed back unbuffered
//!   (`text/plain`); a kubelet error status becomes an API `Status` the way the real server maps it
//!   (400 → BadRequest with the kubelet's text, 500 → InternalError, others `NewGenericServerResponse`).
//!   The log of a pod without a node is an empty 200 answer (the real server's empty location).
//! * `GET|POST pods/{name}/exec|attach|portforward` with `Connection: Upgrade` → kubelet
//!   `/exec/{ns}/{pod}/{container}?command=…&input=1&output=1&error=1&tty=1`, `/attach/…`,
//!   `/portForward/{ns}/{pod}?port=…`: the upgrade request (SPDY or WebSocket headers as sent) is replayed to
//!   the kubelet; a `101 Switching Protocols` answer is relayed and both upgraded connections are spliced
//!   byte for byte; any other answer is relayed as is. A request without an upgrade is 400
//!   `Upgrade request required`.
//!
//! Errors before any kubelet is dialed: pod missing 404, container ambiguous or unknown 400, pod without a
//! node 400 `pod … does not have a host assigned` (exec/attach/portforward), node missing 404, node without
//! a preferred address 500. A kubelet that cannot be dialed: 500 with the dial error
//! (`Get "https://…": dial tcp …` for logs, `error dialing backend: …` for upgrades).
//! Targets come from [`location`], connections from [`client`]. A spliced stream lives in its own task
//! until both directions end; shutting the simulator down does not cut it.

pub mod client;
pub mod location;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;

pub use client::{KubeletClient, KubeletClientConfig};
pub use location::Subresource;

use crate::handlers::{Body, error_response};
use crate::routing::ResourcePath;
use crate::state::ApiState;
use crate::status::ApiError;

/// Longest kubelet error body read into a `Status` message.
const MAX_ERROR_BODY: usize = 4096;

/// The proxied subresource a resource path names, if any (`pods/{name}/log|exec|attach|portforward`).
pub fn proxied(path: &ResourcePath) -> Option<Subresource> {
    if !path.group.is_empty()
        || path.plural != "pods"
        || path.namespace.is_none()
        || path.name.is_none()
    {
        return None;
    }
    path.subresource.as_deref().and_then(Subresource::parse)
}

/// Serves one proxied pod subresource request.
pub async fn handle(
    state: &Arc<ApiState>,
    path: &ResourcePath,
    sub: Subresource,
    req: Request<Incoming>,
) -> Response<Body> {
    match proxy(state, path, sub, req).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

/// Whether the request asks for a protocol upgrade (`Connection: Upgrade` and an `Upgrade` header).
pub fn is_upgrade_request(headers: &http::HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

async fn proxy(
    state: &Arc<ApiState>,
    path: &ResourcePath,
    sub: Subresource,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let allowed = match sub {
        Subresource::Log => req.method() == Method::GET,
        _ => req.method() == Method::GET || req.method() == Method::POST,
    };
    if !allowed {
        return Err(ApiError::method_not_allowed());
    }
    let namespace = path.namespace.as_deref().unwrap_or_default();
    let name = path.name.as_deref().unwrap_or_default();
    let query = location::parse_query(req.uri().query());
    let client = state.kubelet_client();
    let (preferred, default_port) = match client {
        Some(c) => (
            c.config().preferred_address_types.clone(),
            c.config().default_port,
        ),
        None => (
            location::DEFAULT_ADDRESS_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            client::DEFAULT_KUBELET_PORT,
        ),
    };
    let target = location::resolve(
        state,
        sub,
        namespace,
        name,
        &query,
        &preferred,
        default_port,
    )?;
    let Some(target) = target else {
        return Ok(text_response(StatusCode::OK, Bytes::new()));
    };
    if sub.is_upgrade() && !is_upgrade_request(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let url = format!(
        "https://{}{}",
        client::join_host_port(&target.host, target.port),
        target.path_and_query
    );
    let dial_error = |e: &dyn std::fmt::Display| {
        if sub.is_upgrade() {
            ApiError::unknown_internal(format!("error dialing backend: {e}"))
        } else {
            ApiError::unknown_internal(format!("Get \"{url}\": {e}"))
        }
    };
    let Some(client) = client else {
        return Err(dial_error(
            &"the simulator has no kubelet client configured (SimConfig::kubelet_client)",
        ));
    };
    let mut sender = client
        .connect(&target.host, target.port)
        .await
        .map_err(|e| dial_error(&e))?;
    let mut upstream = Request::builder()
        .method(req.method().clone())
        .uri(&target.path_and_query)
        .header(
            header::HOST,
            client::join_host_port(&target.host, target.port),
        );
    if sub.is_upgrade() {
        for (k, v) in req.headers() {
            if !skipped_header(k) {
                upstream = upstream.header(k, v);
            }
        }
    }
    let upstream = upstream
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let client_upgrade = sub.is_upgrade().then(|| hyper::upgrade::on(&mut req));
    let mut resp = sender
        .send_request(upstream)
        .await
        .map_err(|e| dial_error(&e))?;
    tracing::debug!(%url, status = %resp.status(), "proxied to the kubelet");
    match client_upgrade {
        None => relay_log(resp, name).await,
        Some(client_upgrade) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            let mut answer = Response::new(Empty::<Bytes>::new().boxed_unsync());
            *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *answer.headers_mut() = resp.headers().clone();
            tokio::spawn(splice(client_upgrade, backend_upgrade));
            Ok(answer)
        }
        Some(_) => Ok(relay(resp)),
    }
}

/// Request headers not replayed to the kubelet: the simulator authenticates with its own certificate and
/// sends no body.
fn skipped_header(name: &header::HeaderName) -> bool {
    name == header::HOST
        || name == header::AUTHORIZATION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name.as_str().starts_with("impersonate-")
}

/// Relays the kubelet's answer to a log request: 2xx streamed as `text/plain`, errors as a `Status`.
async fn relay_log(resp: Response<Incoming>, name: &str) -> Result<Response<Body>, ApiError> {
    let code = resp.status().as_u16();
    if (200..=206).contains(&code) {
        let mut answer = Response::new(stream_body(resp.into_body()));
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(answer);
    }
    let text = read_limited(resp.into_body(), MAX_ERROR_BODY).await;
    Err(match code {
        400 => ApiError::bad_request(text),
        500 => ApiError::internal(text),
        _ => ApiError::generic_server_response(code, "pods/log", name, &text),
    })
}

/// Relays a non-upgrade answer to an upgrade request as is (status, headers, streamed body).
fn relay(resp: Response<Incoming>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, stream_body(body))
}

/// A body streaming the frames of `incoming` until it ends or fails.
fn stream_body(incoming: Incoming) -> Body {
    let frames = futures::stream::unfold(incoming, |mut body| async move {
        match body.frame().await {
            Some(Ok(frame)) => Some((Ok::<Frame<Bytes>, Infallible>(frame), body)),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "kubelet stream ended with an error");
                None
            }
            None => None,
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

async fn read_limited(mut body: Incoming, limit: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    buf.truncate(limit);
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

/// Waits for both upgrades, then copies bytes both ways until both directions end.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::debug!(up, down, "upgraded stream closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded stream ended with an error"),
    }
}

fn text_response(code: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
