//! Which tenants have pods on which super nodes, kept in the view (durable, no memory per pod, shared by every
//! shard and the lifecycle task without any other state).
//!
//! Three kinds of entries, under kind names no API kind can take (they contain a dot):
//!
//! | entry | key (cluster, kind, namespace, name) | object |
//! |---|---|---|
//! | a tenant pod's node | (tenant, `upward.PodNode`, tenant ns, pod) | `{"node": N}` |
//! | pods of a tenant on a node | (tenant, `upward.NodePod`, N, `ns/pod`) | `{}` |
//! | a tenant's virtual node on N | (super, `upward.NodeTenant`, N, tenant) | `{"emptySince": micros}` or `{}` |
//!
//! Updating a pod's node is O(1) point writes; "pods of tenant T on node N" is a prefix scan of T's pods on
//! N only; "tenants on node N" (the fan-out of a super node) is a prefix scan of N's tenants. The entries of
//! a removed tenant go with its view (`Pipeline::forget_cluster`); its `NodeTenant` entries are dropped by the
//! lifecycle task.

use serde_json::{Value, json};

use crate::log::{LogError, View};
use crate::record::SUPER_CLUSTER;

/// View kind: a tenant pod → its super node.
pub const KIND_POD_NODE: &str = "upward.PodNode";
/// View kind: pods of a tenant on a node.
pub const KIND_NODE_POD: &str = "upward.NodePod";
/// View kind: tenants that have a virtual node for a super node.
pub const KIND_NODE_TENANT: &str = "upward.NodeTenant";

/// What recording a pod's node changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placed {
    /// The node the pod is on now, if any.
    pub node: Option<String>,
    /// The node the pod left, if it moved or went away.
    pub left: Option<String>,
}

/// The node tenant pod `namespace/name` was last recorded on.
pub fn pod_node(
    view: &View,
    tenant: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, LogError> {
    Ok(view
        .get(tenant, KIND_POD_NODE, namespace, name)?
        .and_then(|s| {
            s.object
                .get("node")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }))
}

/// Records that tenant pod `namespace/name` runs on `node` (`None`: not scheduled, or gone). A node that
/// lost its tenant's last pod gets its grace period started (`now_micros`).
pub fn set_pod_node(
    view: &View,
    tenant: &str,
    namespace: &str,
    name: &str,
    node: Option<&str>,
    now_micros: u64,
) -> Result<Placed, LogError> {
    let old = pod_node(view, tenant, namespace, name)?;
    let mut placed = Placed {
        node: node.map(str::to_owned),
        left: None,
    };
    if old.as_deref() == node {
        return Ok(placed);
    }
    let pod_key = format!("{namespace}/{name}");
    if let Some(old) = &old {
        view.record_write(tenant, KIND_NODE_POD, old, &pod_key, None)?;
        if pods_on(view, tenant, old)? == 0 {
            set_pair(view, tenant, old, Some(now_micros))?;
        }
        placed.left = Some(old.clone());
    }
    match node {
        Some(node) => {
            view.record_write(tenant, KIND_NODE_POD, node, &pod_key, Some(&json!({})))?;
            set_pair(view, tenant, node, None)?;
            view.record_write(
                tenant,
                KIND_POD_NODE,
                namespace,
                name,
                Some(&json!({"node": node})),
            )?;
        }
        None => view.record_write(tenant, KIND_POD_NODE, namespace, name, None)?,
    }
    Ok(placed)
}

/// Pods of `tenant` on `node`.
pub fn pods_on(view: &View, tenant: &str, node: &str) -> Result<usize, LogError> {
    Ok(view.list_namespace(tenant, KIND_NODE_POD, node)?.len())
}

/// Marks that `tenant` has (or wants) a virtual node for `node`; `empty_since` starts its grace period.
pub fn set_pair(
    view: &View,
    tenant: &str,
    node: &str,
    empty_since: Option<u64>,
) -> Result<(), LogError> {
    let obj = match empty_since {
        Some(t) => json!({"emptySince": t}),
        None => json!({}),
    };
    view.record_write(SUPER_CLUSTER, KIND_NODE_TENANT, node, tenant, Some(&obj))
}

/// Whether `tenant` has a virtual node entry for `node`, and since when it has been empty (if known).
pub fn pair(view: &View, tenant: &str, node: &str) -> Result<Option<Option<u64>>, LogError> {
    Ok(view
        .get(SUPER_CLUSTER, KIND_NODE_TENANT, node, tenant)?
        .map(|s| s.object.get("emptySince").and_then(Value::as_u64)))
}

/// Drops the entry of `tenant`'s virtual node for `node`.
pub fn forget_pair(view: &View, tenant: &str, node: &str) -> Result<(), LogError> {
    view.record_write(SUPER_CLUSTER, KIND_NODE_TENANT, node, tenant, None)
}

/// Tenants that have a virtual node for `node` (sorted).
pub fn tenants_on(view: &View, node: &str) -> Result<Vec<String>, LogError> {
    Ok(view
        .list_namespace(SUPER_CLUSTER, KIND_NODE_TENANT, node)?
        .into_iter()
        .map(|(tenant, _)| tenant)
        .collect())
}

/// Every (node, tenant, empty since) entry.
pub fn all_pairs(view: &View) -> Result<Vec<(String, String, Option<u64>)>, LogError> {
    Ok(view
        .list(SUPER_CLUSTER, KIND_NODE_TENANT)?
        .into_iter()
        .map(|(node, tenant, s)| {
            let since = s.object.get("emptySince").and_then(Value::as_u64);
            (node, tenant, since)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> (tempfile::TempDir, View) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let db = sled::open(dir.path()).unwrap_or_else(|e| panic!("sled: {e}"));
        let tree = db.open_tree("view").unwrap_or_else(|e| panic!("tree: {e}"));
        let view = View::new(tree, std::sync::Arc::new(parking_lot::Mutex::new(())));
        (dir, view)
    }

    fn ok<T>(r: Result<T, LogError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pods_join_and_leave_nodes_and_the_last_one_out_starts_the_grace_period() {
        let (_d, v) = view();
        let p = ok(set_pod_node(&v, "k1", "ns", "a", Some("n1"), 10));
        assert_eq!(
            p,
            Placed {
                node: Some("n1".into()),
                left: None
            }
        );
        ok(set_pod_node(&v, "k1", "other", "b", Some("n1"), 10));
        assert_eq!(ok(pods_on(&v, "k1", "n1")), 2);
        assert_eq!(ok(pair(&v, "k1", "n1")), Some(None));
        assert_eq!(ok(tenants_on(&v, "n1")), vec!["k1".to_string()]);
        assert_eq!(ok(pod_node(&v, "k1", "ns", "a")).as_deref(), Some("n1"));

        ok(set_pod_node(&v, "k1", "ns", "a", None, 20));
        assert_eq!(ok(pair(&v, "k1", "n1")), Some(None), "one pod still there");
        let p = ok(set_pod_node(&v, "k1", "other", "b", None, 30));
        assert_eq!(p.left.as_deref(), Some("n1"));
        assert_eq!(ok(pods_on(&v, "k1", "n1")), 0);
        assert_eq!(ok(pair(&v, "k1", "n1")), Some(Some(30)));
        assert_eq!(
            ok(all_pairs(&v)),
            vec![("n1".to_string(), "k1".to_string(), Some(30))]
        );
        assert_eq!(ok(pod_node(&v, "k1", "ns", "a")), None);

        // A new pod during the grace period cancels it.
        ok(set_pod_node(&v, "k1", "ns", "c", Some("n1"), 40));
        assert_eq!(ok(pair(&v, "k1", "n1")), Some(None));
        ok(forget_pair(&v, "k1", "n1"));
        assert!(ok(tenants_on(&v, "n1")).is_empty());
    }

    #[test]
    fn tenants_and_nodes_are_kept_apart_and_moves_are_seen() {
        let (_d, v) = view();
        ok(set_pod_node(&v, "k1", "ns", "a", Some("n1"), 1));
        ok(set_pod_node(&v, "k2", "ns", "a", Some("n1"), 1));
        let p = ok(set_pod_node(&v, "k1", "ns", "a", Some("n2"), 5));
        assert_eq!(p.left.as_deref(), Some("n1"));
        assert_eq!(ok(pods_on(&v, "k1", "n1")), 0);
        assert_eq!(ok(pods_on(&v, "k2", "n1")), 1);
        assert_eq!(ok(pods_on(&v, "k1", "n2")), 1);
        assert_eq!(
            ok(tenants_on(&v, "n1")),
            vec!["k1".to_string(), "k2".to_string()]
        );
        assert_eq!(ok(pair(&v, "k1", "n1")), Some(Some(5)));
        assert_eq!(ok(pair(&v, "k2", "n1")), Some(None));
        // Same node again changes nothing.
        assert_eq!(
            ok(set_pod_node(&v, "k1", "ns", "a", Some("n2"), 9)).left,
            None
        );
    }
}
