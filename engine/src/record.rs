//! The unit that flows through the engine: a [`Record`] (one observed watch event) and a [`WorkKey`]
//! (the identity of the tenant-side object a reconcile is for).
//!
//! A record always names the *tenant* object it concerns, even when it was observed in the super cluster
//! (the source maps super objects back through their `tenancy.x-k8s.io/*` annotations). That is what makes
//! one namespace of one tenant land on one shard, in order, whichever cluster the event came from.

use serde::{Deserialize, Serialize};

/// Name used for the super cluster in [`Record::cluster`].
pub const SUPER_CLUSTER: &str = "__super__";

/// Kind of watch event observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Object created (or seen for the first time in a list).
    Added,
    /// Object changed.
    Modified,
    /// Object deleted (the record carries the last known state).
    Deleted,
}

/// Identity of a tenant-side object: what a shard hands to a reconciler. Never carries object state;
/// the reconciler reads the latest state from the view when it runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkKey {
    /// Cluster key of the tenant (see [`crate::naming::cluster_key`]).
    pub cluster: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Tenant namespace (`""` for cluster-scoped kinds).
    pub namespace: String,
    /// Object name in the tenant.
    pub name: String,
}

/// One observed watch event, as appended to the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Cluster the event was observed in: a tenant cluster key or [`SUPER_CLUSTER`].
    pub cluster: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Namespace as seen in that cluster.
    pub namespace: String,
    /// Name as seen in that cluster.
    pub name: String,
    /// UID of the object in that cluster.
    pub uid: String,
    /// resourceVersion of the object in that cluster.
    pub resource_version: String,
    /// What happened.
    pub event: EventType,
    /// The object as observed (for `Deleted`, its last state).
    pub object: serde_json::Value,
    /// When the source saw the event, microseconds since the Unix epoch.
    pub seen_at_micros: u64,
    /// The tenant-side object this event concerns; decides the shard and what gets reconciled.
    pub work: WorkKey,
}
