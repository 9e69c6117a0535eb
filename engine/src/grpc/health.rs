//! `Health.Check`: serving state, version, tenants served, super cluster watched.

use tenancy_proto::v1::health_check_response::ServingStatus;
use tenancy_proto::v1::health_server::Health;
use tenancy_proto::v1::{HealthCheckRequest, HealthCheckResponse};
use tonic::{Request, Response, Status};

use super::ApiContext;

/// The Health service.
pub struct HealthService {
    ctx: ApiContext,
}

impl HealthService {
    /// A service over `ctx`.
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let status = if self.ctx.tenants.is_stopping() {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            tenants: u32::try_from(self.ctx.tenants.len().await).unwrap_or(u32::MAX),
            super_up: (self.ctx.super_up)(),
        }))
    }
}
