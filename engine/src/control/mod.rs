//! The syncer's control plane: the dynamic set of served tenants and what the gRPC API reads.
//!
//! * [`lifecycle`]: register / unregister at run time (sources, registry, served set, cleanup), status.
//! * [`publics`]: public super objects copied into a tenant registered at run time.
//! * [`store`]: durable registrations in the log's sled database.
//! * [`spec`]: validation of a tenant spec, cluster key, client from a kubeconfig.
//! * [`tap`]: super-pod invalidations for translation watchers.
//! * [`gauges`]: per-VC backlog and sync-lag gauges.

pub mod gauges;
pub mod lifecycle;
mod publics;
pub mod spec;
pub mod store;
pub mod tap;

pub use lifecycle::{ControlError, ControlEvent, TenantSet, TenantSetDeps};
pub use spec::Origin;
pub use store::{RegistrationStore, StoredRegistration};
