//! `Translation`: tenant pod ↔ super pod from the syncer's view and naming rule, pods on a node, and a
//! stream of tenant identities and pod invalidations for the vn-agent's caches.

use tenancy_proto::v1::translation_event::Event;
use tenancy_proto::v1::translation_server::Translation;
use tenancy_proto::v1::{
    PodLocation, PodsOnNodeRequest, PodsOnNodeResponse, ToSuperRequest, ToTenantRequest,
    TranslationEvent, WatchTranslationsRequest,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::control::tap::pod_location;
use crate::control::{ControlEvent, TenantSet};
use crate::naming;
use crate::record::SUPER_CLUSTER;

/// The Translation service.
pub struct TranslationService {
    tenants: TenantSet,
}

impl TranslationService {
    /// A service over `tenants`.
    pub fn new(tenants: TenantSet) -> Self {
        Self { tenants }
    }
}

fn internal(e: crate::log::LogError) -> Status {
    Status::internal(format!("reading the view: {e}"))
}

/// Kubernetes object names: 1..=253 characters of `[a-z0-9.-]`.
fn check_name(field: &str, value: &str) -> Result<(), Status> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field} {value:?} is not a valid object name"
        )))
    }
}

fn check_label(field: &str, value: &str) -> Result<(), Status> {
    if naming::is_dns1123_label(value) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field} {value:?} is not a DNS-1123 label"
        )))
    }
}

impl TranslationService {
    async fn require_tenant(&self, cluster_key: &str) -> Result<(), Status> {
        if self.tenants.is_active(cluster_key).await {
            Ok(())
        } else {
            Err(Status::not_found(format!(
                "tenant {cluster_key} is not registered"
            )))
        }
    }

    /// Super pods of `key` on `node` (every super namespace of the tenant's namespaces).
    fn pods_on_node_of(&self, key: &str, node: &str) -> Result<Vec<PodLocation>, Status> {
        let view = self.tenants.pipeline().view();
        let mut out = Vec::new();
        for (_, ns) in view.names(key, "Namespace").map_err(internal)? {
            let super_ns = naming::super_namespace(key, &ns);
            for (_, pod) in view
                .list_namespace(SUPER_CLUSTER, "Pod", &super_ns)
                .map_err(internal)?
            {
                if let Some(loc) = pod_location(&pod.object)
                    && loc.cluster_key == key
                    && loc.node_name == node
                {
                    out.push(loc);
                }
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl Translation for TranslationService {
    async fn to_super(
        &self,
        request: Request<ToSuperRequest>,
    ) -> Result<Response<PodLocation>, Status> {
        let req = request.into_inner();
        check_label("cluster_key", &req.cluster_key)?;
        check_label("namespace", &req.namespace)?;
        check_name("pod", &req.pod)?;
        self.require_tenant(&req.cluster_key).await?;
        let view = self.tenants.pipeline().view();
        let tenant_pod = view
            .get(&req.cluster_key, "Pod", &req.namespace, &req.pod)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "pod {}/{} is not known in tenant {}",
                    req.namespace, req.pod, req.cluster_key
                ))
            })?;
        let super_ns = naming::super_namespace(&req.cluster_key, &req.namespace);
        let not_synced = || {
            Status::not_found(format!(
                "pod {}/{} of tenant {} is not synced (yet)",
                req.namespace, req.pod, req.cluster_key
            ))
        };
        let super_pod = view
            .get(SUPER_CLUSTER, "Pod", &super_ns, &req.pod)
            .map_err(internal)?
            .ok_or_else(not_synced)?;
        let location = pod_location(&super_pod.object)
            .filter(|l| l.cluster_key == req.cluster_key && l.tenant_uid == tenant_pod.uid)
            .ok_or_else(not_synced)?;
        Ok(Response::new(location))
    }

    async fn to_tenant(
        &self,
        request: Request<ToTenantRequest>,
    ) -> Result<Response<PodLocation>, Status> {
        let req = request.into_inner();
        check_label("namespace", &req.namespace)?;
        check_name("pod", &req.pod)?;
        let view = self.tenants.pipeline().view();
        let super_pod = view
            .get(SUPER_CLUSTER, "Pod", &req.namespace, &req.pod)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "super pod {}/{} is not known",
                    req.namespace, req.pod
                ))
            })?;
        let location = pod_location(&super_pod.object).ok_or_else(|| {
            Status::not_found(format!(
                "super pod {}/{} is not a synced tenant pod",
                req.namespace, req.pod
            ))
        })?;
        self.require_tenant(&location.cluster_key).await?;
        Ok(Response::new(location))
    }

    async fn pods_on_node(
        &self,
        request: Request<PodsOnNodeRequest>,
    ) -> Result<Response<PodsOnNodeResponse>, Status> {
        let req = request.into_inner();
        check_name("node_name", &req.node_name)?;
        let keys = if req.cluster_key.is_empty() {
            self.tenants
                .identities()
                .await
                .into_iter()
                .map(|t| t.cluster_key)
                .collect()
        } else {
            check_label("cluster_key", &req.cluster_key)?;
            self.require_tenant(&req.cluster_key).await?;
            vec![req.cluster_key.clone()]
        };
        let mut pods = Vec::new();
        for key in keys {
            pods.extend(self.pods_on_node_of(&key, &req.node_name)?);
        }
        Ok(Response::new(PodsOnNodeResponse { pods }))
    }

    type WatchTranslationsStream = ReceiverStream<Result<TranslationEvent, Status>>;

    async fn watch_translations(
        &self,
        _request: Request<WatchTranslationsRequest>,
    ) -> Result<Response<Self::WatchTranslationsStream>, Status> {
        // Subscribe before taking the snapshot, so nothing between the two is missed.
        let events = self.tenants.subscribe();
        let snapshot = self.tenants.identities().await;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(translation_loop(self.tenants.clone(), snapshot, events, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn translation_loop(
    tenants: TenantSet,
    snapshot: Vec<tenancy_proto::v1::TenantIdentity>,
    mut events: broadcast::Receiver<ControlEvent>,
    tx: mpsc::Sender<Result<TranslationEvent, Status>>,
) {
    let last = snapshot.len();
    if last == 0 {
        let done = TranslationEvent {
            event: None,
            snapshot_complete: true,
        };
        if tx.send(Ok(done)).await.is_err() {
            return;
        }
    }
    for (i, identity) in snapshot.into_iter().enumerate() {
        let msg = TranslationEvent {
            event: Some(Event::TenantUpserted(identity)),
            snapshot_complete: i + 1 == last,
        };
        if tx.send(Ok(msg)).await.is_err() {
            return;
        }
    }
    let mut stopping = tenants.stopping();
    loop {
        let event = tokio::select! {
            e = events.recv() => Some(e),
            _ = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => None,
        };
        let Some(event) = event else {
            let _ = tx
                .send(Err(Status::unavailable("the syncer is shutting down")))
                .await;
            return;
        };
        let event = match event {
            Ok(ControlEvent::TenantUpserted {
                cluster_key,
                kubelet_client_ca_pem,
            }) => Event::TenantUpserted(tenancy_proto::v1::TenantIdentity {
                cluster_key,
                kubelet_client_ca_pem,
            }),
            Ok(ControlEvent::TenantRemoved { cluster_key }) => Event::TenantRemoved(cluster_key),
            Ok(ControlEvent::PodInvalidated(location)) => Event::PodInvalidated(location),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let _ = tx
                    .send(Err(Status::aborted(format!(
                        "the stream fell {n} events behind; watch again (a new snapshot follows)"
                    ))))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let msg = TranslationEvent {
            event: Some(event),
            snapshot_complete: false,
        };
        if tx.send(Ok(msg)).await.is_err() {
            return;
        }
    }
}
