//! One reconcile of a VirtualCluster. Never waits for anything: it does what can be done now, writes the
//! status (only when it changed) and returns when to look again; watches on the objects it creates wake
//! it earlier.
//!
//! ```text
//! deleted? ── yes ─► unregister from the syncer ─► stop servers ─► delete tenant + root namespaces
//!    │                 ─► (gone?) remove the finalizer
//!    no
//!    ▼
//! validate spec ─► ClusterVersion exists and fits the provisioner? ── no ─► phase Error (nothing created)
//!    ▼ yes
//! finalizer ─► provisioner.ensure (namespace, PKI, kubeconfigs, control plane) ─► ready?
//!    ── no ─► phase Provisioning (Updating if it was Running)
//!    ── yes ─► register with the syncer ─► phase Running
//! ```

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use tenancy_naming as naming;
use time::OffsetDateTime;
use vc_api::conditions::{self, reasons};
use vc_api::{ClusterVersion, Condition, FINALIZER, Phase, VirtualCluster, VirtualClusterStatus};

use crate::error::{Error, kube_err};
use crate::provision::{Provisioner, Readiness, Tenant};
use crate::registry::{Registrar, Registration};
use crate::super_api;
use crate::validate::{self, Invalid};

/// Requeue while waiting for components (watches usually wake the controller first).
pub const WAIT_REQUEUE: Duration = Duration::from_secs(30);
/// Requeue of a Running VirtualCluster at the latest (re-registration, certificate checks).
pub const RUNNING_REQUEUE: Duration = Duration::from_secs(600);
/// Requeue after a failed registration or while deletion is in progress.
pub const SHORT_REQUEUE: Duration = Duration::from_secs(2);
/// Requeue of a VirtualCluster in Error whose ClusterVersion is missing (its creation also wakes it).
pub const ERROR_REQUEUE: Duration = Duration::from_secs(60);

/// What a reconcile needs.
pub struct Context {
    /// Client of the super cluster.
    pub client: kube::Client,
    /// How control planes are made.
    pub provisioner: Arc<dyn Provisioner>,
    /// The syncer's registry, if one is configured.
    pub registrar: Option<Arc<dyn Registrar>>,
    /// The clock (tests move it forward to exercise certificate rotation).
    pub now: fn() -> OffsetDateTime,
}

fn now_rfc3339(now: OffsetDateTime) -> String {
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn condition(
    vc: &VirtualCluster,
    now: OffsetDateTime,
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        observed_generation: vc.metadata.generation,
        last_transition_time: now_rfc3339(now),
        reason: reason.to_string(),
        message: message.into(),
    }
}

/// Writes `status` when it differs from the stored one. Returns `true` when it wrote.
async fn write_status(
    ctx: &Context,
    vc: &VirtualCluster,
    status: VirtualClusterStatus,
) -> Result<bool, Error> {
    if vc.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let api: Api<VirtualCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    // A merge patch replaces the conditions list as a whole; absent optional fields become null so a
    // stale reason or message never lingers.
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        for field in [
            "reason",
            "message",
            "clusterNamespace",
            "observedGeneration",
        ] {
            obj.entry(field).or_insert(serde_json::Value::Null);
        }
    }
    api.patch_status(
        &vc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await
    .map_err(kube_err(format!("write status of {}", vc.name_any())))?;
    Ok(true)
}

/// Phase Error with `invalid`'s reason; nothing is created.
async fn fail(
    ctx: &Context,
    vc: &VirtualCluster,
    mut status: VirtualClusterStatus,
    invalid: Invalid,
    now: OffsetDateTime,
) -> Result<(), Error> {
    tracing::info!(vc = %vc.name_any(), reason = invalid.reason, message = %invalid.message, "invalid VirtualCluster");
    status.phase = Some(Phase::Error);
    status.reason = Some(invalid.reason.to_string());
    status.message = Some(invalid.message.clone());
    conditions::set(
        &mut status.conditions,
        condition(
            vc,
            now,
            conditions::VALID,
            false,
            invalid.reason,
            invalid.message,
        ),
    );
    write_status(ctx, vc, status).await.map(|_| ())
}

async fn ensure_finalizer(ctx: &Context, vc: &VirtualCluster) -> Result<(), Error> {
    if vc.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = vc.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let api: Api<VirtualCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": vc.resource_version(),
    }});
    api.patch(
        &vc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(kube_err(format!("add finalizer to {}", vc.name_any())))?;
    Ok(())
}

/// Reconciles one VirtualCluster (the controller's reconcile function).
pub async fn reconcile(vc: Arc<VirtualCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = (ctx.now)();
    if vc.metadata.deletion_timestamp.is_some() {
        return cleanup(&vc, &ctx).await;
    }
    let mut status = vc.status.clone().unwrap_or_default();
    status.observed_generation = vc.metadata.generation;
    let checked = match validate::check(&vc) {
        Ok(c) => c,
        Err(invalid) => {
            fail(&ctx, &vc, status, invalid, now).await?;
            return Ok(Action::await_change());
        }
    };
    let cvs: Api<ClusterVersion> = Api::all(ctx.client.clone());
    let cv_name = &vc.spec.cluster_version_name;
    let Some(cv) = cvs
        .get_opt(cv_name)
        .await
        .map_err(kube_err(format!("read ClusterVersion {cv_name}")))?
    else {
        let invalid = Invalid {
            reason: reasons::CLUSTER_VERSION_NOT_FOUND,
            message: format!("ClusterVersion {cv_name:?} does not exist"),
        };
        fail(&ctx, &vc, status, invalid, now).await?;
        return Ok(Action::requeue(ERROR_REQUEUE));
    };
    if let Err(invalid) = ctx.provisioner.check_version(&cv) {
        fail(&ctx, &vc, status, invalid, now).await?;
        return Ok(Action::await_change());
    }
    conditions::set(
        &mut status.conditions,
        condition(
            &vc,
            now,
            conditions::VALID,
            true,
            reasons::SPEC_VALID,
            format!("ClusterVersion {cv_name}"),
        ),
    );
    ensure_finalizer(&ctx, &vc).await?;
    status.cluster_namespace = Some(checked.cluster_key.clone());
    let was_up = matches!(status.phase, Some(Phase::Running | Phase::Updating));

    let tenant = Tenant {
        vc: &vc,
        checked: &checked,
        cv: &cv,
        now,
    };
    let provisioned = match ctx.provisioner.ensure(&ctx.client, tenant).await {
        Ok(p) => p,
        Err(error) => {
            let message = format!("{error}");
            status.phase = Some(if was_up {
                Phase::Updating
            } else {
                Phase::Provisioning
            });
            status.reason = Some(reasons::PROVISIONING_FAILED.to_string());
            status.message = Some(message.clone());
            conditions::set(
                &mut status.conditions,
                condition(
                    &vc,
                    now,
                    conditions::PROVISIONED,
                    false,
                    reasons::PROVISIONING_FAILED,
                    message,
                ),
            );
            write_status(&ctx, &vc, status).await?;
            return Err(error);
        }
    };
    conditions::set(
        &mut status.conditions,
        condition(
            &vc,
            now,
            conditions::PROVISIONED,
            true,
            reasons::PROVISIONED,
            format!("{} control plane objects present", ctx.provisioner.name()),
        ),
    );
    let mut requeue = RUNNING_REQUEUE;
    match &provisioned.readiness {
        Readiness::Waiting(what) => {
            status.phase = Some(if was_up {
                Phase::Updating
            } else {
                Phase::Provisioning
            });
            status.reason = Some(reasons::WAITING_FOR_COMPONENTS.to_string());
            status.message = Some(what.clone());
            conditions::set(
                &mut status.conditions,
                condition(
                    &vc,
                    now,
                    conditions::READY,
                    false,
                    reasons::WAITING_FOR_COMPONENTS,
                    what.clone(),
                ),
            );
            requeue = WAIT_REQUEUE;
        }
        Readiness::Ready => {
            conditions::set(
                &mut status.conditions,
                condition(
                    &vc,
                    now,
                    conditions::READY,
                    true,
                    reasons::COMPONENTS_READY,
                    "control plane answers",
                ),
            );
            let registered = register(&ctx, &vc, &checked.cluster_key, &provisioned).await;
            let (ok, reason, message) = match registered {
                Some(Ok(key)) => (true, reasons::REGISTERED, format!("syncer serves {key}")),
                Some(Err(e)) => {
                    requeue = SHORT_REQUEUE * 5;
                    (false, reasons::REGISTRATION_FAILED, e)
                }
                None => (
                    false,
                    reasons::NO_SYNCER,
                    "no syncer configured: the tenant's objects are not synced".to_string(),
                ),
            };
            conditions::set(
                &mut status.conditions,
                condition(&vc, now, conditions::REGISTERED, ok, reason, message),
            );
            status.phase = Some(Phase::Running);
            status.reason = Some(reasons::RUNNING.to_string());
            status.message = Some(format!("{} control plane ready", ctx.provisioner.name()));
            let renew_in = provisioned.next_renewal - now;
            if let Ok(renew_in) = Duration::try_from(renew_in) {
                requeue = requeue.min(renew_in.max(Duration::from_secs(1)));
            }
        }
    }
    if write_status(&ctx, &vc, status).await? || provisioned.changed {
        tracing::info!(
            vc = %format!("{}/{}", vc.namespace().unwrap_or_default(), vc.name_any()),
            cluster = %checked.cluster_key,
            ready = matches!(provisioned.readiness, Readiness::Ready),
            "reconciled"
        );
    }
    Ok(Action::requeue(requeue))
}

async fn register(
    ctx: &Context,
    vc: &VirtualCluster,
    cluster_key: &str,
    provisioned: &crate::provision::Provisioned,
) -> Option<Result<String, String>> {
    let registrar = ctx.registrar.as_ref()?;
    let registration = Registration {
        vc_namespace: vc.namespace().unwrap_or_default(),
        vc_name: vc.name_any(),
        vc_uid: vc.uid().unwrap_or_default(),
        kubeconfig: provisioned.admin_kubeconfig.clone(),
        cluster_namespace: cluster_key.to_string(),
        opaque_meta_prefixes: vc.spec.opaque_meta_prefixes.clone(),
        transparent_meta_prefixes: vc.spec.transparent_meta_prefixes.clone(),
        kubelet_client_ca_pem: provisioned.root_ca_pem.clone(),
        cluster_domain: vc.spec.cluster_domain.clone().unwrap_or_default(),
    };
    let result = registrar.register(&registration).await;
    if let Err(error) = &result {
        tracing::warn!(vc = %vc.name_any(), %error, "registration with the syncer failed");
    }
    Some(result)
}

/// The cluster key of a VirtualCluster being deleted (its status wins; computed otherwise).
fn key_of(vc: &VirtualCluster) -> String {
    naming::cluster_key_with_status(
        &vc.namespace().unwrap_or_default(),
        &vc.name_any(),
        &vc.uid().unwrap_or_default(),
        vc.status
            .as_ref()
            .and_then(|s| s.cluster_namespace.as_deref()),
    )
}

/// Super namespaces the syncer made for this tenant (marked with its cluster key).
async fn tenant_namespaces(
    ctx: &Context,
    vc: &VirtualCluster,
    key: &str,
) -> Result<Vec<Namespace>, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let selector = format!(
        "{}={},{}={}",
        naming::ANNOTATION_VC_NAME,
        vc.name_any(),
        naming::ANNOTATION_VC_NAMESPACE,
        vc.namespace().unwrap_or_default()
    );
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err("list the tenant's super namespaces"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|ns| {
            ns.annotations()
                .get(naming::ANNOTATION_CLUSTER)
                .map(String::as_str)
                == Some(key)
        })
        .collect())
}

/// Deletion: unregister, stop servers, delete the tenant's namespaces, then drop the finalizer.
async fn cleanup(vc: &VirtualCluster, ctx: &Context) -> Result<Action, Error> {
    if !vc.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let key = key_of(vc);
    if let Some(registrar) = &ctx.registrar {
        registrar
            .unregister(
                &vc.namespace().unwrap_or_default(),
                &vc.name_any(),
                &vc.uid().unwrap_or_default(),
            )
            .await
            .map_err(|e| Error::Provision(format!("unregister from the syncer: {e}")))?;
    }
    ctx.provisioner.teardown(&key).await?;
    // The syncer deletes the tenant's super namespaces when unregistering; whatever is left (no syncer,
    // or it was down when the tenant was synced) is deleted here, so nothing outlives the VirtualCluster.
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut remaining = 0usize;
    for ns in tenant_namespaces(ctx, vc, &key).await? {
        remaining += 1;
        if ns.metadata.deletion_timestamp.is_none() {
            let name = ns.name_any();
            if let Err(e) = api.delete(&name, &Default::default()).await
                && !crate::error::is_not_found(&e)
            {
                return Err(kube_err(format!("delete namespace {name}"))(e));
            }
        }
    }
    if super_api::delete_namespace(&ctx.client, &key, vc).await? {
        remaining += 1;
    }
    if remaining > 0 {
        tracing::debug!(vc = %vc.name_any(), remaining, "waiting for namespaces to go");
        return Ok(Action::requeue(SHORT_REQUEUE));
    }
    let finalizers: Vec<String> = vc
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let vcs: Api<VirtualCluster> =
        Api::namespaced(ctx.client.clone(), &vc.namespace().unwrap_or_default());
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": vc.resource_version(),
    }});
    match vcs
        .patch(
            &vc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if crate::error::is_not_found(&e) => {}
        Err(e) => {
            return Err(kube_err(format!("remove finalizer of {}", vc.name_any()))(
                e,
            ));
        }
    }
    tracing::info!(vc = %vc.name_any(), cluster = %key, "VirtualCluster deleted");
    Ok(Action::await_change())
}
