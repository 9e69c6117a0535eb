//! Node Leases of virtual nodes: `coordination.k8s.io/v1` Leases in the tenant's `kube-node-lease` namespace,
//! named after the node and held by it, renewed while the super node is Ready, so the tenant's node lifecycle
//! controller keeps its virtual nodes Ready (it reads node health from these leases, as it does for a
//! kubelet's).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `leaseDurationSeconds` of virtual node leases (the kubelet's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// The lease of virtual node `node` (its uid in the tenant, for the owner reference), renewed at `now`.
#[must_use]
pub fn node_lease(node: &str, node_uid: Option<&str>, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: node_uid.filter(|u| !u.is_empty()).map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.to_owned(),
                    uid: uid.to_owned(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// `existing` renewed at `now` (holder and duration set too, in case someone changed them).
#[must_use]
pub fn renewed(existing: &Lease, node: &str, now: Timestamp) -> Lease {
    let mut lease = existing.clone();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node.to_owned());
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Whether the lease of a virtual node should be renewed: only while its super node is Ready (a super node
/// that stopped reporting must look the same in the tenant).
#[must_use]
pub fn should_renew(super_node: Option<&Node>) -> bool {
    super_node.is_some_and(super::node::is_ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lease_is_named_held_and_owned_by_the_node() {
        let now = Timestamp::from_second(1_700_000_000).unwrap_or_else(|e| panic!("{e}"));
        let lease = node_lease("node-1", Some("tenant-node-uid"), now);
        let v = serde_json::to_value(&lease).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["metadata"]["name"], "node-1");
        assert_eq!(v["metadata"]["namespace"], LEASE_NAMESPACE);
        assert_eq!(
            v["metadata"]["ownerReferences"][0]["uid"],
            "tenant-node-uid"
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(v["spec"]["holderIdentity"], "node-1");
        assert_eq!(v["spec"]["leaseDurationSeconds"], 40);
        assert!(
            v["spec"]["renewTime"]
                .as_str()
                .is_some_and(|t| t.starts_with("2023-11-14T22:13:20"))
        );
        assert!(
            node_lease("n", None, now)
                .metadata
                .owner_references
                .is_none()
        );
    }

    #[test]
    fn renewal_moves_the_renew_time_and_keeps_the_version() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap_or_else(|e| panic!("{e}"));
        let t1 = Timestamp::from_second(1_700_000_010).unwrap_or_else(|e| panic!("{e}"));
        let mut old = node_lease("n", None, t0);
        old.metadata.resource_version = Some("5".into());
        if let Some(s) = old.spec.as_mut() {
            s.holder_identity = Some("someone".into());
        }
        let new = renewed(&old, "n", t1);
        assert_eq!(new.metadata.resource_version.as_deref(), Some("5"));
        let spec = new.spec.unwrap_or_default();
        assert_eq!(spec.renew_time, Some(MicroTime(t1)));
        assert_eq!(spec.holder_identity.as_deref(), Some("n"));
    }

    #[test]
    fn only_ready_super_nodes_renew() {
        let node = |status: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": status}]}}))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(should_renew(Some(&node("True"))));
        assert!(!should_renew(Some(&node("Unknown"))));
        assert!(!should_renew(None));
    }
}
