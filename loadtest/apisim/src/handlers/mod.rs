//! REST verbs on resources: get, list, watch, create, update, patch, delete, deletecollection, the `status`
//! subresource, `pods/binding`, `namespaces/finalize` and `serviceaccounts/token` (TokenRequest).

mod admission;
mod crd;
mod delete;
mod read;
mod scale;
mod strategy;
#[cfg(test)]
mod tests;
mod token;
mod validate;
mod write;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::Value;

use crate::resource_type::ResourceType;
use crate::routing::ResourcePath;
use crate::state::ApiState;
use crate::status::ApiError;

pub use delete::{DeleteOptions, DeleteOutcome, delete_object};
pub(crate) use read::wait_for_revision;
pub use strategy::WriteScope;
pub use write::{bind_pod, create_object, update_with};

/// Response body type of every handler (full bodies and streamed watches).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request on a resource path, with its body already read.
#[derive(Debug)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: Method,
    /// Parsed path.
    pub path: ResourcePath,
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// `Accept` header.
    pub accept: Option<String>,
    /// Request body.
    pub body: Bytes,
}

impl ApiRequest {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// Whether a boolean query parameter is set to true.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    /// Whether the client asked for a dry run.
    pub fn dry_run(&self) -> bool {
        self.param("dryRun").is_some_and(|v| v == "All")
    }
}

/// A full JSON response.
pub fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    bytes_response(
        code,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// A full JSON response from already serialized bytes.
pub fn bytes_response(code: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `Status` failure response.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(code, &err.to_status());
    if let Some(secs) = err.details.retry_after
        && let Ok(v) = http::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Handles one resource request.
pub async fn handle(state: &Arc<ApiState>, req: ApiRequest) -> Response<Body> {
    match dispatch(state, req).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

async fn dispatch(state: &Arc<ApiState>, req: ApiRequest) -> Result<Response<Body>, ApiError> {
    let p = &req.path;
    let rt = state
        .registry
        .lookup(&p.group, &p.version, &p.plural)
        .ok_or_else(ApiError::no_route)?;
    if rt.namespaced {
        if p.name.is_some() && p.namespace.is_none() {
            return Err(ApiError::no_route());
        }
    } else if p.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    let watch = p.watch_prefix || req.flag("watch");
    let name = p.name.clone();
    let sub = p.subresource.clone();
    match sub.as_deref() {
        None => {}
        Some("status") if rt.has_status => {}
        Some(s)
            if crate::registry::extra_subresources(&rt)
                .iter()
                .any(|(n, _)| *n == s) => {}
        Some(_) => return Err(ApiError::no_route()),
    }
    match (req.method.clone(), name, sub.as_deref()) {
        (Method::GET, None, None) if watch => crate::watch::serve(state, &rt, &req, None).await,
        (Method::GET, Some(name), None) if watch => {
            crate::watch::serve(state, &rt, &req, Some(&name)).await
        }
        (Method::GET, None, None) => read::list(state, &rt, &req).await,
        (Method::GET, Some(name), None | Some("status")) => read::get(state, &rt, &req, &name),
        (Method::POST, None, None) => write::create(state, &rt, &req),
        (Method::POST, Some(name), Some("binding")) => write::bind(state, &rt, &req, &name),
        (Method::POST, Some(name), Some("token")) => token::create(state, &rt, &req, &name),
        (Method::PUT, Some(name), None | Some("status") | Some("finalize")) => {
            write::update(state, &rt, &req, &name, sub.as_deref())
        }
        (Method::PATCH, Some(name), None | Some("status")) => {
            write::patch(state, &rt, &req, &name, sub.as_deref())
        }
        (Method::GET | Method::PUT | Method::PATCH, Some(name), Some("scale")) => {
            scale::handle(state, &rt, &req, &name)
        }
        (Method::DELETE, Some(name), None) => delete::delete(state, &rt, &req, &name),
        (Method::DELETE, None, None) => delete::delete_collection(state, &rt, &req),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The namespace a request on `rt` is scoped to (empty for cluster-scoped types).
pub(crate) fn request_namespace(rt: &ResourceType, req: &ApiRequest) -> String {
    if rt.namespaced {
        req.path.namespace.clone().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Media type of the Kubernetes protobuf encoding.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Parses a request body: JSON, or (for the kinds `protobuf` knows) the Kubernetes protobuf encoding.
pub(crate) fn parse_body(req: &ApiRequest) -> Result<Value, ApiError> {
    let media = req
        .content_type
        .as_deref()
        .map(|ct| ct.split(';').next().unwrap_or("").trim())
        .unwrap_or("");
    if media == PROTOBUF {
        return crate::protobuf::decode(&req.body).map_err(|e| match e {
            crate::protobuf::ProtoError::Malformed(_) => ApiError::bad_request(e.to_string()),
            other => ApiError::unsupported_media_type(other.to_string()),
        });
    }
    if !media.is_empty() && media != "application/json" && media != "*/*" {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json \
             (got {media})"
        )));
    }
    let value: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: expected a JSON object",
        ));
    }
    Ok(value)
}

/// Checks `apiVersion`/`kind` of a request body against the type served at the URL (400 on mismatch).
pub(crate) fn check_type_meta(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            compact(obj)
        )));
    }
    if api_version.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{}'",
            compact(obj)
        )));
    }
    let expected = rt.api_version();
    if api_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    if kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {}: no kind \"{kind}\" is registered for version \"{api_version}\"",
            rt.version, rt.kind
        )));
    }
    Ok(())
}

fn compact(obj: &Value) -> String {
    let s = obj.to_string();
    if s.len() > 200 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(200).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

/// `metadata.resourceVersion` of an object as a number (`None` if absent or empty).
pub(crate) fn object_rv(obj: &Value) -> Result<Option<u64>, ApiError> {
    match obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}"))),
    }
}

/// The current time as the API shows timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A string at a JSON pointer, or "".
pub(crate) fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}
