//! The periodic part of virtual nodes, which no watch event drives: renewing their Leases while the super node
//! is Ready, and collecting a tenant's virtual node once it has had none of the tenant's pods for the grace
//! period. One tokio task for all tenants ([`spawn`]); each round reads the placement entries from the view.
//!
//! A virtual node collected while a pod was being placed on it is repaired: the tenant node watch reports the
//! deletion, and the node reconcile re-creates it because the placement entries still count the pod.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease::{self, LEASE_NAMESPACE};
use super::{KIND_LEASE, KIND_NODE, nodes, placement};
use crate::log::View;
use crate::reconcile::writer::{self, Created, Target};
use crate::reconcile::{Lookup, SyncError, Tenant, Tenants, count_write};
use crate::record::SUPER_CLUSTER;
use crate::source::mapping::now_micros;

/// Timing of the lifecycle task.
#[derive(Clone, Debug)]
pub struct LifecycleConfig {
    /// Between two rounds (lease renewal period). Default 10 s, the kubelet's.
    pub period: Duration,
    /// A virtual node with no pod of its tenant for this long is deleted. Default 120 s.
    pub gc_grace: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(10),
            gc_grace: Duration::from_secs(120),
        }
    }
}

/// Counter: virtual node lease renewals, by `outcome` (`ok` | error code).
pub const METRIC_LEASE_RENEWALS: &str = "vc_syncer_node_lease_renewals_total";
/// Counter: virtual nodes collected after their grace period.
pub const METRIC_NODES_COLLECTED: &str = "vc_syncer_virtual_nodes_collected_total";

/// The running lifecycle task; stopped when dropped or by the shutdown signal.
pub struct Lifecycle {
    handle: JoinHandle<()>,
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Starts the lifecycle task on the current runtime.
pub fn spawn(
    cfg: LifecycleConfig,
    view: View,
    tenants: Tenants,
    mut shutdown: watch::Receiver<bool>,
) -> Lifecycle {
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(cfg.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = tick.tick() => round(&cfg, &view, &tenants).await,
            }
        }
    });
    Lifecycle { handle }
}

/// One round: every (node, tenant) entry is renewed or collected.
pub async fn round(cfg: &LifecycleConfig, view: &View, tenants: &Tenants) {
    let pairs = match placement::all_pairs(view) {
        Ok(p) => p,
        Err(error) => {
            tracing::warn!(%error, "cannot read virtual node entries");
            return;
        }
    };
    let grace = u64::try_from(cfg.gc_grace.as_micros()).unwrap_or(u64::MAX);
    for (node, cluster, empty_since) in pairs {
        let tenant = match tenants.lookup(&cluster) {
            Lookup::Active(t) => t,
            Lookup::Removed => {
                let _ = placement::forget_pair(view, &cluster, &node);
                continue;
            }
            Lookup::Unknown => continue,
        };
        if let Err(error) = one(view, &tenant, &node, empty_since, grace).await {
            tracing::debug!(%cluster, %node, error = %error, "virtual node lifecycle step failed");
        }
    }
}

async fn one(
    view: &View,
    tenant: &Tenant,
    node: &str,
    empty_since: Option<u64>,
    grace_micros: u64,
) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let pods = placement::pods_on(view, cluster, node).map_err(SyncError::View)?;
    if pods == 0 {
        let now = now_micros();
        match empty_since {
            None => placement::set_pair(view, cluster, node, Some(now)).map_err(SyncError::View)?,
            Some(since) if now.saturating_sub(since) >= grace_micros => {
                if nodes::delete_virtual_node(view, tenant, node).await? {
                    // Re-check: a pod placed meanwhile keeps the entry (the node is then re-created).
                    if placement::pods_on(view, cluster, node).map_err(SyncError::View)? == 0 {
                        placement::forget_pair(view, cluster, node).map_err(SyncError::View)?;
                    }
                    delete_lease(view, tenant, node).await?;
                    metrics::counter!(METRIC_NODES_COLLECTED).increment(1);
                    tracing::info!(%cluster, %node, "virtual node collected");
                }
                return Ok(());
            }
            Some(_) => {}
        }
    } else if empty_since.is_some() {
        placement::set_pair(view, cluster, node, None).map_err(SyncError::View)?;
    }
    let super_node = view
        .get(SUPER_CLUSTER, KIND_NODE, "", node)
        .map_err(SyncError::View)?
        .and_then(|s| serde_json::from_value(s.object).ok());
    if lease::should_renew(super_node.as_ref()) {
        let node_uid = view
            .get(cluster, KIND_NODE, "", node)
            .map_err(SyncError::View)?
            .map(|s| s.uid);
        let outcome = renew_lease(view, tenant, node, node_uid.as_deref()).await;
        let code = match &outcome {
            Ok(()) => "ok",
            Err(e) => e.code(),
        };
        metrics::counter!(METRIC_LEASE_RENEWALS, "outcome" => code).increment(1);
        outcome?;
    }
    Ok(())
}

fn lease_target<'a>(cluster: &'a str, node: &'a str) -> Target<'a> {
    Target {
        cluster,
        kind: KIND_LEASE,
        namespace: LEASE_NAMESPACE,
        name: node,
    }
}

fn record_lease(
    view: &View,
    cluster: &str,
    node: &str,
    lease: Option<&Lease>,
) -> Result<(), SyncError> {
    let value = lease
        .map(serde_json::to_value)
        .transpose()
        .map_err(SyncError::Encode)?;
    view.record_write(cluster, KIND_LEASE, LEASE_NAMESPACE, node, value.as_ref())
        .map_err(SyncError::View)
}

/// Creates or renews the Lease of virtual node `node` in `tenant` (creating `kube-node-lease` if absent).
pub async fn renew_lease(
    view: &View,
    tenant: &Tenant,
    node: &str,
    node_uid: Option<&str>,
) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let api: Api<Lease> = Api::namespaced(tenant.client.clone(), LEASE_NAMESPACE);
    let now = k8s_openapi::jiff::Timestamp::now();
    for _ in 0..3 {
        let known = view
            .get(cluster, KIND_LEASE, LEASE_NAMESPACE, node)
            .map_err(SyncError::View)?
            .and_then(|s| serde_json::from_value::<Lease>(s.object).ok());
        let Some(existing) = known else {
            match writer::create(
                &api,
                lease_target(cluster, node),
                &lease::node_lease(node, node_uid, now),
            )
            .await
            {
                Ok(Created::Yes(created)) => {
                    count_write(KIND_LEASE, "tenant", "create");
                    return record_lease(view, cluster, node, Some(&created));
                }
                Ok(Created::AlreadyExists) => {
                    let live = writer::get(&api, lease_target(cluster, node)).await?;
                    record_lease(view, cluster, node, live.as_ref())?;
                    continue;
                }
                Err(e) if e.is_not_found() => {
                    ensure_lease_namespace(tenant).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        match writer::replace(
            &api,
            lease_target(cluster, node),
            &lease::renewed(&existing, node, now),
        )
        .await
        {
            Ok(updated) => {
                count_write(KIND_LEASE, "tenant", "update");
                return record_lease(view, cluster, node, Some(&updated));
            }
            Err(e) if e.is_conflict() || e.is_not_found() => {
                let live = writer::get(&api, lease_target(cluster, node)).await?;
                record_lease(view, cluster, node, live.as_ref())?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(SyncError::Unsettled {
        kind: KIND_LEASE,
        namespace: LEASE_NAMESPACE.to_owned(),
        name: node.to_owned(),
    })
}

async fn ensure_lease_namespace(tenant: &Tenant) -> Result<(), SyncError> {
    let api: Api<Namespace> = Api::all(tenant.client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(LEASE_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let target = Target {
        cluster: &tenant.info.cluster_key,
        kind: "Namespace",
        namespace: "",
        name: LEASE_NAMESPACE,
    };
    if let Created::Yes(_) = writer::create(&api, target, &ns).await? {
        count_write("Namespace", "tenant", "create");
    }
    Ok(())
}

async fn delete_lease(view: &View, tenant: &Tenant, node: &str) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let api: Api<Lease> = Api::namespaced(tenant.client.clone(), LEASE_NAMESPACE);
    if let Some(live) = writer::get(&api, lease_target(cluster, node)).await? {
        let uid = live.metadata.uid.clone().unwrap_or_default();
        writer::delete(&api, lease_target(cluster, node), &uid, None).await?;
        count_write(KIND_LEASE, "tenant", "delete");
    }
    record_lease(view, cluster, node, None)
}
