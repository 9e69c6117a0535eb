//! `TenantRegistry`: Register / Unregister / List / Watch over the [`TenantSet`].

use std::collections::BTreeMap;
use std::time::Duration;

use tenancy_proto::v1::tenant_event::Event;
use tenancy_proto::v1::tenant_registry_server::TenantRegistry;
use tenancy_proto::v1::{
    ListRequest, ListResponse, RegisterRequest, RegisterResponse, TenantEvent, TenantStatus,
    UnregisterRequest, UnregisterResponse, WatchRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status_of;
use crate::control::TenantSet;

/// Default and smallest interval between two status messages of one tenant on a Watch stream.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(1000);
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The TenantRegistry service.
pub struct RegistryService {
    tenants: TenantSet,
}

impl RegistryService {
    /// A service over `tenants`.
    pub fn new(tenants: TenantSet) -> Self {
        Self { tenants }
    }
}

#[tonic::async_trait]
impl TenantRegistry for RegistryService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is required"))?;
        let (cluster_key, changed) = self.tenants.register(spec).await.map_err(status_of)?;
        Ok(Response::new(RegisterResponse {
            cluster_key,
            changed,
        }))
    }

    async fn unregister(
        &self,
        request: Request<UnregisterRequest>,
    ) -> Result<Response<UnregisterResponse>, Status> {
        let req = request.into_inner();
        let vc = req
            .vc
            .ok_or_else(|| Status::invalid_argument("vc is required"))?;
        let existed = self
            .tenants
            .unregister(&vc, req.allow_missing)
            .await
            .map_err(status_of)?;
        Ok(Response::new(UnregisterResponse { existed }))
    }

    async fn list(&self, _request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        Ok(Response::new(ListResponse {
            tenants: self.tenants.statuses().await,
        }))
    }

    type WatchStream = ReceiverStream<Result<TenantEvent, Status>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let ms = request.into_inner().min_interval_ms;
        let interval = if ms == 0 {
            DEFAULT_INTERVAL
        } else {
            Duration::from_millis(u64::from(ms)).max(MIN_INTERVAL)
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(watch_loop(self.tenants.clone(), interval, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn status_event(s: TenantStatus) -> Result<TenantEvent, Status> {
    Ok(TenantEvent {
        event: Some(Event::Status(s)),
    })
}

/// Sends every tenant's status, then every `interval` the statuses that changed and the removals, until the
/// client goes away or the syncer stops.
async fn watch_loop(
    tenants: TenantSet,
    interval: Duration,
    tx: mpsc::Sender<Result<TenantEvent, Status>>,
) {
    let mut last: BTreeMap<String, TenantStatus> = BTreeMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tx.closed() => return,
        }
        if tenants.is_stopping() {
            let _ = tx
                .send(Err(Status::unavailable("the syncer is shutting down")))
                .await;
            return;
        }
        let now: BTreeMap<String, TenantStatus> = tenants
            .statuses()
            .await
            .into_iter()
            .map(|s| (s.cluster_key.clone(), s))
            .collect();
        for (key, old) in &last {
            if !now.contains_key(key) {
                let removed = TenantEvent {
                    event: Some(Event::Removed(old.vc.clone().unwrap_or_default())),
                };
                if tx.send(Ok(removed)).await.is_err() {
                    return;
                }
            }
        }
        for (key, status) in &now {
            if last.get(key) != Some(status) && tx.send(status_event(status.clone())).await.is_err()
            {
                return;
            }
        }
        last = now;
    }
}
