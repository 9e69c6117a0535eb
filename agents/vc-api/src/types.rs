//! The Rust types behind the two CRDs.

// `printcolumn(name = ..)` repeated inside one `#[kube(..)]` reads to clippy as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a tenant control plane.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tenancy.x-k8s.io",
    version = "v1alpha1",
    kind = "VirtualCluster",
    namespaced,
    shortname = "vc",
    status = "VirtualClusterStatus",
    doc = "A tenant control plane hosted in the super cluster.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "ClusterNamespace",
        type_ = "string",
        json_path = ".status.clusterNamespace"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterSpec {
    /// Name of the ClusterVersion whose templates build this control plane.
    pub cluster_version_name: String,
    /// DNS domain of the tenant cluster (default `cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    /// Lifetime in days of the certificates issued for the tenant (default 365). Certificates are
    /// re-issued when less than a third of their lifetime is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub pki_expire_days: Option<i64>,
    /// The tenant's service range, an IPv4 CIDR (default `10.96.0.0/12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
    /// Label/annotation prefixes copied from super objects back to tenant objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transparent_meta_prefixes: Vec<String>,
    /// Label/annotation prefixes owned by the super cluster (stripped from tenant objects on the way down).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opaque_meta_prefixes: Vec<String>,
}

/// Lifecycle phase of a VirtualCluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing provisioned yet.
    #[default]
    Pending,
    /// Control plane being created; waiting for it to become ready.
    Provisioning,
    /// Control plane ready and registered with the syncer.
    Running,
    /// A ready control plane is being changed (certificates re-issued, templates re-applied).
    Updating,
    /// Provisioning cannot proceed; `reason` and `message` say why.
    Error,
}

impl Phase {
    /// The phase as written in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Running => "Running",
            Phase::Updating => "Updating",
            Phase::Error => "Error",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a VirtualCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Machine-readable reason of the current phase (CamelCase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Standard conditions (`Valid`, `Provisioned`, `Ready`, `Registered`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The tenant's root namespace in the super cluster; also its cluster key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_namespace: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A condition, in the shape of `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, CamelCase (e.g. `Ready`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// Machine-readable reason, CamelCase.
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// Templates of the tenant control plane's components.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tenancy.x-k8s.io",
    version = "v1alpha1",
    kind = "ClusterVersion",
    shortname = "cv",
    doc = "Templates of a tenant control plane (etcd, apiserver, controller-manager)."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterVersionSpec {
    /// The tenant's etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<ComponentTemplate>,
    /// The tenant's kube-apiserver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<ComponentTemplate>,
    /// The tenant's kube-controller-manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_manager: Option<ComponentTemplate>,
}

/// One component: labels/annotations for its objects, a StatefulSet and a Service (full Kubernetes
/// objects; `vc-manager` sets their namespace and its own labels).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentTemplate {
    /// Metadata (`labels`, `annotations`) added to the component's objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub metadata: Option<serde_json::Value>,
    /// An `apps/v1` StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub statefulset: Option<serde_json::Value>,
    /// A `v1` Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub service: Option<serde_json::Value>,
}

fn preserve_unknown(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
