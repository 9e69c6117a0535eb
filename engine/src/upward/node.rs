//! Virtual nodes: the tenant's picture of a super node that runs at least one of the tenant's pods.
//!
//! A virtual node is unschedulable and tainted `node.kubernetes.io/unschedulable:NoSchedule` (the tenant's
//! scheduler never places pods on it: the super scheduler does), labelled `tenancy.x-k8s.io/virtualnode=true`
//! (the only tenant nodes the syncer ever updates or deletes), and advertises the vn-agent's port as its kubelet
//! endpoint, so `kubectl logs/exec` of the tenant reach the vn-agent on the super node.
//!
//! Labels copied from the super node: only the well-known, workload-facing ones in [`SAFE_LABELS`] (hostname,
//! OS/architecture, instance type, topology region/zone), so a tenant's node affinities and topology spread
//! constraints mean the same as in the super cluster, while the super cluster's operational labels (node roles,
//! pools, ownership, node-restriction labels) stay private. Other labels the tenant put on its virtual node are
//! kept.
//!
//! Status copied: addresses, capacity, allocatable, conditions and nodeInfo; `daemonEndpoints` is rewritten to
//! the vn-agent port.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeDaemonEndpoints, NodeSpec, NodeStatus, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Label on every tenant node the syncer manages.
pub const LABEL_VIRTUAL_NODE: &str = "tenancy.x-k8s.io/virtualnode";
/// Taint key that keeps the tenant's scheduler off a virtual node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Default kubelet port advertised by virtual nodes: the vn-agent's.
pub const DEFAULT_VN_AGENT_PORT: i32 = 10550;

/// Super node labels copied to virtual nodes (exact keys).
pub const SAFE_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
];

/// True when `key` is a label the syncer manages on virtual nodes.
fn managed_label(key: &str) -> bool {
    key == LABEL_VIRTUAL_NODE || SAFE_LABELS.contains(&key)
}

/// True when a tenant node carries `tenancy.x-k8s.io/virtualnode=true` (the syncer never touches others).
#[must_use]
pub fn is_virtual(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_VIRTUAL_NODE))
        .is_some_and(|v| v == "true")
}

/// True when the super node reports `Ready=True`.
#[must_use]
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The labels a virtual node gets from its super node.
fn managed_labels(super_node: &Node) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = super_node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| SAFE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_VIRTUAL_NODE.into(), "true".into());
    labels
}

/// The spec every virtual node has.
fn virtual_spec() -> NodeSpec {
    NodeSpec {
        unschedulable: Some(true),
        taints: Some(vec![Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        }]),
        ..NodeSpec::default()
    }
}

/// The status a virtual node shows for `super_node`.
#[must_use]
pub fn virtual_status(super_node: &Node, vn_agent_port: i32) -> NodeStatus {
    let s = super_node.status.clone().unwrap_or_default();
    NodeStatus {
        addresses: s.addresses,
        capacity: s.capacity,
        allocatable: s.allocatable,
        conditions: s.conditions,
        node_info: s.node_info,
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: vn_agent_port,
            }),
        }),
        ..NodeStatus::default()
    }
}

/// The virtual node to create in a tenant for `super_node`.
#[must_use]
pub fn virtual_node(super_node: &Node, vn_agent_port: i32) -> Node {
    Node {
        metadata: ObjectMeta {
            name: super_node.metadata.name.clone(),
            labels: Some(managed_labels(super_node)),
            ..ObjectMeta::default()
        },
        spec: Some(virtual_spec()),
        status: Some(virtual_status(super_node, vn_agent_port)),
    }
}

/// What a tenant's existing virtual node needs to match its super node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeChanges {
    /// The node with labels and spec fixed (a main-resource update), if they differ.
    pub object: Option<Node>,
    /// The status to write through the status subresource, if it differs.
    pub status: Option<NodeStatus>,
}

impl NodeChanges {
    /// True when nothing has to be written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.object.is_none() && self.status.is_none()
    }
}

/// Compares a tenant's virtual node with what it should be for `super_node`. Labels the syncer does not
/// manage (the tenant's own) are kept; managed ones follow the super node.
#[must_use]
pub fn changes(tenant_node: &Node, super_node: &Node, vn_agent_port: i32) -> NodeChanges {
    let mut out = NodeChanges::default();
    let current_labels = tenant_node.metadata.labels.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = current_labels
        .iter()
        .filter(|(k, _)| !managed_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(managed_labels(super_node));
    let spec = tenant_node.spec.clone().unwrap_or_default();
    let spec_ok = spec.unschedulable == Some(true)
        && spec.taints.as_ref().is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == TAINT_UNSCHEDULABLE && t.effect == "NoSchedule")
        });
    if labels != current_labels || !spec_ok {
        let mut node = tenant_node.clone();
        node.metadata.labels = Some(labels);
        let mut spec = spec;
        spec.unschedulable = Some(true);
        let mut taints = spec.taints.take().unwrap_or_default();
        if !taints
            .iter()
            .any(|t| t.key == TAINT_UNSCHEDULABLE && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: TAINT_UNSCHEDULABLE.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
        spec.taints = Some(taints);
        node.spec = Some(spec);
        out.object = Some(node);
    }
    let desired = virtual_status(super_node, vn_agent_port);
    let current = tenant_node.status.clone().unwrap_or_default();
    let current_cmp = NodeStatus {
        addresses: current.addresses.clone(),
        capacity: current.capacity.clone(),
        allocatable: current.allocatable.clone(),
        conditions: current.conditions.clone(),
        node_info: current.node_info.clone(),
        daemon_endpoints: current.daemon_endpoints.clone(),
        ..NodeStatus::default()
    };
    if desired != current_cmp {
        // Keep what the tenant's control plane put in fields the syncer does not manage.
        out.status = Some(NodeStatus {
            addresses: desired.addresses,
            capacity: desired.capacity,
            allocatable: desired.allocatable,
            conditions: desired.conditions,
            node_info: desired.node_info,
            daemon_endpoints: desired.daemon_endpoints,
            ..current
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn super_node() -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "node-1", "uid": "super-uid", "resourceVersion": "9",
                "labels": {"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux",
                           "topology.kubernetes.io/zone": "z1", "node-role.kubernetes.io/worker": "",
                           "pool.example.com/owner": "team-x"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": "10.0.1.0/24", "providerID": "aws:///i-123"},
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "7500m", "memory": "30Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "lastHeartbeatTime": "2024-01-01T00:00:00Z"}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1",
                    "osImage": "x", "containerRuntimeVersion": "containerd://1.7", "kubeletVersion": "v1.33.0",
                    "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64"},
                "images": [{"names": ["nginx"], "sizeBytes": 1}]
            }
        }))
        .unwrap_or_else(|e| panic!("node: {e}"))
    }

    #[test]
    fn virtual_node_is_unschedulable_tainted_labelled_and_points_at_the_vn_agent() {
        let vn = virtual_node(&super_node(), 10550);
        let v = serde_json::to_value(&vn).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["metadata"]["name"], "node-1");
        assert_eq!(v["metadata"]["labels"][LABEL_VIRTUAL_NODE], "true");
        assert_eq!(v["metadata"]["labels"]["topology.kubernetes.io/zone"], "z1");
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/hostname"], "node-1");
        assert!(
            v["metadata"]["labels"]
                .get("node-role.kubernetes.io/worker")
                .is_none()
        );
        assert!(
            v["metadata"]["labels"]
                .get("pool.example.com/owner")
                .is_none()
        );
        assert!(v["metadata"].get("uid").is_none());
        assert!(v["metadata"].get("annotations").is_none());
        assert_eq!(v["spec"]["unschedulable"], true);
        assert_eq!(
            v["spec"]["taints"],
            json!([{"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}])
        );
        assert!(v["spec"].get("providerID").is_none());
        assert!(v["spec"].get("podCIDR").is_none());
        assert_eq!(
            v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10550
        );
        assert_eq!(v["status"]["capacity"]["cpu"], "8");
        assert_eq!(v["status"]["allocatable"]["cpu"], "7500m");
        assert_eq!(v["status"]["addresses"][0]["address"], "172.18.0.2");
        assert_eq!(v["status"]["nodeInfo"]["kubeletVersion"], "v1.33.0");
        assert_eq!(v["status"]["conditions"][0]["type"], "Ready");
        assert!(v["status"].get("images").is_none());
        assert!(is_virtual(&vn));
        assert!(is_ready(&super_node()));
    }

    #[test]
    fn an_in_sync_virtual_node_needs_nothing() {
        let mut tenant = virtual_node(&super_node(), 10550);
        tenant.metadata.resource_version = Some("3".into());
        assert!(changes(&tenant, &super_node(), 10550).is_empty());
    }

    #[test]
    fn status_changes_flow_without_touching_the_object() {
        let tenant = virtual_node(&super_node(), 10550);
        let mut sup = super_node();
        if let Some(cs) = sup.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            cs[0].status = "False".into();
        }
        let c = changes(&tenant, &sup, 10550);
        assert!(c.object.is_none());
        let status = c.status.unwrap_or_else(|| panic!("status must change"));
        assert_eq!(
            status.conditions.unwrap_or_default()[0].status,
            "False".to_string()
        );
        assert!(!is_ready(&sup));
    }

    #[test]
    fn managed_labels_follow_the_super_node_and_tenant_labels_stay() {
        let mut tenant = virtual_node(&super_node(), 10550);
        if let Some(l) = tenant.metadata.labels.as_mut() {
            l.insert("team".into(), "a".into());
        }
        let mut sup = super_node();
        if let Some(l) = sup.metadata.labels.as_mut() {
            l.insert("topology.kubernetes.io/zone".into(), "z2".into());
            l.remove("kubernetes.io/os");
        }
        let c = changes(&tenant, &sup, 10550);
        let node = c.object.unwrap_or_else(|| panic!("labels must change"));
        let labels = node.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels
                .get("topology.kubernetes.io/zone")
                .map(String::as_str),
            Some("z2")
        );
        assert!(!labels.contains_key("kubernetes.io/os"));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            labels.get(LABEL_VIRTUAL_NODE).map(String::as_str),
            Some("true")
        );
        assert!(c.status.is_none());
    }

    #[test]
    fn a_tenant_that_made_the_node_schedulable_gets_it_fixed_and_the_port_is_configurable() {
        let mut tenant = virtual_node(&super_node(), 10550);
        if let Some(spec) = tenant.spec.as_mut() {
            spec.unschedulable = Some(false);
            spec.taints = None;
        }
        let c = changes(&tenant, &super_node(), 12345);
        let spec = c
            .object
            .and_then(|n| n.spec)
            .unwrap_or_else(|| panic!("spec must be fixed"));
        assert_eq!(spec.unschedulable, Some(true));
        assert_eq!(spec.taints.map(|t| t.len()), Some(1));
        let status = c.status.unwrap_or_else(|| panic!("port must change"));
        assert_eq!(
            status
                .daemon_endpoints
                .and_then(|d| d.kubelet_endpoint)
                .map(|k| k.port),
            Some(12345)
        );
    }
}
