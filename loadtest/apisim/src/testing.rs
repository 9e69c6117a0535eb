//! Test helpers: an in-process instance state and requests sent straight to the handlers (no sockets).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::SimConfig;
use crate::handlers::{self, ApiRequest};
use crate::routing::{self, Route};
use crate::state::ApiState;

/// A fresh instance state with the start-up objects.
pub(crate) fn state_with(config: SimConfig) -> Arc<ApiState> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let state = ApiState::new(config, addr).expect("state");
    crate::bootstrap::create_startup_objects(&state).expect("start-up objects");
    state
}

/// A fresh instance state with the default configuration.
pub(crate) fn state() -> Arc<ApiState> {
    state_with(SimConfig::default())
}

fn request(method: Method, uri: &str, content_type: Option<&str>, body: &Value) -> ApiRequest {
    let (path, query) = uri
        .split_once('?')
        .map_or((uri, None), |(p, q)| (p, Some(q)));
    let Route::Resource(path) = routing::route(path) else {
        panic!("{uri} is not a resource path");
    };
    ApiRequest {
        method,
        path,
        query: routing::parse_query(query),
        content_type: content_type.map(str::to_string),
        accept: None,
        body: if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        },
    }
}

/// Sends one request; returns the status code and the JSON body.
pub(crate) async fn call(
    state: &Arc<ApiState>,
    method: Method,
    uri: &str,
    body: Value,
) -> (u16, Value) {
    let content_type = if method == Method::PATCH {
        Some("application/merge-patch+json")
    } else {
        Some("application/json")
    };
    let resp = handlers::handle(state, request(method, uri, content_type, &body)).await;
    let code = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Opens a watch and collects its events until the stream ends (use `timeoutSeconds`) or `limit` passes.
pub(crate) async fn watch_events(state: &Arc<ApiState>, uri: &str, limit: Duration) -> Vec<Value> {
    let resp = handlers::handle(state, request(Method::GET, uri, None, &Value::Null)).await;
    assert_eq!(resp.status().as_u16(), 200, "watch {uri} refused");
    let mut body = resp.into_body();
    let mut text = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                text.extend_from_slice(&data);
            }
        }
    })
    .await;
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}
