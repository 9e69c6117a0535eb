//! `GET /pods`: the calling tenant's pods on this node, from the syncer's `PodsOnNode`, as a kubelet-style
//! `PodList` in tenant names. Only entries that belong to the caller, sit on this node and follow the naming
//! rule are listed, whatever the syncer answers.

use tenancy_proto::v1;

/// The entries of `answer` that may be shown to `cluster_key` on `node`.
pub fn visible<'a>(
    cluster_key: &'a str,
    node: &'a str,
    answer: &'a [v1::PodLocation],
) -> impl Iterator<Item = &'a v1::PodLocation> + 'a {
    answer.iter().filter(move |loc| {
        loc.cluster_key == cluster_key
            && loc.node_name == node
            && !loc.tenant_namespace.is_empty()
            && !loc.tenant_pod.is_empty()
            && loc.super_namespace
                == tenancy_naming::super_namespace(cluster_key, &loc.tenant_namespace)
    })
}

/// A `v1.PodList` of the given pods in tenant names (namespace, name, UID when known; node name).
pub fn pod_list<'a>(pods: impl Iterator<Item = &'a v1::PodLocation>) -> serde_json::Value {
    let items: Vec<serde_json::Value> = pods
        .map(|loc| {
            let mut metadata = serde_json::json!({
                "name": loc.tenant_pod,
                "namespace": loc.tenant_namespace,
            });
            if !loc.tenant_uid.is_empty() {
                metadata["uid"] = serde_json::Value::String(loc.tenant_uid.clone());
            }
            serde_json::json!({
                "metadata": metadata,
                "spec": {"nodeName": loc.node_name},
            })
        })
        .collect();
    serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(key: &str, ns: &str, pod: &str, node: &str) -> v1::PodLocation {
        v1::PodLocation {
            cluster_key: key.into(),
            tenant_namespace: ns.into(),
            tenant_pod: pod.into(),
            tenant_uid: String::new(),
            super_namespace: tenancy_naming::super_namespace(key, ns),
            super_pod: pod.into(),
            super_uid: "s".into(),
            node_name: node.into(),
        }
    }

    #[test]
    fn only_the_callers_pods_on_this_node_are_listed() {
        let mut forged = loc("a", "ns", "forged", "n1");
        forged.super_namespace = tenancy_naming::super_namespace("b", "ns");
        let answer = vec![
            loc("a", "ns", "mine", "n1"),
            loc("b", "ns", "theirs", "n1"),
            loc("a", "ns", "elsewhere", "n2"),
            forged,
        ];
        let list = pod_list(visible("a", "n1", &answer));
        let items = list["items"].as_array().unwrap_or_else(|| panic!("items"));
        assert_eq!(items.len(), 1, "{list}");
        assert_eq!(items[0]["metadata"]["name"], "mine");
        assert_eq!(items[0]["metadata"]["namespace"], "ns");
        assert!(items[0]["metadata"].get("uid").is_none());
    }
}
