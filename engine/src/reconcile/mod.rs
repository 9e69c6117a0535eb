//! Reconcile: per-kind logic that makes the super cluster match the tenants (down) and reports the super
//! cluster's state back to the tenants (up).
//!
//! * [`tenants`]: the registry of tenants (cluster key → client, VC identity, meta prefixes).
//! * [`metadata`]: translation shared by every kind (the syncer's marks, reserved prefixes, ownership).
//! * [`pod_spec`]: pod spec translation (no node name, no tenant token, downward API, affinity).

pub mod metadata;
pub mod namespace;
pub mod pod;
pub mod pod_spec;
pub mod tenants;
pub mod writer;

pub use tenants::{Tenant, TenantInfo, Tenants};
