//! PersistentVolumes as a [`Resource`]: super PVs (watched whole: provisioners create them, not the syncer)
//! are keyed under the super cluster. A reconcile finds the owning tenant through the PV's `claimRef`
//! namespace (a super namespace whose marks in the view name the tenant and tenant namespace), writes that
//! tenant's copy ([`super::pv`]) while the PV is bound, and deletes marked copies from every tenant that is not
//! (or no longer) the owner.

use k8s_openapi::api::core::v1::{Namespace, PersistentVolume};
use kube::Api;

use super::{KIND_PV, pv};
use crate::log::View;
use crate::naming::{self, ANNOTATION_UID};
use crate::reconcile::resource::{Check, Drift, Resource, SuperCtx, SuperLocation, SyncFuture};
use crate::reconcile::writer::{self, Created, Target};
use crate::reconcile::{KIND_NAMESPACE, Lookup, SyncError, Tenant, TenantInfo, count_write};
use crate::record::{SUPER_CLUSTER, WorkKey};
use crate::source::{KindSpec, SuperKey};

/// Plan → write rounds per tenant before giving up (the shard retries).
const MAX_PASSES: usize = 4;
/// Kind name of claims in the view.
const KIND_PVC: &str = "PersistentVolumeClaim";

/// Super PVs bound to tenant claims → tenant PVs.
#[derive(Debug, Default)]
pub struct VolumeResource;

impl Resource for VolumeResource {
    fn kind(&self) -> &'static str {
        KIND_PV
    }

    fn spec(&self) -> KindSpec {
        KindSpec::of::<PersistentVolume>().super_only(SuperKey::Cluster)
    }

    fn reconcile_super<'a>(&'a self, ctx: &'a SuperCtx<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let name = &ctx.key.name;
            let super_pv = read(ctx.view, SUPER_CLUSTER, name)?;
            let owner = match &super_pv {
                Some(p) => owner(ctx.view, p)?,
                None => None,
            };
            let mut keys = ctx.tenants.cluster_keys();
            keys.sort();
            for cluster in keys {
                let Lookup::Active(tenant) = ctx.tenants.lookup(&cluster) else {
                    continue;
                };
                let desired = match (&super_pv, &owner) {
                    (Some(p), Some((key, ns, claim))) if *key == cluster => {
                        let claim_uid = claim_uid(ctx.view, key, ns, claim)?;
                        Some(pv::tenant_pv(p, ns, &claim_uid))
                    }
                    _ => None,
                };
                sync_into(ctx.view, &tenant, name, desired).await?;
            }
            Ok(())
        })
    }

    fn super_location(&self, _tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation> {
        Some(SuperLocation {
            namespace: String::new(),
            name: key.name.clone(),
        })
    }

    fn check(&self, check: &Check<'_>) -> Drift {
        let (tenant_pv, super_pv) = check.objects::<PersistentVolume>();
        let owned = super_pv.and_then(|p| {
            owner(check.view, &p)
                .ok()
                .flatten()
                .filter(|(k, _, _)| *k == check.tenant.cluster_key)
        });
        match (tenant_pv.filter(pv::is_ours), owned) {
            (None, Some(_)) => Drift::Different("volume missing"),
            (Some(_), None) => Drift::Different("volume no longer bound to the tenant"),
            _ => Drift::InSync,
        }
    }
}

/// The tenant owning a super PV: (cluster key, tenant namespace, claim name), while the PV is bound to a claim
/// in one of the tenant's super namespaces.
fn owner(
    view: &View,
    super_pv: &PersistentVolume,
) -> Result<Option<(String, String, String)>, SyncError> {
    let phase = super_pv.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Released" | "Failed")) {
        return Ok(None);
    }
    let Some((super_ns, claim)) = pv::claim(super_pv) else {
        return Ok(None);
    };
    let ns = view
        .get(SUPER_CLUSTER, KIND_NAMESPACE, "", super_ns)
        .map_err(SyncError::View)?
        .and_then(|s| serde_json::from_value::<Namespace>(s.object).ok());
    Ok(ns
        .as_ref()
        .and_then(|ns| naming::tenant_identity(&ns.metadata))
        .map(|id| (id.cluster_key, id.namespace, claim.to_owned())))
}

/// The uid of the tenant claim (the tenant object in the view, else the `uid` mark of its super copy).
fn claim_uid(view: &View, cluster: &str, ns: &str, claim: &str) -> Result<String, SyncError> {
    if let Some(t) = view
        .get(cluster, KIND_PVC, ns, claim)
        .map_err(SyncError::View)?
        && !t.uid.is_empty()
    {
        return Ok(t.uid);
    }
    let super_ns = naming::super_namespace(cluster, ns);
    Ok(view
        .get(SUPER_CLUSTER, KIND_PVC, &super_ns, claim)
        .map_err(SyncError::View)?
        .and_then(|s| {
            s.object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANNOTATION_UID))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default())
}

fn read(view: &View, cluster: &str, name: &str) -> Result<Option<PersistentVolume>, SyncError> {
    Ok(view
        .get(cluster, KIND_PV, "", name)
        .map_err(SyncError::View)?
        .and_then(|s| serde_json::from_value(s.object).ok()))
}

fn record(
    view: &View,
    cluster: &str,
    name: &str,
    obj: Option<&PersistentVolume>,
) -> Result<(), SyncError> {
    let value = obj
        .map(serde_json::to_value)
        .transpose()
        .map_err(SyncError::Encode)?;
    view.record_write(cluster, KIND_PV, "", name, value.as_ref())
        .map_err(SyncError::View)
}

/// Makes tenant `tenant`'s PV `name` be `desired` (or absent: only a marked copy is deleted).
async fn sync_into(
    view: &View,
    tenant: &Tenant,
    name: &str,
    desired: Option<PersistentVolume>,
) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let api: Api<PersistentVolume> = Api::all(tenant.client.clone());
    let target = Target {
        cluster,
        kind: KIND_PV,
        namespace: "",
        name,
    };
    for _ in 0..MAX_PASSES {
        let existing = read(view, cluster, name)?;
        let Some(desired) = &desired else {
            let Some(existing) = existing.filter(pv::is_ours) else {
                return Ok(());
            };
            let uid = existing.metadata.uid.clone().unwrap_or_default();
            match writer::delete(&api, target, &uid, None).await {
                Ok(_) => {
                    count_write(KIND_PV, "tenant", "delete");
                    return record(view, cluster, name, None);
                }
                Err(e) if e.is_conflict() => {
                    let live = writer::get(&api, target).await?;
                    record(view, cluster, name, live.as_ref())?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let Some(existing) = existing else {
            match writer::create(&api, target, desired).await? {
                Created::Yes(created) => {
                    count_write(KIND_PV, "tenant", "create");
                    record(view, cluster, name, Some(&created))?;
                }
                Created::AlreadyExists => {
                    let live = writer::get(&api, target).await?;
                    record(view, cluster, name, live.as_ref())?;
                }
            }
            continue;
        };
        if !pv::is_ours(&existing) {
            tracing::info!(%cluster, name, "tenant has its own PersistentVolume of this name; left alone");
            return Ok(());
        }
        let (object, status) = pv::changes(&existing, desired);
        if object.is_none() && status.is_none() {
            return Ok(());
        }
        let mut current = existing;
        if let Some(obj) = object {
            match writer::replace(&api, target, &obj).await {
                Ok(updated) => {
                    count_write(KIND_PV, "tenant", "update");
                    record(view, cluster, name, Some(&updated))?;
                    current = updated;
                }
                Err(e) if e.is_conflict() || e.is_not_found() => {
                    let live = writer::get(&api, target).await?;
                    record(view, cluster, name, live.as_ref())?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(status) = status {
            current.status = Some(status);
            match writer::replace_status(&api, target, &current).await {
                Ok(updated) => {
                    count_write(KIND_PV, "tenant", "update_status");
                    record(view, cluster, name, Some(&updated))?;
                }
                Err(e) if e.is_conflict() || e.is_not_found() => {
                    let live = writer::get(&api, target).await?;
                    record(view, cluster, name, live.as_ref())?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
    Err(SyncError::Unsettled {
        kind: KIND_PV,
        namespace: String::new(),
        name: name.to_owned(),
    })
}
