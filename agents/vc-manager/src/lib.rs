//! `vc-manager`: provisions VirtualCluster tenant control planes in the super cluster and registers them
//! with the syncer.
//!
//! Module map (data flow of one reconcile, see `reconcile`):
//!
//! * [`controller`]: the kube-runtime `Controller` and what wakes it (watches of the objects it creates).
//! * [`reconcile`]: one pass over a VirtualCluster: validate → finalizer → provision → register → status;
//!   deletion: unregister → teardown → delete namespaces → drop the finalizer.
//! * [`validate`]: spec checks before anything is created (service CIDR, name length, PKI lifetime).
//! * [`provision`]: the [`provision::Provisioner`] trait and its `native`, `embedded` and `process`
//!   implementations, plus the objects common to all (`provision::common`).
//! * [`pki`]: the tenant PKI (pure): what to keep, renew or issue.
//! * [`kubeconfig`]: kubeconfigs that verify the tenant CA.
//! * [`super_api`]: read-then-write helpers for the super cluster (write only what differs).
//! * [`registry`]: the [`registry::Registrar`] the controller registers tenants with; [`grpc`] is its
//!   implementation on the syncer's `TenantRegistry` (mTLS).
//! * [`syncer_tls`]: the mTLS client material (role `vc-manager`) from the syncer's TLS directory, waited
//!   for while the syncer is still writing it.
//! * [`install`]: installing the CRDs (embedded default, tests).

pub mod controller;
pub mod error;
pub mod grpc;
pub mod install;
pub mod kubeconfig;
pub mod pki;
pub mod provision;
pub mod reconcile;
pub mod registry;
pub mod super_api;
pub mod syncer_tls;
pub mod validate;

pub use error::Error;
