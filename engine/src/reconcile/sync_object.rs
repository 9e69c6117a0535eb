//! Executes the plan of a [`DownKind`] ([`super::object::plan`]) for one work key, one direction at a time,
//! like `sync_pod` does for pods, with the same write steps ([`super::endpoint`]): every answer recorded in the
//! view, a re-read and a new plan (at most [`MAX_PASSES`]) when a write finds the state moved on.

use kube::Resource as _;

use super::endpoint::{Endpoint, Wrote, owned_super_namespace, report_to_tenant};
use super::object::{self, DownKind, ObjectAction};
use super::pod::{REASON_NAME_CONFLICT, REASON_SYNC_REJECTED};
use super::sync_pod::MAX_PASSES;
use super::writer::Deleted;
use super::{Ctx, KIND_NAMESPACE, METRIC_UID_MISMATCH_TOTAL, Read, SyncError};
use crate::naming::super_namespace;
use crate::record::SUPER_CLUSTER;

/// Which part of the plan a call executes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Writes to the super cluster (and reports).
    Down,
    /// Writes to the tenant object.
    Up,
}

/// Reconciles the tenant object named by `ctx.key` in direction `dir`.
pub(crate) async fn reconcile<D: DownKind>(ctx: &Ctx<'_>, dir: Direction) -> Result<(), SyncError> {
    let key = ctx.key;
    let super_ns = super_namespace(&ctx.tenant.info.cluster_key, &key.namespace);
    let super_name = D::super_name(&key.name);
    let exec = ObjectSync::<D> {
        ctx,
        tenant: Endpoint::tenant(ctx, D::KIND),
        copy: Endpoint::super_copy(ctx, D::KIND, &super_ns, &super_name),
        super_ns,
        super_name,
    };
    for _ in 0..MAX_PASSES {
        let tenant_obj =
            match ctx.read::<D::Object>(&key.cluster, D::KIND, &key.namespace, &key.name)? {
                Read::Absent => None,
                Read::Object(o) => Some(*o),
                Read::Malformed { uid, error } => {
                    if dir == Direction::Down {
                        let message =
                            format!("the object cannot be read as a {}: {error}", D::KIND);
                        exec.report(&uid, super::pod::REASON_INVALID, &message)
                            .await?;
                    }
                    return Ok(());
                }
            };
        let super_obj = match ctx.read::<D::Object>(
            SUPER_CLUSTER,
            D::KIND,
            &exec.super_ns,
            &exec.super_name,
        )? {
            Read::Absent => None,
            Read::Object(o) => Some(*o),
            Read::Malformed { error, .. } => {
                tracing::warn!(kind = D::KIND, namespace = %exec.super_ns, name = %exec.super_name,
                        %error, "super object cannot be read; left alone");
                metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => D::KIND).increment(1);
                return Ok(());
            }
        };
        let synced = D::synced(ctx.view, &ctx.tenant.info, key).map_err(SyncError::View)?;
        let actions: Vec<_> = object::plan::<D>(
            tenant_obj.as_ref(),
            super_obj.as_ref(),
            &ctx.tenant.info,
            key,
            &exec.super_ns,
            synced,
        )
        .into_iter()
        .filter(|a| a.is_up() == (dir == Direction::Up))
        .collect();
        if actions.is_empty() {
            return Ok(());
        }
        match exec.run(tenant_obj.as_ref(), actions).await {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(SyncError::Write(err)) if err.code() == "invalid" => {
                let uid = tenant_obj
                    .as_ref()
                    .and_then(|t| kube::Resource::meta(t).uid.clone())
                    .unwrap_or_default();
                exec.report(&uid, REASON_SYNC_REJECTED, &err.summary())
                    .await?;
                return Ok(());
            }
            Err(err) => return Err(err),
        }
    }
    Err(SyncError::Unsettled {
        kind: D::KIND,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    })
}

struct ObjectSync<'a, D: DownKind> {
    ctx: &'a Ctx<'a>,
    tenant: Endpoint<'a, D::Object>,
    copy: Endpoint<'a, D::Object>,
    super_ns: String,
    super_name: String,
}

impl<D: DownKind> ObjectSync<'_, D> {
    async fn report(
        &self,
        uid: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<(), SyncError> {
        report_to_tenant(self.ctx, D::KIND, uid, reason, message).await
    }

    /// Performs `actions` in order; `true` = the view was refreshed and the plan must be made again.
    async fn run(
        &self,
        tenant: Option<&D::Object>,
        actions: Vec<ObjectAction<D::Object>>,
    ) -> Result<bool, SyncError> {
        let tenant_uid = tenant
            .and_then(|t| kube::Resource::meta(t).uid.clone())
            .unwrap_or_default();
        // resourceVersion of the tenant object after this run's own tenant writes.
        let mut tenant_rv: Option<String> = None;
        for action in actions {
            let replan = match action {
                ObjectAction::CreateSuper(obj) => self.create_super(&obj, &tenant_uid).await?,
                ObjectAction::UpdateSuper(obj) => {
                    matches!(self.copy.replace("update", &obj).await?, Wrote::Moved)
                }
                ObjectAction::DeleteSuper {
                    super_uid,
                    verify_tenant_gone,
                } => self.delete_super(&super_uid, verify_tenant_gone).await?,
                ObjectAction::UpdateTenant(mut obj) => {
                    self.tenant_write("update", &mut obj, &mut tenant_rv)
                        .await?
                }
                ObjectAction::UpdateTenantStatus(mut obj) => {
                    self.tenant_write("update_status", &mut obj, &mut tenant_rv)
                        .await?
                }
                ObjectAction::Report { reason, message } => {
                    if reason == REASON_NAME_CONFLICT {
                        metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => D::KIND)
                            .increment(1);
                    }
                    self.report(&tenant_uid, reason, &message).await?;
                    false
                }
            };
            if replan {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn create_super(&self, obj: &D::Object, tenant_uid: &str) -> Result<bool, SyncError> {
        if owned_super_namespace(self.ctx, &self.super_ns)
            .await?
            .is_none()
        {
            metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => KIND_NAMESPACE).increment(1);
            let message = format!(
                "super namespace {} belongs to another tenant or namespace; the {} is not created",
                self.super_ns,
                D::KIND
            );
            self.report(tenant_uid, REASON_NAME_CONFLICT, &message)
                .await?;
            return Ok(false);
        }
        Ok(matches!(self.copy.create(obj).await?, Wrote::Moved))
    }

    async fn delete_super(
        &self,
        super_uid: &str,
        verify_tenant_gone: Option<String>,
    ) -> Result<bool, SyncError> {
        if let Some(stale_uid) = verify_tenant_gone {
            let live = self.tenant.refresh().await?;
            if live
                .as_ref()
                .is_some_and(|t| kube::Resource::meta(t).uid.as_deref() == Some(stale_uid.as_str()))
            {
                // The view lagged: the tenant object this copy stands for still exists.
                return Ok(true);
            }
        }
        Ok(matches!(
            self.copy.delete(super_uid, None, finalizing).await?,
            Wrote::Moved
        ))
    }

    /// Replaces the tenant object (`verb` = `update` or `update_status`); `rv` carries the resourceVersion
    /// of an earlier write of the same run, so a second write does not conflict with the first.
    async fn tenant_write(
        &self,
        verb: &'static str,
        obj: &mut D::Object,
        rv: &mut Option<String>,
    ) -> Result<bool, SyncError> {
        if let Some(rv) = rv.as_ref() {
            obj.meta_mut().resource_version = Some(rv.clone());
        }
        match self.tenant.replace(verb, obj).await? {
            Wrote::Object(written) => {
                rv.clone_from(&kube::Resource::meta(&written).resource_version);
                Ok(false)
            }
            Wrote::Moved => Ok(true),
        }
    }
}

/// What a delete left behind: the object while finalizers hold it, else nothing.
fn finalizing<K: kube::Resource>(outcome: &Deleted<K>) -> Option<&K> {
    match outcome {
        Deleted::Object(o) => {
            let m = o.meta();
            let pending = m.finalizers.as_ref().is_some_and(|f| !f.is_empty());
            (m.deletion_timestamp.is_some() && pending).then_some(o)
        }
        Deleted::Gone | Deleted::NotFound => None,
    }
}
