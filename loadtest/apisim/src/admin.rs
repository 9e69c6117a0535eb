//! The simulator's own control endpoint for out-of-process tests: `GET/PUT /apisim/v1/faults` (a JSON
//! `FaultConfig`), `POST /apisim/v1/force-gone` (the next watch gets 410), `POST /apisim/v1/compact`
//! (forget all history). Never subject to injected faults.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use serde_json::json;

use crate::faults::FaultConfig;
use crate::handlers::{Body, json_response};
use crate::routing::AdminRoute;
use crate::state::ApiState;
use crate::status::ApiError;

/// Serves one admin request.
pub fn handle(
    state: &Arc<ApiState>,
    route: &AdminRoute,
    method: &Method,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    match (route, method) {
        (AdminRoute::Faults, &Method::GET) => {
            Ok(json_response(StatusCode::OK, &json!(state.faults.config())))
        }
        (AdminRoute::Faults, &Method::PUT) => {
            let config: FaultConfig = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault configuration: {e}")))?;
            state
                .faults
                .set(config)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(json_response(StatusCode::OK, &json!(state.faults.config())))
        }
        (AdminRoute::ForceGone, &Method::POST) => {
            state.faults.force_gone_next_watch();
            Ok(json_response(StatusCode::OK, &json!({"forceGone": true})))
        }
        (AdminRoute::Compact, &Method::POST) => {
            state.store.compact();
            Ok(json_response(
                StatusCode::OK,
                &json!({"compactedAt": state.store.revision()}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
