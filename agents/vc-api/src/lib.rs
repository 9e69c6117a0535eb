//! The custom resources of the VirtualCluster control plane, API group `tenancy.x-k8s.io/v1alpha1`:
//!
//! - [`VirtualCluster`] (namespaced, short name `vc`): one tenant control plane. `vc-manager` provisions it
//!   and reports progress in its status; `kubectl-vc` creates and reads it.
//! - [`ClusterVersion`] (cluster-scoped, short name `cv`): the templates of a tenant control plane (etcd,
//!   apiserver, controller-manager StatefulSets and Services).
//!
//! The CRD manifests in `deploy/crds/` are generated from these types ([`crd_manifests`]); a test fails when
//! the checked-in files differ.
//!
//! Also here, because `vc-manager` and `kubectl-vc` must agree on them: the names of the Secrets a
//! provisioned tenant has in its root namespace ([`secrets`]), the condition types and reasons
//! ([`conditions`]) and the finalizer.

pub mod conditions;
pub mod secrets;
mod types;

pub use types::{
    ClusterVersion, ClusterVersionSpec, ComponentTemplate, Condition, Phase, VirtualCluster,
    VirtualClusterSpec, VirtualClusterStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of both resources.
pub const GROUP: &str = "tenancy.x-k8s.io";
/// The API version of both resources.
pub const VERSION: &str = "v1alpha1";
/// Finalizer `vc-manager` puts on every VirtualCluster it provisions; removed once the tenant's super
/// objects are gone and the syncer no longer serves it.
pub const FINALIZER: &str = "tenancy.x-k8s.io/vc-manager";
/// Default `spec.pkiExpireDays` (certificate lifetime) when unset.
pub const DEFAULT_PKI_EXPIRE_DAYS: i64 = 365;
/// Default `spec.clusterDomain` when unset.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Default `spec.serviceCidr` when unset (the tenant's service range, kubeadm's default).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// The two CRDs, in the order they are written to `deploy/crds/` (file name, definition).
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        (
            "tenancy.x-k8s.io_virtualclusters.yaml",
            VirtualCluster::crd(),
        ),
        (
            "tenancy.x-k8s.io_clusterversions.yaml",
            ClusterVersion::crd(),
        ),
    ]
}

/// The CRD manifests as YAML text (file name, contents), exactly as checked in under `deploy/crds/`.
pub fn crd_manifests() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    crds()
        .into_iter()
        .map(|(file, crd)| {
            let body = serde_yaml::to_string(&crd)?;
            Ok((
                file,
                format!(
                    "# Generated from agents/vc-api (Rust types); do not edit.\n\
                     # Regenerate: UPDATE_CRDS=1 cargo test -p vc-api --test crd_manifests\n{body}"
                ),
            ))
        })
        .collect()
}
