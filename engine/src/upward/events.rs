//! Events as a [`Resource`]: super Events (watched whole: they carry no syncer marks) are mapped at the source
//! through the owner of their super namespace (`SuperKey::Namespace`: the namespace's marks in the view name
//! the tenant and tenant namespace; events in other namespaces never enter the log) to
//! `WorkKey{tenant, Event, tenant ns, name}`, so they are reconciled in the tenant namespace's shard and
//! charged to that tenant. The reconcile writes the tenant copy ([`super::event`]) when it is missing or
//! differs from the copy the view holds, and deletes the copy when the super event goes.

use k8s_openapi::api::core::v1::Event;
use kube::Api;

use super::KIND_EVENT;
use super::event;
use crate::log::View;
use crate::naming::{ANNOTATION_UID, super_namespace};
use crate::reconcile::resource::{Check, Ctx, Drift, Resource, SuperLocation, SyncFuture};
use crate::reconcile::writer::{self, Created, Target};
use crate::reconcile::{SyncError, TenantInfo, count_write};
use crate::record::{SUPER_CLUSTER, WorkKey};
use crate::source::{KindSpec, SuperKey};

/// Plan → write rounds before giving up (the shard retries).
const MAX_PASSES: usize = 4;

/// Super events about tenant Pods and Services → tenant events.
#[derive(Debug, Default)]
pub struct EventResource;

impl Resource for EventResource {
    fn kind(&self) -> &'static str {
        KIND_EVENT
    }

    fn spec(&self) -> KindSpec {
        KindSpec::of::<Event>().super_only(SuperKey::Namespace)
    }

    fn reconcile_up<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(sync_event(ctx))
    }

    fn super_location(&self, tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation> {
        Some(SuperLocation {
            namespace: super_namespace(&tenant.cluster_key, &key.namespace),
            name: key.name.clone(),
        })
    }

    fn check(&self, check: &Check<'_>) -> Drift {
        match check.objects::<Event>() {
            (None, Some(s)) if event::involved(&s).is_some() => Drift::Different("event missing"),
            (Some(t), None) if is_ours(&t) => Drift::Different("event outlived its super event"),
            _ => Drift::InSync,
        }
    }
}

fn is_ours(ev: &Event) -> bool {
    ev.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(super::ANNOTATION_SUPER_UID))
}

fn read(view: &View, cluster: &str, ns: &str, name: &str) -> Result<Option<Event>, SyncError> {
    Ok(view
        .get(cluster, KIND_EVENT, ns, name)
        .map_err(SyncError::View)?
        .and_then(|s| serde_json::from_value::<Event>(s.object).ok()))
}

fn record(
    view: &View,
    cluster: &str,
    ns: &str,
    name: &str,
    ev: Option<&Event>,
) -> Result<(), SyncError> {
    let value = ev
        .map(serde_json::to_value)
        .transpose()
        .map_err(SyncError::Encode)?;
    view.record_write(cluster, KIND_EVENT, ns, name, value.as_ref())
        .map_err(SyncError::View)
}

/// The uid of tenant object `kind` `ns/name`: from the tenant object in the view, else from the `uid` mark of
/// its super copy.
fn tenant_uid(
    view: &View,
    cluster: &str,
    kind: &str,
    ns: &str,
    super_ns: &str,
    name: &str,
) -> Result<Option<String>, SyncError> {
    if let Some(t) = view.get(cluster, kind, ns, name).map_err(SyncError::View)?
        && !t.uid.is_empty()
    {
        return Ok(Some(t.uid));
    }
    Ok(view
        .get(SUPER_CLUSTER, kind, super_ns, name)
        .map_err(SyncError::View)?
        .and_then(|s| {
            s.object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANNOTATION_UID))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        }))
}

async fn sync_event(ctx: &Ctx<'_>) -> Result<(), SyncError> {
    let key = ctx.key;
    let cluster = key.cluster.as_str();
    let ns = key.namespace.as_str();
    let super_ns = super_namespace(&ctx.tenant.info.cluster_key, ns);
    let api: Api<Event> = Api::namespaced(ctx.tenant.client.clone(), ns);
    let target = Target {
        cluster,
        kind: KIND_EVENT,
        namespace: ns,
        name: &key.name,
    };
    for _ in 0..MAX_PASSES {
        let super_event = read(ctx.view, SUPER_CLUSTER, &super_ns, &key.name)?;
        let existing = read(ctx.view, cluster, ns, &key.name)?;
        let Some(super_event) = super_event else {
            let Some(existing) = existing.filter(is_ours) else {
                return Ok(());
            };
            let uid = existing.metadata.uid.clone().unwrap_or_default();
            match writer::delete(&api, target, &uid, None).await {
                Ok(_) => {
                    count_write(KIND_EVENT, "tenant", "delete");
                    return record(ctx.view, cluster, ns, &key.name, None);
                }
                Err(e) if e.is_conflict() => {
                    let live = writer::get(&api, target).await?;
                    record(ctx.view, cluster, ns, &key.name, live.as_ref())?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let Some((kind, object)) = event::involved(&super_event) else {
            return Ok(());
        };
        let Some(uid) = tenant_uid(ctx.view, cluster, kind, ns, &super_ns, object)? else {
            tracing::debug!(%cluster, namespace = ns, kind, object, "event about an object the tenant does not have; not copied");
            return Ok(());
        };
        let desired = event::tenant_event(&super_event, &super_ns, ns, &uid);
        match existing {
            None => match writer::create(&api, target, &desired).await? {
                Created::Yes(created) => {
                    count_write(KIND_EVENT, "tenant", "create");
                    return record(ctx.view, cluster, ns, &key.name, Some(&created));
                }
                Created::AlreadyExists => {
                    let live = writer::get(&api, target).await?;
                    record(ctx.view, cluster, ns, &key.name, live.as_ref())?;
                }
            },
            Some(existing) if !is_ours(&existing) => {
                tracing::debug!(%cluster, namespace = ns, name = %key.name, "tenant event of this name is not a copy; left alone");
                return Ok(());
            }
            Some(existing) => {
                let Some(update) = event::update(&existing, &desired) else {
                    return Ok(());
                };
                match writer::replace(&api, target, &update).await {
                    Ok(updated) => {
                        count_write(KIND_EVENT, "tenant", "update");
                        return record(ctx.view, cluster, ns, &key.name, Some(&updated));
                    }
                    Err(e) if e.is_conflict() || e.is_not_found() => {
                        let live = writer::get(&api, target).await?;
                        record(ctx.view, cluster, ns, &key.name, live.as_ref())?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(SyncError::Unsettled {
        kind: KIND_EVENT,
        namespace: ns.to_owned(),
        name: key.name.clone(),
    })
}
