//! Executes the namespace plan ([`super::namespace::plan`]) for one work key, like `sync_pod` does for pods.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use super::namespace::{self, NamespaceAction};
use super::pod::REASON_SYNC_REJECTED;
use super::sync_pod::MAX_PASSES;
use super::writer::{self, Created, Deleted, Target};
use super::{
    Ctx, KIND_NAMESPACE, METRIC_REPORTS_TOTAL, METRIC_UID_MISMATCH_TOTAL, Read, SyncError,
    count_write,
};
use crate::naming::super_namespace;
use crate::record::SUPER_CLUSTER;

/// Reconciles the tenant namespace named by `ctx.key` (`key.name`; `key.namespace` is the same name).
pub(crate) async fn reconcile(ctx: &Ctx<'_>) -> Result<(), SyncError> {
    let key = ctx.key;
    let tenant_ns = key.name.as_str();
    let super_name = super_namespace(&ctx.tenant.info.cluster_key, tenant_ns);
    let sync = NamespaceSync {
        ctx,
        super_name: &super_name,
        tenant_api: Api::all(ctx.tenant.client.clone()),
        super_api: Api::all(ctx.super_client.clone()),
    };
    for _ in 0..MAX_PASSES {
        let tenant = match ctx.read::<Namespace>(&key.cluster, KIND_NAMESPACE, "", tenant_ns)? {
            Read::Absent => None,
            Read::Object(ns) => Some(*ns),
            Read::Malformed { error, .. } => {
                tracing::warn!(cluster = %key.cluster, namespace = tenant_ns, %error,
                    "tenant namespace cannot be read as a Namespace; not synced");
                metrics::counter!(METRIC_REPORTS_TOTAL, "kind" => KIND_NAMESPACE, "reason" => "Invalid")
                    .increment(1);
                return Ok(());
            }
        };
        let sup = match ctx.read::<Namespace>(SUPER_CLUSTER, KIND_NAMESPACE, "", &super_name)? {
            Read::Absent => None,
            Read::Object(ns) => Some(*ns),
            Read::Malformed { error, .. } => {
                tracing::warn!(namespace = %super_name, %error, "super namespace unreadable; left alone");
                metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => KIND_NAMESPACE).increment(1);
                return Ok(());
            }
        };
        let actions = namespace::plan(
            tenant.as_ref(),
            sup.as_ref(),
            &ctx.tenant.info,
            tenant_ns,
            &super_name,
        );
        let mut replan = false;
        for action in actions {
            match sync.run(action).await {
                Ok(true) => {
                    replan = true;
                    break;
                }
                Ok(false) => {}
                Err(SyncError::Write(err)) if err.code() == "invalid" => {
                    // Retrying the same translation cannot succeed; it is tried again when the tenant
                    // namespace changes.
                    tracing::warn!(cluster = %key.cluster, namespace = tenant_ns,
                        error = %err.summary(), "super cluster rejected the namespace as invalid");
                    metrics::counter!(METRIC_REPORTS_TOTAL, "kind" => KIND_NAMESPACE,
                        "reason" => REASON_SYNC_REJECTED)
                    .increment(1);
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
        if !replan {
            return Ok(());
        }
    }
    Err(SyncError::Unsettled {
        kind: KIND_NAMESPACE,
        namespace: String::new(),
        name: key.name.clone(),
    })
}

struct NamespaceSync<'a> {
    ctx: &'a Ctx<'a>,
    super_name: &'a str,
    tenant_api: Api<Namespace>,
    super_api: Api<Namespace>,
}

impl NamespaceSync<'_> {
    fn super_target(&self) -> Target<'_> {
        Target {
            cluster: SUPER_CLUSTER,
            kind: KIND_NAMESPACE,
            namespace: "",
            name: self.super_name,
        }
    }

    fn record_super(&self, ns: Option<&Namespace>) -> Result<(), SyncError> {
        self.ctx
            .record(SUPER_CLUSTER, KIND_NAMESPACE, "", self.super_name, ns)
    }

    async fn refresh_super(&self) -> Result<(), SyncError> {
        let live = writer::get(&self.super_api, self.super_target()).await?;
        self.record_super(live.as_ref())
    }

    /// Performs one action; `true` = the view was refreshed and the plan must be made again.
    async fn run(&self, action: NamespaceAction) -> Result<bool, SyncError> {
        match action {
            NamespaceAction::Create(ns) => {
                match writer::create(&self.super_api, self.super_target(), &ns).await? {
                    Created::Yes(created) => {
                        count_write(KIND_NAMESPACE, "super", "create");
                        self.record_super(Some(&created))?;
                        Ok(false)
                    }
                    Created::AlreadyExists => {
                        self.refresh_super().await?;
                        Ok(true)
                    }
                }
            }
            NamespaceAction::Update(ns) => {
                match writer::replace(&self.super_api, self.super_target(), &ns).await {
                    Ok(updated) => {
                        count_write(KIND_NAMESPACE, "super", "update");
                        self.record_super(Some(&updated))?;
                        Ok(false)
                    }
                    Err(e) if e.is_conflict() || e.is_not_found() => {
                        self.refresh_super().await?;
                        Ok(true)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            NamespaceAction::Delete {
                super_uid,
                verify_tenant_gone,
            } => {
                if let Some(stale_uid) = verify_tenant_gone {
                    let key = self.ctx.key;
                    let target = Target {
                        cluster: &key.cluster,
                        kind: KIND_NAMESPACE,
                        namespace: "",
                        name: &key.name,
                    };
                    let live = writer::get(&self.tenant_api, target).await?;
                    self.ctx
                        .record(&key.cluster, KIND_NAMESPACE, "", &key.name, live.as_ref())?;
                    if live.is_some_and(|t| t.metadata.uid.as_deref() == Some(stale_uid.as_str())) {
                        return Ok(true);
                    }
                }
                match writer::delete(&self.super_api, self.super_target(), &super_uid, None).await {
                    Ok(outcome) => {
                        count_write(KIND_NAMESPACE, "super", "delete");
                        // A namespace terminates (its contents go first): keep what the server returned.
                        let remaining = match &outcome {
                            Deleted::Object(ns) => Some(ns),
                            Deleted::Gone | Deleted::NotFound => None,
                        };
                        self.record_super(remaining)?;
                        Ok(false)
                    }
                    Err(e) if e.is_conflict() => {
                        self.refresh_super().await?;
                        Ok(true)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            NamespaceAction::NameConflict => {
                metrics::counter!(METRIC_UID_MISMATCH_TOTAL, "kind" => KIND_NAMESPACE).increment(1);
                tracing::warn!(cluster = %self.ctx.key.cluster, namespace = %self.ctx.key.name,
                    super_namespace = self.super_name,
                    "super namespace exists and does not belong to this tenant namespace; left alone");
                Ok(false)
            }
        }
    }
}
