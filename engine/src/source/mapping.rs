//! Turning one observed object into a [`Record`]: which tenant object it concerns ([`WorkKey`]).
//!
//! * Tenant objects concern themselves. A tenant `Namespace` uses its own name as `work.namespace`, so the
//!   namespace and the pods in it land on the same shard.
//! * Super objects concern the tenant object they were translated from, named by the `tenancy.x-k8s.io/*`
//!   annotations the reconciler put on them. Super objects without them, or of a cluster this syncer does
//!   not serve, are ignored (the source watches super objects with a label selector, so unrelated objects
//!   should not even arrive).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use serde_json::Value;

use crate::naming;
use crate::record::{EventType, Record, SUPER_CLUSTER, WorkKey};

/// Label selector of super watches: every super object the syncer writes carries
/// `tenancy.x-k8s.io/controlled=true`, so unrelated super objects never enter the log.
pub fn super_label_selector() -> String {
    format!("{}=true", naming::LABEL_CONTROLLED)
}

/// The cluster keys whose super objects the super sources map to work: shared with the tenant lifecycle,
/// which adds a tenant when it is registered and removes it once its super objects are gone. Cheap to clone
/// (one shared set).
#[derive(Clone, Debug, Default)]
pub struct ServedTenants {
    inner: Arc<RwLock<HashSet<String>>>,
}

impl ServedTenants {
    /// A set holding `keys`.
    pub fn new<I: IntoIterator<Item = String>>(keys: I) -> Self {
        Self {
            inner: Arc::new(RwLock::new(keys.into_iter().collect())),
        }
    }

    /// Whether super objects of `cluster_key` are mapped.
    pub fn contains(&self, cluster_key: &str) -> bool {
        self.inner.read().contains(cluster_key)
    }

    /// Starts mapping super objects of `cluster_key`. Returns whether it was new.
    pub fn insert(&self, cluster_key: &str) -> bool {
        self.inner.write().insert(cluster_key.to_owned())
    }

    /// Stops mapping super objects of `cluster_key`. Returns whether it was present.
    pub fn remove(&self, cluster_key: &str) -> bool {
        self.inner.write().remove(cluster_key)
    }

    /// The served cluster keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.inner.read().iter().cloned().collect();
        keys.sort();
        keys
    }
}

/// Which side of the sync a watched cluster is on.
#[derive(Clone, Debug)]
pub enum ClusterRole {
    /// The super cluster; `tenants` are the cluster keys this syncer serves (changes at run time).
    Super {
        /// Cluster keys of the served tenants; super objects of other tenants are ignored.
        tenants: ServedTenants,
    },
    /// A tenant cluster with this cluster key.
    Tenant {
        /// Cluster key (see [`crate::naming::cluster_key`]).
        cluster_key: String,
    },
}

impl ClusterRole {
    /// The name used in [`Record::cluster`] for events of this cluster.
    pub fn cluster(&self) -> &str {
        match self {
            ClusterRole::Super { .. } => SUPER_CLUSTER,
            ClusterRole::Tenant { cluster_key } => cluster_key,
        }
    }

    /// The bounded metric label: `super` or `tenant`.
    pub fn class(&self) -> &'static str {
        match self {
            ClusterRole::Super { .. } => "super",
            ClusterRole::Tenant { .. } => "tenant",
        }
    }
}

/// How super objects of a kind map to the work key they concern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SuperKey {
    /// Through the syncer's marks (`tenancy.x-k8s.io/*` annotations) on the super copy: the tenant object it
    /// was translated from. Objects without marks, or of tenants not served, are dropped.
    #[default]
    Marks,
    /// Under the super cluster itself: `WorkKey{SUPER_CLUSTER, kind, "", name}`, for cluster-wide objects a
    /// reconcile fans out to many tenants (Nodes, public objects, PersistentVolumes).
    Cluster,
    /// Through the owner of the super namespace the object lives in (the namespace's marks, as the view holds
    /// them): `WorkKey{tenant, kind, tenant namespace, name}`, for super objects the syncer did not write
    /// (Events). Objects in namespaces that are not a served tenant's are dropped.
    Namespace,
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The tenant object a record of `kind` in a cluster of `role` concerns, or `None` when it concerns no
/// tenant this syncer serves.
pub fn work_key(role: &ClusterRole, kind: &str, object: &Value) -> Option<WorkKey> {
    let meta = object.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    if name.is_empty() {
        return None;
    }
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    match role {
        ClusterRole::Tenant { cluster_key } => {
            let work_ns = if namespace.is_empty() {
                // Cluster-scoped: a Namespace shards with its contents; other kinds under "".
                if kind == "Namespace" { name } else { "" }
            } else {
                namespace
            };
            Some(WorkKey {
                cluster: cluster_key.clone(),
                kind: kind.to_string(),
                namespace: work_ns.to_string(),
                name: name.to_string(),
            })
        }
        ClusterRole::Super { tenants } => {
            // Name, namespace and uid of the tenant object, from the syncer's annotations
            // (a super namespace stands for the tenant namespace).
            let id = naming::tenant_identity_from_json(object)?;
            if !tenants.contains(&id.cluster_key) {
                return None;
            }
            Some(WorkKey {
                cluster: id.cluster_key,
                kind: kind.to_string(),
                namespace: id.namespace,
                name: id.name,
            })
        }
    }
}

/// Like [`work_key`], with the kind's [`SuperKey`] rule for super objects; `namespace_owner` reads the marks of
/// a super namespace (tenant cluster key, tenant namespace) for [`SuperKey::Namespace`].
pub fn work_key_with(
    role: &ClusterRole,
    kind: &str,
    super_key: &SuperKey,
    object: &Value,
    namespace_owner: &dyn Fn(&str) -> Option<(String, String)>,
) -> Option<WorkKey> {
    let ClusterRole::Super { tenants } = role else {
        return work_key(role, kind, object);
    };
    match super_key {
        SuperKey::Marks => work_key(role, kind, object),
        SuperKey::Cluster => {
            let name = object.pointer("/metadata/name")?.as_str()?;
            (!name.is_empty()).then(|| WorkKey {
                cluster: SUPER_CLUSTER.to_owned(),
                kind: kind.to_owned(),
                namespace: String::new(),
                name: name.to_owned(),
            })
        }
        SuperKey::Namespace => {
            let name = object.pointer("/metadata/name")?.as_str()?;
            let namespace = object.pointer("/metadata/namespace")?.as_str()?;
            if name.is_empty() || namespace.is_empty() {
                return None;
            }
            let (cluster, tenant_ns) = namespace_owner(namespace)?;
            tenants.contains(&cluster).then(|| WorkKey {
                cluster,
                kind: kind.to_owned(),
                namespace: tenant_ns,
                name: name.to_owned(),
            })
        }
    }
}

/// The owner of super namespace `object` (a super Namespace as JSON): its tenant cluster key and tenant
/// namespace, from the syncer's marks.
#[must_use]
pub fn namespace_owner_of(object: &Value) -> Option<(String, String)> {
    let id = naming::tenant_identity_from_json(object)?;
    Some((id.cluster_key, id.namespace))
}

/// Like [`to_record`], with the kind's [`SuperKey`] rule (see [`work_key_with`]).
pub fn to_record_with(
    role: &ClusterRole,
    kind: &str,
    super_key: &SuperKey,
    event: EventType,
    object: Value,
    seen_at_micros: u64,
    namespace_owner: &dyn Fn(&str) -> Option<(String, String)>,
) -> Option<Record> {
    let work = work_key_with(role, kind, super_key, &object, namespace_owner)?;
    build_record(role, kind, event, object, seen_at_micros, work)
}

/// Builds the record of one observed event, or `None` when the object concerns no served tenant.
pub fn to_record(
    role: &ClusterRole,
    kind: &str,
    event: EventType,
    object: Value,
    seen_at_micros: u64,
) -> Option<Record> {
    let work = work_key(role, kind, &object)?;
    build_record(role, kind, event, object, seen_at_micros, work)
}

fn build_record(
    role: &ClusterRole,
    kind: &str,
    event: EventType,
    object: Value,
    seen_at_micros: u64,
    work: WorkKey,
) -> Option<Record> {
    let meta = object.get("metadata")?;
    let field = |f: &str| {
        meta.get(f)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(Record {
        cluster: role.cluster().to_string(),
        kind: kind.to_string(),
        namespace: field("namespace"),
        name: field("name"),
        uid: field("uid"),
        resource_version: field("resourceVersion"),
        event,
        object,
        seen_at_micros,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID};
    use serde_json::json;

    fn super_role(keys: &[&str]) -> ClusterRole {
        ClusterRole::Super {
            tenants: ServedTenants::new(keys.iter().map(|k| k.to_string())),
        }
    }

    #[test]
    fn tenant_pod_concerns_itself() {
        let role = ClusterRole::Tenant {
            cluster_key: "ns-abc123-vc".into(),
        };
        let pod = json!({"metadata": {"name": "p", "namespace": "team", "uid": "u1", "resourceVersion": "7"}});
        let rec = to_record(&role, "Pod", EventType::Added, pod, 5);
        let rec = rec.unwrap_or_else(|| panic!("tenant pod must map"));
        assert_eq!(rec.cluster, "ns-abc123-vc");
        assert_eq!(
            (rec.uid.as_str(), rec.resource_version.as_str()),
            ("u1", "7")
        );
        assert_eq!(
            rec.work,
            WorkKey {
                cluster: "ns-abc123-vc".into(),
                kind: "Pod".into(),
                namespace: "team".into(),
                name: "p".into()
            }
        );
    }

    #[test]
    fn tenant_namespace_shards_with_its_contents() {
        let role = ClusterRole::Tenant {
            cluster_key: "k".into(),
        };
        let ns = json!({"metadata": {"name": "team"}});
        let work = work_key(&role, "Namespace", &ns);
        assert_eq!(
            work.map(|w| (w.namespace, w.name)),
            Some(("team".into(), "team".into()))
        );
    }

    #[test]
    fn super_pod_maps_back_through_annotations() {
        let role = super_role(&["k1"]);
        let pod = json!({"metadata": {"name": "p", "namespace": "k1-team", "annotations": {
            ANNOTATION_CLUSTER: "k1", ANNOTATION_NAMESPACE: "team", ANNOTATION_UID: "u"}}});
        let rec = to_record(&role, "Pod", EventType::Modified, pod, 1)
            .unwrap_or_else(|| panic!("annotated super pod must map"));
        assert_eq!(rec.cluster, SUPER_CLUSTER);
        assert_eq!(rec.namespace, "k1-team");
        assert_eq!(
            (
                rec.work.cluster.as_str(),
                rec.work.namespace.as_str(),
                rec.work.name.as_str()
            ),
            ("k1", "team", "p")
        );
    }

    #[test]
    fn super_namespace_maps_to_the_tenant_namespace() {
        let role = super_role(&["k1"]);
        let ns = json!({"metadata": {"name": "k1-team", "annotations": {
            ANNOTATION_CLUSTER: "k1", ANNOTATION_NAMESPACE: "team", ANNOTATION_UID: "u"}}});
        let work = work_key(&role, "Namespace", &ns);
        assert_eq!(
            work.map(|w| (w.namespace, w.name)),
            Some(("team".into(), "team".into()))
        );
    }

    #[test]
    fn super_objects_without_identity_or_of_unknown_tenants_are_ignored() {
        let role = super_role(&["k1"]);
        let bare = json!({"metadata": {"name": "p", "namespace": "x"}});
        assert!(work_key(&role, "Pod", &bare).is_none());
        let other = json!({"metadata": {"name": "p", "namespace": "x", "annotations": {
            ANNOTATION_CLUSTER: "k2", ANNOTATION_NAMESPACE: "team", ANNOTATION_UID: "u"}}});
        assert!(work_key(&role, "Pod", &other).is_none());
        let nameless = json!({"metadata": {"namespace": "x"}});
        assert!(work_key(&role, "Pod", &nameless).is_none());
    }

    #[test]
    fn cluster_wide_super_objects_are_keyed_under_the_super_cluster() {
        let role = super_role(&["k1"]);
        let node = json!({"metadata": {"name": "node-1", "uid": "n", "resourceVersion": "3"}});
        let none =
            |_: &str| -> Option<(String, String)> { panic!("no namespace lookup for nodes") };
        let rec = to_record_with(
            &role,
            "Node",
            &SuperKey::Cluster,
            EventType::Modified,
            node.clone(),
            1,
            &none,
        )
        .unwrap_or_else(|| panic!("super node must map"));
        assert_eq!(
            rec.work,
            WorkKey {
                cluster: SUPER_CLUSTER.into(),
                kind: "Node".into(),
                namespace: String::new(),
                name: "node-1".into()
            }
        );
        // Without marks, the default rule drops it.
        assert!(
            to_record_with(
                &role,
                "Node",
                &SuperKey::Marks,
                EventType::Modified,
                node,
                1,
                &none
            )
            .is_none()
        );
        // Tenants map their own objects whatever the super rule.
        let tenant = ClusterRole::Tenant {
            cluster_key: "k1".into(),
        };
        let vn = json!({"metadata": {"name": "node-1"}});
        assert_eq!(
            work_key_with(&tenant, "Node", &SuperKey::Cluster, &vn, &none).map(|w| w.cluster),
            Some("k1".to_string())
        );
    }

    #[test]
    fn super_events_map_through_the_owner_of_their_namespace() {
        let role = super_role(&["k1"]);
        let owner = |ns: &str| match ns {
            "k1-team" => Some(("k1".to_string(), "team".to_string())),
            "k2-team" => Some(("k2".to_string(), "team".to_string())),
            _ => None,
        };
        let ev = |ns: &str| json!({"metadata": {"name": "web.17a", "namespace": ns}});
        let work = work_key_with(&role, "Event", &SuperKey::Namespace, &ev("k1-team"), &owner);
        assert_eq!(
            work,
            Some(WorkKey {
                cluster: "k1".into(),
                kind: "Event".into(),
                namespace: "team".into(),
                name: "web.17a".into()
            })
        );
        assert!(
            work_key_with(
                &role,
                "Event",
                &SuperKey::Namespace,
                &ev("kube-system"),
                &owner
            )
            .is_none()
        );
        assert!(
            work_key_with(&role, "Event", &SuperKey::Namespace, &ev("k2-team"), &owner).is_none(),
            "not served"
        );
        let ns = json!({"metadata": {"name": "k1-team", "annotations": {
            ANNOTATION_CLUSTER: "k1", ANNOTATION_NAMESPACE: "team", ANNOTATION_UID: "u"}}});
        assert_eq!(
            namespace_owner_of(&ns),
            Some(("k1".to_string(), "team".to_string()))
        );
        assert_eq!(
            namespace_owner_of(&json!({"metadata": {"name": "default"}})),
            None
        );
    }

    proptest::proptest! {
        /// A tenant pod and its super copy (in the translated namespace, with the syncer's annotations)
        /// map to the same work key, so both directions of one object land on one shard.
        #[test]
        fn tenant_object_and_its_super_copy_share_a_work_key(
            ns in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
            name in "[a-z][a-z0-9.-]{0,30}[a-z0-9]",
            key in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        ) {
            let tenant = ClusterRole::Tenant { cluster_key: key.clone() };
            let sup = super_role(&[key.as_str()]);
            let tenant_pod = json!({"metadata": {"name": name, "namespace": ns}});
            let super_pod = json!({"metadata": {
                "name": name,
                "namespace": naming::super_namespace(&key, &ns),
                "annotations": {ANNOTATION_CLUSTER: key, ANNOTATION_NAMESPACE: ns, ANNOTATION_UID: "u"}}});
            let a = work_key(&tenant, "Pod", &tenant_pod);
            proptest::prop_assert!(a.is_some());
            proptest::prop_assert_eq!(a, work_key(&sup, "Pod", &super_pod));
            let tenant_ns = json!({"metadata": {"name": ns}});
            let super_ns = json!({"metadata": {
                "name": naming::super_namespace(&key, &ns),
                "annotations": {ANNOTATION_CLUSTER: key, ANNOTATION_NAMESPACE: ns, ANNOTATION_UID: "u"}}});
            let b = work_key(&tenant, "Namespace", &tenant_ns);
            proptest::prop_assert!(b.is_some());
            proptest::prop_assert_eq!(b, work_key(&sup, "Namespace", &super_ns));
        }
    }
}
