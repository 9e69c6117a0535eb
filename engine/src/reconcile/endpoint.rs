//! The write steps both executors (`sync_pod` for pods, `sync_object` for every [`super::object::DownKind`])
//! share: one [`Endpoint`] per side of a reconciled object (the tenant object, its super copy) that records
//! every answer in the view and answers a conflict with a live read, so the caller plans again; the check
//! that a super namespace is this tenant's before anything is created in it; and the tenant report.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::metadata::{Ownership, ownership};
use super::report::{Subject, report};
use super::writer::{self, Created, Deleted, Target};
use super::{Ctx, KIND_NAMESPACE, Read, SyncError, count_write};
use crate::record::SUPER_CLUSTER;

/// What a write came to.
pub(crate) enum Wrote<K> {
    /// Written; the answer is recorded in the view.
    Object(K),
    /// The state moved on (conflict, already exists, gone): the live object was read into the view; plan again.
    Moved,
}

/// One side of a reconciled object: where it lives and the API to reach it.
pub(crate) struct Endpoint<'a, K> {
    ctx: &'a Ctx<'a>,
    api: Api<K>,
    cluster: &'a str,
    side: &'static str,
    kind: &'static str,
    namespace: String,
    name: String,
}

impl<'a, K> Endpoint<'a, K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    /// The tenant object named by `ctx.key`.
    pub(crate) fn tenant(ctx: &'a Ctx<'a>, kind: &'static str) -> Self {
        let key = ctx.key;
        Self {
            ctx,
            api: Api::namespaced(ctx.tenant.client.clone(), &key.namespace),
            cluster: &key.cluster,
            side: "tenant",
            kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        }
    }

    /// Its super copy `super_ns/super_name`.
    pub(crate) fn super_copy(
        ctx: &'a Ctx<'a>,
        kind: &'static str,
        super_ns: &str,
        super_name: &str,
    ) -> Self {
        Self {
            ctx,
            api: Api::namespaced(ctx.super_client.clone(), super_ns),
            cluster: SUPER_CLUSTER,
            side: "super",
            kind,
            namespace: super_ns.to_owned(),
            name: super_name.to_owned(),
        }
    }

    /// The API of this side's namespace.
    pub(crate) fn api(&self) -> &Api<K> {
        &self.api
    }

    /// For the writer's errors and logs.
    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            cluster: self.cluster,
            kind: self.kind,
            namespace: &self.namespace,
            name: &self.name,
        }
    }

    /// Records `obj` (or its absence) in the view.
    pub(crate) fn record(&self, obj: Option<&K>) -> Result<(), SyncError> {
        self.ctx
            .record(self.cluster, self.kind, &self.namespace, &self.name, obj)
    }

    /// Live read, recorded in the view.
    pub(crate) async fn refresh(&self) -> Result<Option<K>, SyncError> {
        let live = writer::get(&self.api, self.target()).await?;
        self.record(live.as_ref())?;
        Ok(live)
    }

    /// Creates `obj`; already there → [`Wrote::Moved`] (adopted only through a new plan, which checks marks).
    pub(crate) async fn create(&self, obj: &K) -> Result<Wrote<K>, SyncError> {
        match writer::create(&self.api, self.target(), obj).await? {
            Created::Yes(created) => {
                count_write(self.kind, self.side, "create");
                self.record(Some(&created))?;
                Ok(Wrote::Object(created))
            }
            Created::AlreadyExists => {
                self.refresh().await?;
                Ok(Wrote::Moved)
            }
        }
    }

    /// Replaces the object (`verb` `update`) or its status (`update_status`); a conflict or a missing object
    /// → [`Wrote::Moved`].
    pub(crate) async fn replace(&self, verb: &'static str, obj: &K) -> Result<Wrote<K>, SyncError> {
        let result = if verb == "update_status" {
            writer::replace_status(&self.api, self.target(), obj).await
        } else {
            writer::replace(&self.api, self.target(), obj).await
        };
        match result {
            Ok(written) => {
                count_write(self.kind, self.side, verb);
                self.record(Some(&written))?;
                Ok(Wrote::Object(written))
            }
            Err(e) if e.is_conflict() || e.is_not_found() => {
                self.refresh().await?;
                Ok(Wrote::Moved)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the object with a precondition on `uid`; `left` says what of the answer is still there (an
    /// object still terminating) and is recorded. A failed precondition (another object under that name now)
    /// → [`Wrote::Moved`].
    pub(crate) async fn delete(
        &self,
        uid: &str,
        grace: Option<i64>,
        left: fn(&Deleted<K>) -> Option<&K>,
    ) -> Result<Wrote<()>, SyncError> {
        match writer::delete(&self.api, self.target(), uid, grace).await {
            Ok(outcome) => {
                count_write(self.kind, self.side, "delete");
                self.record(left(&outcome))?;
                Ok(Wrote::Object(()))
            }
            Err(e) if e.is_conflict() => {
                self.refresh().await?;
                Ok(Wrote::Moved)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The super namespace `super_ns` must exist (the view, else a live read recorded in it) and be this tenant's
/// copy of `ctx.key`'s namespace before anything is created in it: its uid when it is ours, `None` when it is
/// someone else's; absent → [`SyncError::NamespaceMissing`] (retried).
pub(crate) async fn owned_super_namespace(
    ctx: &Ctx<'_>,
    super_ns: &str,
) -> Result<Option<String>, SyncError> {
    let ns = match ctx.read::<Namespace>(SUPER_CLUSTER, KIND_NAMESPACE, "", super_ns)? {
        Read::Object(ns) => Some(*ns),
        Read::Absent | Read::Malformed { .. } => {
            let api: Api<Namespace> = Api::all(ctx.super_client.clone());
            let target = Target {
                cluster: SUPER_CLUSTER,
                kind: KIND_NAMESPACE,
                namespace: "",
                name: super_ns,
            };
            let live = writer::get(&api, target).await?;
            ctx.record(SUPER_CLUSTER, KIND_NAMESPACE, "", super_ns, live.as_ref())?;
            live
        }
    };
    let Some(ns) = ns else {
        return Err(SyncError::NamespaceMissing(super_ns.to_owned()));
    };
    match ownership(&ns.metadata, &ctx.tenant.info, &ctx.key.namespace) {
        Ownership::Ours { .. } => Ok(Some(ns.metadata.uid.unwrap_or_default())),
        Ownership::Foreign => Ok(None),
    }
}

/// Reports `reason`/`message` on the tenant object of `ctx.key` (kind `kind`, uid `uid`) as a tenant Event.
pub(crate) async fn report_to_tenant(
    ctx: &Ctx<'_>,
    kind: &'static str,
    uid: &str,
    reason: &'static str,
    message: &str,
) -> Result<(), SyncError> {
    let key = ctx.key;
    let subject = Subject {
        cluster: &key.cluster,
        kind,
        namespace: &key.namespace,
        name: &key.name,
        uid,
    };
    report(&ctx.tenant.client, subject, reason, message).await?;
    Ok(())
}
