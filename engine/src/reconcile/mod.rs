//! Reconcile: per-kind logic that makes the super cluster match the tenants (down) and reports the super
//! cluster's state back to the tenants (up). One reconcile of a [`WorkKey`] handles both directions.
//!
//! Each kind is a pure *plan* (state of both sides → list of writes) and an executor that performs the
//! writes, re-reading and re-planning (a bounded number of times) when a write finds the state moved on:
//!
//! * [`resource`]: the [`Resource`] trait (down, up, patrol check, watch spec) and the [`Resources`]
//!   registry of enabled kinds; [`kinds`]: the catalogue, one module per kind.
//! * [`tenants`]: the registry of tenants (cluster key → client, VC identity, meta prefixes).
//! * [`metadata`]: translation shared by every kind (the syncer's marks, reserved prefixes, ownership).
//! * [`namespace`]: namespace rules; `sync_namespace` executes them.
//! * [`pod`], [`pod_spec`]: pod rules and spec translation; `sync_pod` executes them.
//! * [`writer`]: the API calls, with uid preconditions and bounded error codes.
//! * `report`: Warning events on tenant objects the syncer will not (or cannot) copy.
//!
//! Reads come from the [`View`] (what the watches saw plus what the reconcilers wrote); every write's answer is
//! recorded back with [`View::record_write`], so the next reconcile does not repeat it. Destructive writes
//! decided from an *absence* in the view (a super pod whose tenant pod is gone, a tenant pod whose super pod is
//! gone) are checked first with a live read, because a view can lag behind a cluster.
//!
//! Outcomes that retrying cannot fix (a tenant object that is invalid or not supported, a super name held by
//! an object the syncer does not own) are reported (event, log, metric) and end the reconcile with `Ok`, so
//! they never hold a shard's checkpoint back.

mod endpoint;
pub mod kinds;
pub mod metadata;
pub mod namespace;
pub mod object;
pub mod pod;
mod pod_deps;
pub mod pod_dns;
pub mod pod_env;
pub mod pod_spec;
pub mod pod_token;
mod pod_token_secret;
mod report;
pub mod resource;
mod sync_namespace;
mod sync_object;
mod sync_pod;
pub mod tenants;
pub mod writer;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::runtime::Handle;

use crate::log::{LogError, View};
use crate::record::{SUPER_CLUSTER, WorkKey};
use crate::shard::{ReconcileError, Reconciler};
pub use resource::{Drift, Resource, Resources, ResourcesError};
pub use tenants::{DEFAULT_CLUSTER_DOMAIN, Lookup, Tenant, TenantInfo, Tenants};
use writer::WriteError;

/// Kind name of pods in work keys and the view.
pub const KIND_POD: &str = "Pod";
/// Kind name of namespaces in work keys and the view.
pub const KIND_NAMESPACE: &str = "Namespace";

/// Counter: writes made by reconcilers, by `kind`, `side` (`super` | `tenant`) and `verb`.
pub const METRIC_WRITES_TOTAL: &str = "vc_syncer_reconcile_writes_total";
/// Counter: super objects left alone because their marks name another tenant object, by `kind`.
pub const METRIC_UID_MISMATCH_TOTAL: &str = "vc_syncer_uid_mismatch_total";
/// Counter: tenant objects reported and not copied (invalid, not supported, name conflict), by `kind` and
/// `reason`.
pub const METRIC_REPORTS_TOTAL: &str = "vc_syncer_reconcile_reports_total";
/// Counter: reconciles of work keys whose tenant was removed (dropped), no labels.
pub const METRIC_DROPPED_TOTAL: &str = "vc_syncer_reconcile_dropped_total";

/// Why a reconcile step failed.
#[derive(Debug, Error)]
pub enum SyncError {
    /// Reading the view or recording a write in it failed.
    #[error("failed to access the view")]
    View(#[source] LogError),
    /// An API call failed.
    #[error(transparent)]
    Write(Box<WriteError>),
    /// A write's answer could not be encoded for the view.
    #[error("failed to encode the API server's answer for the view")]
    Encode(#[source] serde_json::Error),
    /// The work key names a tenant that is not registered (yet).
    #[error("tenant {0} is not registered")]
    UnknownTenant(String),
    /// The super namespace a pod needs does not exist yet.
    #[error("super namespace {0} does not exist yet")]
    NamespaceMissing(String),
    /// What the object needs in the super cluster is not there yet (e.g. a pod's cluster services); retried.
    #[error("waiting: {0}")]
    Waiting(String),
    /// The state kept changing under the reconcile (every pass found a newer version).
    #[error("{kind} {namespace}/{name} kept changing while being reconciled")]
    Unsettled {
        /// Kind.
        kind: &'static str,
        /// Tenant namespace.
        namespace: String,
        /// Tenant name.
        name: String,
    },
}

impl From<WriteError> for SyncError {
    fn from(err: WriteError) -> Self {
        SyncError::Write(Box::new(err))
    }
}

impl SyncError {
    /// Bounded metric code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::View(_) | SyncError::Encode(_) => "view",
            SyncError::Write(e) => e.code(),
            SyncError::UnknownTenant(_) => "unknown_tenant",
            SyncError::NamespaceMissing(_) => "not_found",
            SyncError::Waiting(_) => "waiting",
            SyncError::Unsettled { .. } => "conflict",
        }
    }
}

impl From<SyncError> for ReconcileError {
    fn from(err: SyncError) -> Self {
        let message = match &err {
            SyncError::Write(write) => write.summary(),
            other => error_chain(other),
        };
        ReconcileError::new(err.code(), message)
    }
}

/// An error and its causes, joined with `: `.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The reconciler of every enabled [`Resource`] for every registered tenant: dispatches a work key to the
/// resource of its kind (down, then up).
///
/// Blocking: [`Reconciler::reconcile`] runs the async API calls on the runtime of the handle it was given
/// (`Handle::block_on`), so it must be called from a thread that is not a runtime worker (a shard thread).
#[derive(Clone)]
pub struct SyncReconciler {
    super_client: kube::Client,
    tenants: Tenants,
    runtime: Handle,
    resources: Resources,
}

impl std::fmt::Debug for SyncReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncReconciler")
            .field("tenants", &self.tenants.len())
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl SyncReconciler {
    /// A reconciler of the default resources writing to the super cluster through `super_client`, to tenants
    /// through the clients in `tenants`, running API calls on `runtime`.
    #[must_use]
    pub fn new(super_client: kube::Client, tenants: Tenants, runtime: Handle) -> Self {
        Self {
            super_client,
            tenants,
            runtime,
            resources: Resources::defaults(),
        }
    }

    /// The same reconciler for the given set of resources (work keys of other kinds are ignored).
    #[must_use]
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// The enabled resources.
    #[must_use]
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The tenant registry (shared with whoever registers tenants).
    #[must_use]
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// The async body of [`Reconciler::reconcile`], for callers already on a runtime.
    pub async fn reconcile_async(&self, key: &WorkKey, view: &View) -> Result<(), SyncError> {
        let Some(resource) = self.resources.get(&key.kind) else {
            tracing::debug!(kind = %key.kind, "no enabled resource for this kind");
            return Ok(());
        };
        if key.cluster == SUPER_CLUSTER {
            let ctx = resource::SuperCtx {
                key,
                view,
                tenants: &self.tenants,
                super_client: &self.super_client,
            };
            return resource.reconcile_super(&ctx).await;
        }
        let tenant = match self.tenants.lookup(&key.cluster) {
            Lookup::Active(tenant) => tenant,
            Lookup::Removed => {
                metrics::counter!(METRIC_DROPPED_TOTAL).increment(1);
                tracing::debug!(?key, "tenant removed; work dropped");
                return Ok(());
            }
            Lookup::Unknown => return Err(SyncError::UnknownTenant(key.cluster.clone())),
        };
        let ctx = Ctx {
            key,
            view,
            tenant: &tenant,
            super_client: &self.super_client,
            tenants: &self.tenants,
            resources: &self.resources,
        };
        resource.reconcile_down(&ctx).await?;
        resource.reconcile_up(&ctx).await
    }
}

impl Reconciler for SyncReconciler {
    fn reconcile(&self, key: &WorkKey, view: &View) -> Result<(), ReconcileError> {
        self.runtime
            .block_on(self.reconcile_async(key, view))
            .map_err(|err| {
                tracing::debug!(?key, code = err.code(), error = %err, "reconcile failed");
                ReconcileError::from(err)
            })
    }
}

/// What a reconcile of one tenant work key works with.
pub struct Ctx<'a> {
    /// The work key (tenant cluster key, kind, tenant namespace, name).
    pub key: &'a WorkKey,
    /// The view (latest objects of every cluster).
    pub view: &'a View,
    /// The tenant the key belongs to.
    pub tenant: &'a Tenant,
    /// Client of the super cluster.
    pub super_client: &'a kube::Client,
    /// Every registered tenant (for resources that look across tenants).
    pub tenants: &'a Tenants,
    /// The enabled resources (rules that depend on another kind being synced look here).
    pub resources: &'a Resources,
}

/// An object read from the view: parsed, or the reason it does not parse as `K`.
pub(crate) enum Read<K> {
    /// Absent.
    Absent,
    /// Present and well-formed.
    Object(Box<K>),
    /// Present but not a valid `K`: uid and the parse error.
    Malformed {
        /// Its uid (may be empty).
        uid: String,
        /// Why it does not parse.
        error: String,
    },
}

impl<'a> Ctx<'a> {
    /// Reads an object from the view.
    pub(crate) fn read<K: DeserializeOwned>(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Read<K>, SyncError> {
        let Some(stored) = self
            .view
            .get(cluster, kind, namespace, name)
            .map_err(SyncError::View)?
        else {
            return Ok(Read::Absent);
        };
        match serde_json::from_value::<K>(stored.object) {
            Ok(obj) => Ok(Read::Object(Box::new(obj))),
            Err(err) => Ok(Read::Malformed {
                uid: stored.uid,
                error: err.to_string(),
            }),
        }
    }

    /// Records a write's answer (or an absence) in the view.
    pub(crate) fn record<K: Serialize>(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        obj: Option<&K>,
    ) -> Result<(), SyncError> {
        let value = obj
            .map(serde_json::to_value)
            .transpose()
            .map_err(SyncError::Encode)?;
        self.view
            .record_write(cluster, kind, namespace, name, value.as_ref())
            .map_err(SyncError::View)
    }
}

/// Counts one write.
pub(crate) fn count_write(kind: &'static str, side: &'static str, verb: &'static str) {
    metrics::counter!(METRIC_WRITES_TOTAL, "kind" => kind, "side" => side, "verb" => verb)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_errors_become_bounded_codes_with_the_whole_chain() {
        let status = kube::core::Status {
            code: 409,
            reason: "Conflict".into(),
            message: "the object has been modified".into(),
            ..kube::core::Status::default()
        };
        let err = SyncError::from(WriteError {
            verb: "update",
            kind: KIND_POD,
            cluster: "k".into(),
            namespace: "ns".into(),
            name: "p".into(),
            source: kube::Error::Api(Box::new(status)),
        });
        let rec = ReconcileError::from(err);
        assert_eq!(rec.code, "conflict");
        assert!(
            rec.message
                .starts_with("failed to update Pod ns/p in cluster k: "),
            "{}",
            rec.message
        );
        assert!(
            rec.message.contains("the object has been modified"),
            "{}",
            rec.message
        );
        assert_eq!(
            ReconcileError::from(SyncError::UnknownTenant("x".into())).code,
            "unknown_tenant"
        );
        assert_eq!(
            ReconcileError::from(SyncError::NamespaceMissing("x".into())).code,
            "not_found"
        );
    }
}
