//! Virtual nodes as a [`Resource`]: super Nodes are watched whole and keyed under the super cluster
//! (`WorkKey{__super__, Node, "", name}`); a reconcile fans the node out to the tenants that have a virtual node
//! for it ([`placement::tenants_on`]), writing only where the tenant copy (as the view holds it) differs.
//! Tenant virtual nodes (label `tenancy.x-k8s.io/virtualnode=true`) are watched too and keyed under their
//! tenant, so a tenant that deletes or edits one gets it repaired.
//!
//! [`track_pod`] is called by the pod reconcile before it binds the tenant pod: it records the pod's super
//! node in the placement entries and makes sure the tenant's virtual node exists first.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;

use super::node::{self, DEFAULT_VN_AGENT_PORT, LABEL_VIRTUAL_NODE};
use super::{KIND_NODE, lease, lifecycle, placement};
use crate::log::View;
use crate::naming::super_namespace;
use crate::reconcile::resource::{
    Check, Ctx, Drift, Resource, SuperCtx, SuperLocation, SyncFuture,
};
use crate::reconcile::writer::{self, Created, Deleted, Target};
use crate::reconcile::{KIND_POD, Lookup, SyncError, Tenant, TenantInfo, count_write};
use crate::record::{SUPER_CLUSTER, WorkKey};
use crate::source::{KindSpec, SuperKey, Watch};

/// Plan → write rounds for one tenant node before giving up (the shard retries).
const MAX_PASSES: usize = 4;

/// Super nodes → virtual nodes in the tenants that run pods on them.
#[derive(Debug)]
pub struct NodeResource {
    vn_agent_port: i32,
}

impl Default for NodeResource {
    fn default() -> Self {
        Self::new(DEFAULT_VN_AGENT_PORT)
    }
}

impl NodeResource {
    /// Virtual nodes advertising `vn_agent_port` as their kubelet port.
    #[must_use]
    pub fn new(vn_agent_port: i32) -> Self {
        Self { vn_agent_port }
    }
}

impl Resource for NodeResource {
    fn kind(&self) -> &'static str {
        KIND_NODE
    }

    fn spec(&self) -> KindSpec {
        let mut spec = KindSpec::of::<Node>();
        spec.super_watch = Watch::All;
        spec.super_key = SuperKey::Cluster;
        spec.tenant_watch = Watch::Labels(format!("{LABEL_VIRTUAL_NODE}=true"));
        spec
    }

    fn reconcile_up<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(sync_tenant_node(
            ctx.view,
            ctx.tenant,
            &ctx.key.name,
            self.vn_agent_port,
        ))
    }

    fn reconcile_super<'a>(&'a self, ctx: &'a SuperCtx<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let node = &ctx.key.name;
            let mut first_error = None;
            for cluster in placement::tenants_on(ctx.view, node).map_err(SyncError::View)? {
                let tenant = match ctx.tenants.lookup(&cluster) {
                    Lookup::Active(t) => t,
                    Lookup::Removed => {
                        placement::forget_pair(ctx.view, &cluster, node)
                            .map_err(SyncError::View)?;
                        continue;
                    }
                    Lookup::Unknown => continue,
                };
                // One tenant failing must not hold the others back: finish the fan-out, then retry.
                if let Err(err) =
                    sync_tenant_node(ctx.view, &tenant, node, self.vn_agent_port).await
                {
                    tracing::debug!(%cluster, %node, error = %err, "virtual node not synced");
                    first_error.get_or_insert(err);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    fn super_location(&self, _tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation> {
        Some(SuperLocation {
            namespace: String::new(),
            name: key.name.clone(),
        })
    }

    fn check(&self, check: &Check<'_>) -> Drift {
        let wanted = placement::pair(check.view, &check.tenant.cluster_key, &check.key.name)
            .ok()
            .flatten()
            .is_some();
        match check.objects::<Node>() {
            (Some(t), _) if !node::is_virtual(&t) => Drift::InSync,
            (None, Some(_)) if wanted => Drift::Different("virtual node missing"),
            (Some(_), None) => Drift::Different("super node gone"),
            (Some(t), Some(s)) if !node::changes(&t, &s, self.vn_agent_port).is_empty() => {
                Drift::Different("virtual node")
            }
            _ => Drift::InSync,
        }
    }
}

fn target<'a>(cluster: &'a str, name: &'a str) -> Target<'a> {
    Target {
        cluster,
        kind: KIND_NODE,
        namespace: "",
        name,
    }
}

fn read_node(view: &View, cluster: &str, name: &str) -> Result<Option<Node>, SyncError> {
    Ok(view
        .get(cluster, KIND_NODE, "", name)
        .map_err(SyncError::View)?
        .and_then(|s| serde_json::from_value::<Node>(s.object).ok()))
}

fn record(view: &View, cluster: &str, name: &str, node: Option<&Node>) -> Result<(), SyncError> {
    let value = node
        .map(serde_json::to_value)
        .transpose()
        .map_err(SyncError::Encode)?;
    view.record_write(cluster, KIND_NODE, "", name, value.as_ref())
        .map_err(SyncError::View)
}

/// Makes tenant `tenant`'s virtual node `name` match the super node: created when the tenant runs a pod there
/// (or keeps it within the grace period), updated when it differs, deleted when the super node is gone.
/// Tenant nodes without the virtual-node label are never touched.
pub async fn sync_tenant_node(
    view: &View,
    tenant: &Tenant,
    name: &str,
    vn_agent_port: i32,
) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let api: Api<Node> = Api::all(tenant.client.clone());
    let pods = placement::pods_on(view, cluster, name).map_err(SyncError::View)?;
    let pair = placement::pair(view, cluster, name).map_err(SyncError::View)?;
    if pods > 0 && !matches!(pair, Some(None)) {
        placement::set_pair(view, cluster, name, None).map_err(SyncError::View)?;
    }
    let wanted = pods > 0 || pair.is_some();
    for _ in 0..MAX_PASSES {
        let super_node = read_node(view, SUPER_CLUSTER, name)?;
        let tenant_node = read_node(view, cluster, name)?;
        match (super_node, tenant_node) {
            (_, Some(t)) if !node::is_virtual(&t) => {
                tracing::warn!(%cluster, node = name, "tenant has its own node of this name; left alone");
                return Ok(());
            }
            (None, None) => return Ok(()),
            (None, Some(t)) => {
                // The super node is gone: so is every pod on it.
                let uid = t.metadata.uid.clone().unwrap_or_default();
                match writer::delete(&api, target(cluster, name), &uid, None).await {
                    Ok(_) => {
                        count_write(KIND_NODE, "tenant", "delete");
                        record(view, cluster, name, None)?;
                        placement::forget_pair(view, cluster, name).map_err(SyncError::View)?;
                        return Ok(());
                    }
                    Err(e) if e.is_conflict() => refresh(&api, view, cluster, name).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            (Some(s), None) => {
                if !wanted {
                    return Ok(());
                }
                let vn = node::virtual_node(&s, vn_agent_port);
                match writer::create(&api, target(cluster, name), &vn).await? {
                    Created::Yes(created) => {
                        count_write(KIND_NODE, "tenant", "create");
                        record(view, cluster, name, Some(&created))?;
                        if placement::pair(view, cluster, name)
                            .map_err(SyncError::View)?
                            .is_none()
                        {
                            placement::set_pair(view, cluster, name, None)
                                .map_err(SyncError::View)?;
                        }
                        if lease::should_renew(Some(&s)) {
                            lifecycle::renew_lease(
                                view,
                                tenant,
                                name,
                                created.metadata.uid.as_deref(),
                            )
                            .await?;
                        }
                    }
                    Created::AlreadyExists => refresh(&api, view, cluster, name).await?,
                }
            }
            (Some(s), Some(t)) => {
                if pair.is_none() && pods == 0 {
                    // A virtual node nobody asked for (left over): collect it after the grace period.
                    placement::set_pair(
                        view,
                        cluster,
                        name,
                        Some(crate::source::mapping::now_micros()),
                    )
                    .map_err(SyncError::View)?;
                }
                let changes = node::changes(&t, &s, vn_agent_port);
                if changes.is_empty() {
                    return Ok(());
                }
                let mut current = t;
                if let Some(obj) = changes.object {
                    match writer::replace(&api, target(cluster, name), &obj).await {
                        Ok(updated) => {
                            count_write(KIND_NODE, "tenant", "update");
                            record(view, cluster, name, Some(&updated))?;
                            current = updated;
                        }
                        Err(e) if e.is_conflict() || e.is_not_found() => {
                            refresh(&api, view, cluster, name).await?;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(status) = changes.status {
                    current.status = Some(status);
                    match writer::replace_status(&api, target(cluster, name), &current).await {
                        Ok(updated) => {
                            count_write(KIND_NODE, "tenant", "update_status");
                            record(view, cluster, name, Some(&updated))?;
                        }
                        Err(e) if e.is_conflict() || e.is_not_found() => {
                            refresh(&api, view, cluster, name).await?;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                return Ok(());
            }
        }
    }
    Err(SyncError::Unsettled {
        kind: KIND_NODE,
        namespace: String::new(),
        name: name.to_owned(),
    })
}

/// Live read of a tenant node, recorded in the view.
async fn refresh(api: &Api<Node>, view: &View, cluster: &str, name: &str) -> Result<(), SyncError> {
    let live = writer::get(api, target(cluster, name)).await?;
    record(view, cluster, name, live.as_ref())
}

/// Called by the pod reconcile of tenant pod `ctx.key` before it binds the pod: records the super pod's node
/// (or its absence) in the placement entries and, when the pod is on a node, makes sure the tenant's virtual
/// node exists (an error here retries the pod later, so a tenant pod is never bound to a node the tenant
/// does not have).
pub async fn track_pod(ctx: &Ctx<'_>) -> Result<(), SyncError> {
    let key = ctx.key;
    let cluster = ctx.tenant.info.cluster_key.as_str();
    let super_ns = super_namespace(cluster, &key.namespace);
    let super_pod = ctx
        .view
        .get(SUPER_CLUSTER, KIND_POD, &super_ns, &key.name)
        .map_err(SyncError::View)?
        .and_then(|s| serde_json::from_value::<Pod>(s.object).ok());
    let ours = super_pod.as_ref().is_some_and(|p| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::naming::ANNOTATION_CLUSTER))
            .is_some_and(|c| c == cluster)
    });
    let node = super_pod
        .as_ref()
        .filter(|_| ours)
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let placed = placement::set_pod_node(
        ctx.view,
        cluster,
        &key.namespace,
        &key.name,
        node.as_deref(),
        crate::source::mapping::now_micros(),
    )
    .map_err(SyncError::View)?;
    if let Some(node) = placed.node {
        let exists = read_node(ctx.view, cluster, &node)?.is_some_and(|n| node::is_virtual(&n));
        if !exists {
            sync_tenant_node(ctx.view, ctx.tenant, &node, ctx.resources.vn_agent_port()).await?;
        }
    }
    Ok(())
}

/// Deletes tenant `tenant`'s virtual node `name` if it is one (uid precondition). Returns whether it is gone.
pub async fn delete_virtual_node(
    view: &View,
    tenant: &Tenant,
    name: &str,
) -> Result<bool, SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let api: Api<Node> = Api::all(tenant.client.clone());
    let live = writer::get(&api, target(cluster, name)).await?;
    let Some(live) = live else {
        record(view, cluster, name, None)?;
        return Ok(true);
    };
    if !node::is_virtual(&live) {
        record(view, cluster, name, Some(&live))?;
        return Ok(true);
    }
    let uid = live.metadata.uid.clone().unwrap_or_default();
    match writer::delete(&api, target(cluster, name), &uid, None).await {
        Ok(Deleted::Object(_) | Deleted::Gone | Deleted::NotFound) => {
            count_write(KIND_NODE, "tenant", "delete");
            record(view, cluster, name, None)?;
            Ok(true)
        }
        Err(e) if e.is_conflict() => Ok(false),
        Err(e) => Err(e.into()),
    }
}
