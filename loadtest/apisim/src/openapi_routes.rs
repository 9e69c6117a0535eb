//! Serving the OpenAPI documents kubectl fetches (`/openapi/v2`, `/openapi/v3`, `/openapi/v3/<gv>`); the
//! documents themselves are built by `openapi`.

use std::sync::Arc;

use http::Response;

use crate::handlers::Body;
use crate::routing::Route;
use crate::state::ApiState;
use crate::status::ApiError;

/// Serves an OpenAPI route (404 until documents are available).
pub fn serve(
    _state: &Arc<ApiState>,
    _route: &Route,
    _query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    Err(ApiError::no_route())
}
