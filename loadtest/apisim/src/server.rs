//! HTTP/1.1 accept loop: one tokio task per instance accepting connections, one per connection, all
//! aborted when the instance is dropped. Each request goes through faults → routing → a handler.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
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
use crate::{admin, discovery};

/// The accept loop of one instance; dropping it aborts the loop and every connection it served.
pub struct ServerHandle {
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Starts accepting on `listener`.
    pub fn spawn(listener: TcpListener, state: Arc<ApiState>) -> ServerHandle {
        let task = tokio::spawn(accept_loop(listener, state));
        ServerHandle { task }
    }

    /// Stops accepting and closes all connections.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ApiState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, state.clone()));
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

async fn serve_connection(stream: tokio::net::TcpStream, state: Arc<ApiState>) {
    let io = TokioIo::new(stream);
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req).await) }
    });
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
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

/// Reads the body up to the configured limit (413 beyond it).
async fn read_body(body: Incoming, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(limit))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    }
}

async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let route = routing::route(parts.uri.path());
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
    let body = match read_body(body, &parts.headers, state.config.max_body_bytes).await {
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
