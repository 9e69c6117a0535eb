//! Executes the pod plan ([`super::pod::plan`]) for one work key: reads both sides from the view, performs the
//! planned writes in order, records each answer in the view, and re-plans (at most [`MAX_PASSES`] times) when a
//! write finds the state moved on (409 Conflict, AlreadyExists, a live check that contradicts the view).

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::endpoint::{Endpoint, Wrote, owned_super_namespace, report_to_tenant};
use super::pod::{self, PodAction, REASON_INVALID, REASON_NAME_CONFLICT, REASON_SYNC_REJECTED};
use super::pod_deps::{self, KIND_SERVICE, Resolution};
use super::pod_spec::complete_spec;
use super::pod_token::{service_account, token_secret_name};
use super::pod_token_secret::{self, TokenSecret};
use super::writer::{self, Deleted};
use super::{
    Ctx, KIND_NAMESPACE, KIND_POD, METRIC_UID_MISMATCH_TOTAL, Read, SyncError, count_write,
};
use crate::naming::super_namespace;
use crate::record::SUPER_CLUSTER;

/// Plan → execute rounds before giving up with [`SyncError::Unsettled`] (retried later by the shard).
pub(crate) const MAX_PASSES: usize = 4;

/// What to do after executing a plan.
enum Flow {
    /// Every action ran.
    Done,
    /// The view was refreshed from a live read; plan again.
    Replan,
}

/// Reconciles the pod named by `ctx.key`, both directions.
pub(crate) async fn reconcile(ctx: &Ctx<'_>) -> Result<(), SyncError> {
    let key = ctx.key;
    let super_ns = super_namespace(&ctx.tenant.info.cluster_key, &key.namespace);
    let exec = PodSync {
        ctx,
        super_ns: super_ns.clone(),
        tenant: Endpoint::tenant(ctx, KIND_POD),
        copy: Endpoint::super_copy(ctx, KIND_POD, &super_ns, &key.name),
    };
    for _ in 0..MAX_PASSES {
        let tenant_pod = match ctx.read::<Pod>(&key.cluster, KIND_POD, &key.namespace, &key.name)? {
            Read::Absent => None,
            Read::Object(p) => Some(*p),
            Read::Malformed { uid, error } => {
                let message = format!("the pod cannot be read as a Pod: {error}");
                exec.report(&uid, REASON_INVALID, &message).await?;
                return Ok(());
            }
        };
        let super_pod = match ctx.read::<Pod>(SUPER_CLUSTER, KIND_POD, &super_ns, &key.name)? {
            Read::Absent => None,
            Read::Object(p) => Some(*p),
            Read::Malformed { error, .. } => {
                tracing::warn!(namespace = %super_ns, name = %key.name, %error,
                    "super pod cannot be read as a Pod; left alone");
                metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => KIND_POD).increment(1);
                return Ok(());
            }
        };
        let namespace_uid =
            match ctx.read::<Namespace>(SUPER_CLUSTER, KIND_NAMESPACE, "", &super_ns)? {
                Read::Object(ns) => ns.metadata.uid,
                Read::Absent | Read::Malformed { .. } => None,
            };
        let actions = pod::plan(
            tenant_pod.as_ref(),
            super_pod.as_ref(),
            &ctx.tenant.info,
            &key.namespace,
            &super_ns,
            namespace_uid.as_deref(),
        );
        if actions.is_empty() {
            return exec
                .refresh_token(tenant_pod.as_ref(), super_pod.as_ref())
                .await;
        }
        match exec.run(tenant_pod, actions).await {
            Ok(Flow::Done) => return Ok(()),
            Ok(Flow::Replan) => {}
            Err(SyncError::Write(err)) if err.code() == "invalid" => {
                let uid = exec.tenant_uid_in_view()?;
                exec.report(&uid, REASON_SYNC_REJECTED, &err.summary())
                    .await?;
                return Ok(());
            }
            Err(err) => return Err(err),
        }
    }
    Err(SyncError::Unsettled {
        kind: KIND_POD,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    })
}

struct PodSync<'a> {
    ctx: &'a Ctx<'a>,
    super_ns: String,
    tenant: Endpoint<'a, Pod>,
    copy: Endpoint<'a, Pod>,
}

impl PodSync<'_> {
    fn tenant_uid_in_view(&self) -> Result<String, SyncError> {
        let key = self.ctx.key;
        Ok(self
            .ctx
            .view
            .get(&key.cluster, KIND_POD, &key.namespace, &key.name)
            .map_err(SyncError::View)?
            .map(|s| s.uid)
            .unwrap_or_default())
    }

    async fn report(
        &self,
        uid: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<(), SyncError> {
        report_to_tenant(self.ctx, KIND_POD, uid, reason, message).await
    }

    /// Performs `actions` in order; `tenant` is the tenant pod they were planned from, kept current as tenant
    /// writes return newer versions.
    async fn run(
        &self,
        mut tenant: Option<Pod>,
        actions: Vec<PodAction>,
    ) -> Result<Flow, SyncError> {
        let count = actions.len();
        for (i, action) in actions.into_iter().enumerate() {
            let last = i + 1 == count;
            let flow = match action {
                PodAction::CreateSuper(pod) => self.create_super(*pod, tenant.as_ref()).await?,
                PodAction::UpdateSuper(pod) => self.update_super(&pod).await?,
                PodAction::DeleteSuper {
                    super_uid,
                    grace,
                    verify_tenant_gone,
                } => {
                    self.delete_super(&super_uid, grace, verify_tenant_gone)
                        .await?
                }
                PodAction::UpdateTenantStatus(status) => {
                    let Some(mut pod) = tenant.clone() else {
                        return Ok(Flow::Replan);
                    };
                    pod.status = Some(*status);
                    self.tenant_write("update_status", &pod, &mut tenant)
                        .await?
                }
                PodAction::UpdateTenantMeta {
                    labels,
                    annotations,
                } => {
                    let Some(mut pod) = tenant.clone() else {
                        return Ok(Flow::Replan);
                    };
                    pod.metadata.labels = Some(labels);
                    pod.metadata.annotations = Some(annotations);
                    self.tenant_write("update", &pod, &mut tenant).await?
                }
                PodAction::BindTenant { node } => {
                    let uid = uid_of(tenant.as_ref());
                    match writer::bind(self.tenant.api(), self.tenant.target(), &uid, &node).await {
                        Ok(()) => {
                            count_write(KIND_POD, "tenant", "bind");
                            // The binding answers no object: the live read may carry writes of others made
                            // since the plan, so what follows is planned again from it (never written over it).
                            self.tenant.refresh().await?;
                            return Ok(if last { Flow::Done } else { Flow::Replan });
                        }
                        Err(e) if e.is_conflict() || e.is_not_found() => {
                            self.tenant.refresh().await?;
                            Flow::Replan
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                PodAction::DeleteTenant {
                    grace,
                    verify_super_gone,
                } => {
                    if verify_super_gone && self.copy.refresh().await?.is_some() {
                        Flow::Replan
                    } else {
                        let uid = uid_of(tenant.as_ref());
                        self.delete_tenant(&uid, grace).await?
                    }
                }
                PodAction::Report { reason, message } => {
                    if reason == REASON_NAME_CONFLICT {
                        metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => KIND_POD)
                            .increment(1);
                    }
                    self.report(&uid_of(tenant.as_ref()), reason, &message)
                        .await?;
                    Flow::Done
                }
            };
            if let Flow::Replan = flow {
                return Ok(Flow::Replan);
            }
        }
        Ok(Flow::Done)
    }

    async fn create_super(&self, mut pod: Pod, tenant: Option<&Pod>) -> Result<Flow, SyncError> {
        let tenant_uid = uid_of(tenant);
        let Some(namespace_uid) = owned_super_namespace(self.ctx, &self.super_ns).await? else {
            metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => KIND_NAMESPACE).increment(1);
            let message = format!(
                "super namespace {} belongs to another tenant or namespace; the pod is not created",
                self.super_ns
            );
            self.report(&tenant_uid, REASON_NAME_CONFLICT, &message)
                .await?;
            return Ok(Flow::Done);
        };
        let Some(tenant) = tenant else {
            return Ok(Flow::Replan);
        };
        if pod::bound_through(tenant) == Some(namespace_uid.as_str()) {
            // The view did not know the namespace; it is the one the pod was bound through, so its super pod
            // was lost in it (recorded now by `owned_super_namespace`): plan again.
            return Ok(Flow::Replan);
        }
        if let Some(sa) = token_service_account(tenant, &pod) {
            let outcome =
                pod_token_secret::ensure(self.ctx, &self.super_ns, &namespace_uid, &sa).await?;
            if outcome == TokenSecret::Foreign {
                metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => "Secret").increment(1);
                let message = format!(
                    "secret {}/{} (the service-account token of {sa}) exists in the super cluster and is \
                     not the syncer's; the pod is not created",
                    self.super_ns,
                    token_secret_name(&sa)
                );
                self.report(&tenant_uid, REASON_NAME_CONFLICT, &message)
                    .await?;
                return Ok(Flow::Done);
            }
        }
        if services_synced(self.ctx)? {
            match pod_deps::resolve(self.ctx, tenant)? {
                Resolution::Ready(deps, notices) => {
                    if let Some(spec) = pod.spec.as_mut() {
                        complete_spec(spec, &self.ctx.tenant.info, &self.ctx.key.namespace, &deps);
                    }
                    for (reason, message) in notices {
                        self.report(&tenant_uid, reason, &message).await?;
                    }
                }
                Resolution::Waiting(what, notice) => {
                    if let Some((reason, message)) = notice {
                        self.report(&tenant_uid, reason, &message).await?;
                    }
                    return Err(SyncError::Waiting(what));
                }
            }
        }
        // Already there: adopted only through the plan, which checks the marks of what is there.
        Ok(flow(self.copy.create(&pod).await?))
    }

    /// A pod in sync whose super copy mounts a token secret: renew the token when it is due (a view read
    /// otherwise).
    async fn refresh_token(
        &self,
        tenant: Option<&Pod>,
        super_pod: Option<&Pod>,
    ) -> Result<(), SyncError> {
        let (Some(tenant), Some(super_pod)) = (tenant, super_pod) else {
            return Ok(());
        };
        if tenant.metadata.deletion_timestamp.is_some()
            || super_pod.metadata.deletion_timestamp.is_some()
        {
            return Ok(());
        }
        let Some(sa) = token_service_account(tenant, super_pod) else {
            return Ok(());
        };
        let Read::Object(ns) =
            self.ctx
                .read::<Namespace>(SUPER_CLUSTER, KIND_NAMESPACE, "", &self.super_ns)?
        else {
            return Ok(());
        };
        let namespace_uid = ns.metadata.uid.unwrap_or_default();
        pod_token_secret::ensure(self.ctx, &self.super_ns, &namespace_uid, &sa).await?;
        Ok(())
    }

    async fn update_super(&self, pod: &Pod) -> Result<Flow, SyncError> {
        Ok(flow(self.copy.replace("update", pod).await?))
    }

    async fn delete_super(
        &self,
        super_uid: &str,
        grace: Option<i64>,
        verify_tenant_gone: Option<String>,
    ) -> Result<Flow, SyncError> {
        if let Some(stale_uid) = verify_tenant_gone {
            let live = self.tenant.refresh().await?;
            if live.as_ref().is_some_and(|t| uid_of(Some(t)) == stale_uid) {
                // The view lagged: the tenant pod this super pod stands for still exists.
                return Ok(Flow::Replan);
            }
        }
        // A failed precondition: the pod under that name is another one now.
        Ok(flow(self.copy.delete(super_uid, grace, remaining).await?))
    }

    async fn delete_tenant(&self, uid: &str, grace: i64) -> Result<Flow, SyncError> {
        Ok(flow(self.tenant.delete(uid, Some(grace), remaining).await?))
    }

    /// Replaces the tenant pod (`verb` = `update` or `update_status`), keeping `current` up to date.
    async fn tenant_write(
        &self,
        verb: &'static str,
        pod: &Pod,
        current: &mut Option<Pod>,
    ) -> Result<Flow, SyncError> {
        match self.tenant.replace(verb, pod).await? {
            Wrote::Object(written) => {
                *current = Some(written);
                Ok(Flow::Done)
            }
            Wrote::Moved => Ok(Flow::Replan),
        }
    }
}

/// A write that found the state moved on means: plan again.
fn flow<K>(wrote: Wrote<K>) -> Flow {
    match wrote {
        Wrote::Object(_) => Flow::Done,
        Wrote::Moved => Flow::Replan,
    }
}

/// The tenant service account whose token secret `super_pod` mounts, if it mounts one.
fn token_service_account(tenant: &Pod, super_pod: &Pod) -> Option<String> {
    let sa = service_account(tenant.spec.as_ref()?).to_owned();
    let name = token_secret_name(&sa);
    let mounts_it = super_pod
        .spec
        .as_ref()?
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .any(|s| s.secret.as_ref().is_some_and(|s| s.name == name));
    mounts_it.then_some(sa)
}

/// Whether the tenant's Services reach the super cluster (the Service resource is enabled), so that the DNS
/// and service-environment rules can be applied.
fn services_synced(ctx: &Ctx<'_>) -> Result<bool, SyncError> {
    Ok(ctx.resources.get(KIND_SERVICE).is_some())
}

fn uid_of(pod: Option<&Pod>) -> String {
    pod.and_then(|p| p.metadata.uid.clone()).unwrap_or_default()
}

/// What a delete left behind: the pod while it is still terminating (grace period or finalizers), else
/// nothing.
fn remaining(outcome: &Deleted<Pod>) -> Option<&Pod> {
    match outcome {
        Deleted::Object(pod) => {
            let pending = pod.metadata.deletion_grace_period_seconds.unwrap_or(0) > 0
                || pod
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty());
            (pod.metadata.deletion_timestamp.is_some() && pending).then_some(pod)
        }
        Deleted::Gone | Deleted::NotFound => None,
    }
}
