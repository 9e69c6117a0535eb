//! The tenant registry: cluster key → what the reconcilers need to act for that tenant.
//!
//! Filled by whoever discovers tenants (the binary, from its configuration or from VirtualCluster objects).
//! Removing a tenant leaves a tombstone, so work still queued for it is dropped instead of retried forever,
//! while work for a tenant not registered *yet* (for example replayed at start-up before registration) is
//! retried.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

/// What translation needs to know about a tenant (pure data, no client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantInfo {
    /// Cluster key (see [`crate::naming::cluster_key`]).
    pub cluster_key: String,
    /// Name of the VirtualCluster.
    pub vc_name: String,
    /// Namespace of the VirtualCluster.
    pub vc_namespace: String,
    /// `spec.opaqueMetaPrefixes`: label/annotation prefixes owned by the super cluster. Tenant keys under them
    /// are stripped on the way down; super keys under them are kept.
    pub opaque_prefixes: Vec<String>,
    /// `spec.transparentMetaPrefixes`: label/annotation prefixes copied from the super object up to the tenant
    /// object (in addition to `transparency.tenancy.x-k8s.io/`). Owned by the super cluster like opaque ones.
    pub transparent_prefixes: Vec<String>,
    /// `spec.clusterDomain`: the tenant's DNS domain (pods' DNS search paths), [`DEFAULT_CLUSTER_DOMAIN`]
    /// unless the VirtualCluster says otherwise.
    pub cluster_domain: String,
}

/// The cluster domain of a tenant whose VirtualCluster does not name one.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

impl Default for TenantInfo {
    fn default() -> Self {
        Self {
            cluster_key: String::new(),
            vc_name: String::new(),
            vc_namespace: String::new(),
            opaque_prefixes: Vec::new(),
            transparent_prefixes: Vec::new(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
        }
    }
}

/// A registered tenant: its description and a client for its API server.
#[derive(Clone)]
pub struct Tenant {
    /// Description used by translation.
    pub info: Arc<TenantInfo>,
    /// Client for the tenant's API server.
    pub client: kube::Client,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What the registry knows about a cluster key.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// Registered.
    Active(Tenant),
    /// Was registered and has been removed: its pending work is obsolete.
    Removed,
    /// Never registered (yet).
    Unknown,
}

/// Thread-safe registry of tenants, cheap to clone (shared state).
#[derive(Clone, Debug, Default)]
pub struct Tenants {
    inner: Arc<RwLock<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    active: HashMap<String, Tenant>,
    removed: HashSet<String>,
}

impl Tenants {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a tenant under `info.cluster_key`.
    pub fn insert(&self, info: TenantInfo, client: kube::Client) {
        let key = info.cluster_key.clone();
        let tenant = Tenant {
            info: Arc::new(info),
            client,
        };
        let mut reg = self.inner.write();
        reg.removed.remove(&key);
        reg.active.insert(key, tenant);
    }

    /// Removes a tenant; work still queued for it will be dropped. Returns whether it was registered.
    pub fn remove(&self, cluster_key: &str) -> bool {
        let mut reg = self.inner.write();
        let was = reg.active.remove(cluster_key).is_some();
        reg.removed.insert(cluster_key.to_owned());
        was
    }

    /// Looks a cluster key up.
    #[must_use]
    pub fn lookup(&self, cluster_key: &str) -> Lookup {
        let reg = self.inner.read();
        if let Some(t) = reg.active.get(cluster_key) {
            Lookup::Active(t.clone())
        } else if reg.removed.contains(cluster_key) {
            Lookup::Removed
        } else {
            Lookup::Unknown
        }
    }

    /// Cluster keys of the registered tenants.
    #[must_use]
    pub fn cluster_keys(&self) -> Vec<String> {
        self.inner.read().active.keys().cloned().collect()
    }

    /// Number of registered tenants.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.read().active.len()
    }

    /// True when no tenant is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
