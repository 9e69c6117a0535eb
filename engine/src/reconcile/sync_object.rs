//! Executes the plan of a [`DownKind`] ([`super::object::plan`]) for one work key, one direction at a time,
//! like `sync_pod` does for pods: writes through [`writer`], every answer recorded in the view, a re-read and
//! a new plan (at most [`MAX_PASSES`]) when a write finds the state moved on.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Resource as _};

use super::metadata::{Ownership, ownership};
use super::object::{self, DownKind, ObjectAction};
use super::pod::{REASON_NAME_CONFLICT, REASON_SYNC_REJECTED};
use super::report::{Subject, report};
use super::sync_pod::MAX_PASSES;
use super::writer::{self, Created, Deleted, Target};
use super::{Ctx, KIND_NAMESPACE, METRIC_UID_MISMATCH_TOTAL, Read, SyncError, count_write};
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
        super_name,
        tenant_api: Api::namespaced(ctx.tenant.client.clone(), &key.namespace),
        super_api: Api::namespaced(ctx.super_client.clone(), &super_ns),
        super_ns,
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
    super_ns: String,
    super_name: String,
    tenant_api: Api<D::Object>,
    super_api: Api<D::Object>,
}

impl<D: DownKind> ObjectSync<'_, D> {
    fn tenant_target(&self) -> Target<'_> {
        Target {
            cluster: &self.ctx.key.cluster,
            kind: D::KIND,
            namespace: &self.ctx.key.namespace,
            name: &self.ctx.key.name,
        }
    }

    fn super_target(&self) -> Target<'_> {
        Target {
            cluster: SUPER_CLUSTER,
            kind: D::KIND,
            namespace: &self.super_ns,
            name: &self.super_name,
        }
    }

    fn record_tenant(&self, obj: Option<&D::Object>) -> Result<(), SyncError> {
        let key = self.ctx.key;
        self.ctx
            .record(&key.cluster, D::KIND, &key.namespace, &key.name, obj)
    }

    fn record_super(&self, obj: Option<&D::Object>) -> Result<(), SyncError> {
        self.ctx.record(
            SUPER_CLUSTER,
            D::KIND,
            &self.super_ns,
            &self.super_name,
            obj,
        )
    }

    async fn refresh_tenant(&self) -> Result<Option<D::Object>, SyncError> {
        let live = writer::get(&self.tenant_api, self.tenant_target()).await?;
        self.record_tenant(live.as_ref())?;
        Ok(live)
    }

    async fn refresh_super(&self) -> Result<Option<D::Object>, SyncError> {
        let live = writer::get(&self.super_api, self.super_target()).await?;
        self.record_super(live.as_ref())?;
        Ok(live)
    }

    async fn report(
        &self,
        uid: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<(), SyncError> {
        let key = self.ctx.key;
        let subject = Subject {
            cluster: &key.cluster,
            kind: D::KIND,
            namespace: &key.namespace,
            name: &key.name,
            uid,
        };
        report(&self.ctx.tenant.client, subject, reason, message).await?;
        Ok(())
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
                    match writer::replace(&self.super_api, self.super_target(), &obj).await {
                        Ok(updated) => {
                            count_write(D::KIND, "super", "update");
                            self.record_super(Some(&updated))?;
                            false
                        }
                        Err(e) if e.is_conflict() || e.is_not_found() => {
                            self.refresh_super().await?;
                            true
                        }
                        Err(e) => return Err(e.into()),
                    }
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

    /// The super namespace must exist and be this tenant's copy of the object's namespace.
    async fn super_namespace_ready(&self) -> Result<bool, SyncError> {
        let ctx = self.ctx;
        let ns = match ctx.read::<Namespace>(SUPER_CLUSTER, KIND_NAMESPACE, "", &self.super_ns)? {
            Read::Object(ns) => Some(*ns),
            Read::Absent | Read::Malformed { .. } => {
                let api: Api<Namespace> = Api::all(ctx.super_client.clone());
                let target = Target {
                    cluster: SUPER_CLUSTER,
                    kind: KIND_NAMESPACE,
                    namespace: "",
                    name: &self.super_ns,
                };
                let live = writer::get(&api, target).await?;
                ctx.record(
                    SUPER_CLUSTER,
                    KIND_NAMESPACE,
                    "",
                    &self.super_ns,
                    live.as_ref(),
                )?;
                live
            }
        };
        let Some(ns) = ns else {
            return Err(SyncError::NamespaceMissing(self.super_ns.clone()));
        };
        Ok(matches!(
            ownership(&ns.metadata, &ctx.tenant.info, &ctx.key.namespace),
            Ownership::Ours { .. }
        ))
    }

    async fn create_super(&self, obj: &D::Object, tenant_uid: &str) -> Result<bool, SyncError> {
        if !self.super_namespace_ready().await? {
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
        match writer::create(&self.super_api, self.super_target(), obj).await? {
            Created::Yes(created) => {
                count_write(D::KIND, "super", "create");
                self.record_super(Some(&created))?;
                Ok(false)
            }
            Created::AlreadyExists => {
                self.refresh_super().await?;
                Ok(true)
            }
        }
    }

    async fn delete_super(
        &self,
        super_uid: &str,
        verify_tenant_gone: Option<String>,
    ) -> Result<bool, SyncError> {
        if let Some(stale_uid) = verify_tenant_gone {
            let live = self.refresh_tenant().await?;
            if live
                .as_ref()
                .is_some_and(|t| kube::Resource::meta(t).uid.as_deref() == Some(stale_uid.as_str()))
            {
                // The view lagged: the tenant object this copy stands for still exists.
                return Ok(true);
            }
        }
        match writer::delete(&self.super_api, self.super_target(), super_uid, None).await {
            Ok(outcome) => {
                count_write(D::KIND, "super", "delete");
                let left = match &outcome {
                    Deleted::Object(o) => {
                        let m = kube::Resource::meta(o);
                        let pending = m.finalizers.as_ref().is_some_and(|f| !f.is_empty());
                        (m.deletion_timestamp.is_some() && pending).then_some(o)
                    }
                    Deleted::Gone | Deleted::NotFound => None,
                };
                self.record_super(left)?;
                Ok(false)
            }
            Err(e) if e.is_conflict() => {
                self.refresh_super().await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
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
        let result = if verb == "update_status" {
            writer::replace_status(&self.tenant_api, self.tenant_target(), obj).await
        } else {
            writer::replace(&self.tenant_api, self.tenant_target(), obj).await
        };
        match result {
            Ok(written) => {
                count_write(D::KIND, "tenant", verb);
                rv.clone_from(&kube::Resource::meta(&written).resource_version);
                self.record_tenant(Some(&written))?;
                Ok(false)
            }
            Err(e) if e.is_conflict() || e.is_not_found() => {
                self.refresh_tenant().await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }
}
