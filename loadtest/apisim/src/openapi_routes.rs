//! Serving the OpenAPI documents kubectl fetches (`/openapi/v2`, `/openapi/v3`, `/openapi/v3/<gv>`); the
//! documents themselves are built by `openapi` from the currently served types.

use std::sync::Arc;

use http::{Response, StatusCode};

use crate::handlers::{Body, json_response};
use crate::openapi;
use crate::resource_type::ResourceType;
use crate::routing::Route;
use crate::state::ApiState;
use crate::status::ApiError;

/// Serves an OpenAPI route; `accept` is the request's `Accept` header (protobuf-only v2 requests get 406,
/// which kubectl reads as "no v2 schema").
pub fn serve(
    state: &Arc<ApiState>,
    route: &Route,
    accept: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let types: Vec<ResourceType> = state
        .registry
        .all()
        .iter()
        .map(|rt| (**rt).clone())
        .collect();
    match route {
        Route::OpenApiV2 => {
            let json_ok = accept.is_none_or(|a| a.contains("json") || a.contains("*/*"));
            if !json_ok {
                return Err(ApiError::not_acceptable(format!(
                    "only application/json is served, not {}",
                    accept.unwrap_or(openapi::OPENAPI_V2_PROTOBUF)
                )));
            }
            Ok(json_response(StatusCode::OK, &openapi::v2_document(&types)))
        }
        Route::OpenApiV3(None) => Ok(json_response(StatusCode::OK, &openapi::v3_root(&types))),
        Route::OpenApiV3(Some(path)) => openapi::v3_group_version(&types, path)
            .map(|doc| json_response(StatusCode::OK, &doc))
            .ok_or_else(ApiError::no_route),
        _ => Err(ApiError::no_route()),
    }
}
