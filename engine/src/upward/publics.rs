//! Public objects as [`Resource`]s, one per kind (StorageClass, PriorityClass, IngressClass,
//! CustomResourceDefinition). The super cluster is watched with the selector
//! `tenancy.x-k8s.io/super.public=true` (an object that loses the label leaves the watch as a deletion), keyed
//! under the super cluster, and a reconcile fans the object out to every registered tenant, writing only where
//! the tenant copy the view holds differs. [`sync_public_objects_into`] does the same for one tenant, for a
//! tenant registered while the syncer runs.

use kube::Api;
use kube::api::DynamicObject;
use kube::core::ApiResource;
use serde_json::Value;

use super::public;
use crate::log::View;
use crate::naming::LABEL_SUPER_PUBLIC;
use crate::reconcile::resource::{
    Check, Ctx, Drift, Resource, SuperCtx, SuperLocation, SyncFuture,
};
use crate::reconcile::writer::{self, Created, Target};
use crate::reconcile::{Lookup, SyncError, Tenant, TenantInfo, count_write};
use crate::record::{SUPER_CLUSTER, WorkKey};
use crate::source::{KindSpec, SuperKey, Watch};

/// Plan → write rounds per tenant before giving up (the shard retries).
const MAX_PASSES: usize = 4;

/// One public kind.
#[derive(Debug)]
pub struct PublicResource {
    spec: KindSpec,
    kind: &'static str,
}

impl PublicResource {
    /// The public resource of a k8s-openapi cluster-scoped type.
    #[must_use]
    pub fn of<K>(kind: &'static str) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let mut spec = KindSpec::of::<K>();
        spec.super_watch = Watch::Labels(format!("{LABEL_SUPER_PUBLIC}=true"));
        spec.super_key = SuperKey::Cluster;
        spec.tenant_watch = Watch::Off;
        Self { spec, kind }
    }
}

/// The four public kinds.
#[must_use]
pub fn public_resources() -> Vec<PublicResource> {
    use k8s_openapi::api::networking::v1::IngressClass;
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    use k8s_openapi::api::storage::v1::StorageClass;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    vec![
        PublicResource::of::<StorageClass>("StorageClass"),
        PublicResource::of::<PriorityClass>("PriorityClass"),
        PublicResource::of::<IngressClass>("IngressClass"),
        PublicResource::of::<CustomResourceDefinition>("CustomResourceDefinition"),
    ]
}

impl Resource for PublicResource {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn spec(&self) -> KindSpec {
        self.spec.clone()
    }

    fn reconcile_up<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(sync_into(
            ctx.view,
            ctx.tenant,
            self.kind,
            &self.spec.resource,
            &ctx.key.name,
        ))
    }

    fn reconcile_super<'a>(&'a self, ctx: &'a SuperCtx<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            let mut first_error = None;
            let mut keys = ctx.tenants.cluster_keys();
            keys.sort();
            for cluster in keys {
                let Lookup::Active(tenant) = ctx.tenants.lookup(&cluster) else {
                    continue;
                };
                if let Err(err) = sync_into(
                    ctx.view,
                    &tenant,
                    self.kind,
                    &self.spec.resource,
                    &ctx.key.name,
                )
                .await
                {
                    tracing::debug!(%cluster, kind = self.kind, name = %ctx.key.name, error = %err, "public object not synced");
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
        let super_public = check.super_object.filter(|s| public::is_public(s));
        let tenant_ours = check.tenant_object.filter(|t| public::is_ours(t));
        match (tenant_ours, super_public) {
            (None, Some(_)) if check.tenant_object.is_none() => {
                Drift::Different("public object missing")
            }
            (Some(_), None) => Drift::Different("public object withdrawn"),
            (Some(t), Some(s)) if public::update(t, &public::tenant_copy(s)).is_some() => {
                Drift::Different("public object")
            }
            _ => Drift::InSync,
        }
    }
}

fn read(view: &View, cluster: &str, kind: &str, name: &str) -> Result<Option<Value>, SyncError> {
    Ok(view
        .get(cluster, kind, "", name)
        .map_err(SyncError::View)?
        .map(|s| s.object))
}

fn record(
    view: &View,
    cluster: &str,
    kind: &str,
    name: &str,
    obj: Option<&DynamicObject>,
) -> Result<(), SyncError> {
    let value = obj
        .map(serde_json::to_value)
        .transpose()
        .map_err(SyncError::Encode)?;
    view.record_write(cluster, kind, "", name, value.as_ref())
        .map_err(SyncError::View)
}

fn to_dynamic(v: Value) -> Result<DynamicObject, SyncError> {
    serde_json::from_value(v).map_err(SyncError::Encode)
}

/// Makes tenant `tenant`'s copy of public object `kind` `name` match the super object: created or updated
/// while the super object is public, deleted (only a marked copy) when it is not or is gone.
pub async fn sync_into(
    view: &View,
    tenant: &Tenant,
    kind: &'static str,
    resource: &ApiResource,
    name: &str,
) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    let api: Api<DynamicObject> = Api::all_with(tenant.client.clone(), resource);
    let target = Target {
        cluster,
        kind,
        namespace: "",
        name,
    };
    for _ in 0..MAX_PASSES {
        let super_obj = read(view, SUPER_CLUSTER, kind, name)?.filter(public::is_public);
        let existing = read(view, cluster, kind, name)?;
        let Some(super_obj) = super_obj else {
            let Some(existing) = existing.filter(public::is_ours) else {
                return Ok(());
            };
            let uid = existing
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match writer::delete(&api, target, &uid, None).await {
                Ok(_) => {
                    count_write(kind, "tenant", "delete");
                    return record(view, cluster, kind, name, None);
                }
                Err(e) if e.is_conflict() => {
                    let live = writer::get(&api, target).await?;
                    record(view, cluster, kind, name, live.as_ref())?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let desired = public::tenant_copy(&super_obj);
        match existing {
            None => match writer::create(&api, target, &to_dynamic(desired)?).await? {
                Created::Yes(created) => {
                    count_write(kind, "tenant", "create");
                    return record(view, cluster, kind, name, Some(&created));
                }
                Created::AlreadyExists => {
                    let live = writer::get(&api, target).await?;
                    record(view, cluster, kind, name, live.as_ref())?;
                }
            },
            Some(existing) if !public::is_ours(&existing) => {
                tracing::info!(%cluster, kind, name, "tenant has its own object of this name; public object not copied");
                return Ok(());
            }
            Some(existing) => {
                let Some(update) = public::update(&existing, &desired) else {
                    return Ok(());
                };
                match writer::replace(&api, target, &to_dynamic(update)?).await {
                    Ok(updated) => {
                        count_write(kind, "tenant", "update");
                        return record(view, cluster, kind, name, Some(&updated));
                    }
                    Err(e) if e.is_conflict() || e.is_not_found() => {
                        let live = writer::get(&api, target).await?;
                        record(view, cluster, kind, name, live.as_ref())?;
                    }
                    Err(e) if e.code() == "invalid" => {
                        // An immutable field changed (a StorageClass's provisioner, a PriorityClass's
                        // value): replace the copy.
                        let uid = existing
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        writer::delete(&api, target, &uid, None).await?;
                        count_write(kind, "tenant", "delete");
                        record(view, cluster, kind, name, None)?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(SyncError::Unsettled {
        kind,
        namespace: String::new(),
        name: name.to_owned(),
    })
}

/// Syncs every public object of the `enabled` kinds into `tenant` (for a tenant registered while the syncer
/// runs): copies what the view holds as public in the super cluster, and deletes the tenant's marked copies of
/// objects that are no longer public (found with one live list per kind).
pub async fn sync_public_objects_into(
    view: &View,
    tenant: &Tenant,
    enabled: &[String],
) -> Result<(), SyncError> {
    let cluster = tenant.info.cluster_key.as_str();
    for res in public_resources()
        .into_iter()
        .filter(|r| enabled.iter().any(|k| k == r.kind))
    {
        let api: Api<DynamicObject> = Api::all_with(tenant.client.clone(), &res.spec.resource);
        let target = Target {
            cluster,
            kind: res.kind,
            namespace: "",
            name: "",
        };
        let live = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| writer::WriteError {
                verb: "list",
                kind: target.kind,
                cluster: cluster.to_owned(),
                namespace: String::new(),
                name: String::new(),
                source: e,
            })?;
        let mut names: Vec<String> = Vec::new();
        for obj in live.items {
            let Some(name) = obj.metadata.name.clone() else {
                continue;
            };
            record(view, cluster, res.kind, &name, Some(&obj))?;
            names.push(name);
        }
        for (_, name, _) in view
            .list(SUPER_CLUSTER, res.kind)
            .map_err(SyncError::View)?
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in names {
            sync_into(view, tenant, res.kind, &res.spec.resource, &name).await?;
        }
    }
    Ok(())
}
