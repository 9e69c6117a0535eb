//! Telling the syncer which tenants to serve: a [`Registrar`] registers a Running VirtualCluster (its
//! admin kubeconfig, prefixes and CA) and unregisters it on deletion. Both are idempotent on the syncer's
//! side, so the controller simply calls them on every reconcile of a Running or deleted VirtualCluster.

use futures::future::BoxFuture;

/// What the syncer needs to serve a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// VirtualCluster namespace.
    pub vc_namespace: String,
    /// VirtualCluster name.
    pub vc_name: String,
    /// VirtualCluster uid.
    pub vc_uid: String,
    /// Cluster-admin kubeconfig (YAML) of the tenant API server.
    pub kubeconfig: String,
    /// `status.clusterNamespace` (the cluster key).
    pub cluster_namespace: String,
    /// `spec.opaqueMetaPrefixes`.
    pub opaque_meta_prefixes: Vec<String>,
    /// `spec.transparentMetaPrefixes`.
    pub transparent_meta_prefixes: Vec<String>,
    /// PEM of the tenant's root CA (it signs the apiserver's kubelet-client certificate).
    pub kubelet_client_ca_pem: String,
    /// `spec.clusterDomain` (empty: the syncer's default, `cluster.local`).
    pub cluster_domain: String,
}

/// Registration of tenants with a syncer.
pub trait Registrar: Send + Sync {
    /// Registers (or updates) a tenant; returns the cluster key the syncer uses.
    fn register<'a>(
        &'a self,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<String, String>>;

    /// Unregisters a tenant (a tenant the syncer does not know is fine).
    fn unregister<'a>(
        &'a self,
        vc_namespace: &'a str,
        vc_name: &'a str,
        vc_uid: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}
