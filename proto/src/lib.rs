//! The gRPC contract between the syncer and its peers (`tenancy.sync.v1`), compiled from
//! `proto/tenancy/sync/v1/sync.proto` without a system `protoc` (see `build.rs`).
//!
//! * [`v1`]: the generated messages, clients (`v1::tenant_registry_client::TenantRegistryClient`,
//!   `v1::translation_client::TranslationClient`, `v1::health_client::HealthClient`) and servers
//!   (`v1::tenant_registry_server::{TenantRegistry, TenantRegistryServer}`, ...).
//! * [`tls`]: mutual TLS for both ends from PEM files or strings, and [`tls::connect`] to open a channel.
//! * [`pki`]: a small certificate authority (rcgen) that issues the server and client certificates, used by the
//!   syncer's default set-up and by tests; one client certificate per [`roles::Role`].
//! * [`roles`]: the roles a client certificate carries (`OU`) and which methods each may call.
//!
//! The naming rule (cluster key, super namespace) is not here: it lives in the `tenancy-naming` crate, shared
//! by the syncer and its peers.

pub mod pki;
pub mod roles;
pub mod tls;

/// Messages and services of `tenancy.sync.v1` (generated).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tenancy.sync.v1");
}

pub use prost;
pub use tonic;

impl v1::VirtualClusterRef {
    /// A reference to the VirtualCluster `namespace/name` with `uid`.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        uid: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }
}

impl std::fmt::Display for v1::VirtualClusterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
