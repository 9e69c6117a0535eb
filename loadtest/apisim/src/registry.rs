//! Which resource types an instance serves: the built-in kinds (shared by every instance) and the custom
//! resources defined by the CRDs created in that instance.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::resource_type::ResourceType;

/// Verbs of a normal collection resource, as discovery lists them.
pub const FULL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of namespaces (no deletecollection, like the real server).
pub const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs of a `/status` subresource.
pub const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// Compact description of one built-in type: (group, version, kind, plural, namespaced, short names,
/// categories, status subresource, generation).
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    bool,
);

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// The built-in types (Kubernetes 1.33), in the order discovery lists them.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"], NONE, false, false),
    ("", "v1", "Endpoints", "endpoints", true, &["ep"], NONE, false, false),
    ("", "v1", "Event", "events", true, &["ev"], NONE, false, false),
    ("", "v1", "LimitRange", "limitranges", true, &["limits"], NONE, false, false),
    ("", "v1", "Namespace", "namespaces", false, &["ns"], NONE, true, false),
    ("", "v1", "Node", "nodes", false, &["no"], NONE, true, false),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], NONE, true, false),
    ("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], NONE, true, false),
    ("", "v1", "Pod", "pods", true, &["po"], ALL, true, false),
    ("", "v1", "ReplicationController", "replicationcontrollers", true, &["rc"], ALL, true, true),
    ("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], NONE, true, false),
    ("", "v1", "Secret", "secrets", true, NONE, NONE, false, false),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], NONE, false, false),
    ("", "v1", "Service", "services", true, &["svc"], ALL, true, false),
    ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], ALL, true, true),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"], ALL, true, true),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], ALL, true, true),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], ALL, true, true),
    ("batch", "v1", "CronJob", "cronjobs", true, &["cj"], ALL, true, true),
    ("batch", "v1", "Job", "jobs", true, NONE, ALL, true, true),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, NONE, NONE, false, false),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, NONE, NONE, false, false),
    ("events.k8s.io", "v1", "Event", "events", true, &["ev"], NONE, false, false),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], &["api-extensions"], true, true),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], NONE, false, false),
    ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], NONE, false, false),
    ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, NONE, NONE, false, false),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], NONE, true, true),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], NONE, false, true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], NONE, true, true),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, NONE, NONE, false, false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, NONE, NONE, false, false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, NONE, NONE, false, false),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, NONE, NONE, false, false),
];

/// Built-in API groups in the order `/apis` lists them (the core group is served under `/api`).
pub const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "batch",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "networking.k8s.io",
    "discovery.k8s.io",
];

fn singular_of(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

fn builtins() -> &'static [Arc<ResourceType>] {
    static LIST: OnceLock<Vec<Arc<ResourceType>>> = OnceLock::new();
    LIST.get_or_init(|| {
        BUILTINS
            .iter()
            .map(
                |&(group, version, kind, plural, namespaced, short, cats, status, generation)| {
                    Arc::new(ResourceType {
                        group: group.to_string(),
                        version: version.to_string(),
                        kind: kind.to_string(),
                        list_kind: format!("{kind}List"),
                        plural: plural.to_string(),
                        singular: singular_of(kind),
                        namespaced,
                        short_names: short.iter().map(|s| s.to_string()).collect(),
                        categories: cats.iter().map(|s| s.to_string()).collect(),
                        has_status: status,
                        has_generation: generation,
                        printer_columns: Vec::new(),
                        custom: false,
                    })
                },
            )
            .collect()
    })
}

/// A built-in type by group and plural (`("", "pods")`, `("apps", "deployments")`).
pub fn builtin(group: &str, plural: &str) -> Option<Arc<ResourceType>> {
    builtins()
        .iter()
        .find(|rt| rt.group == group && rt.plural == plural)
        .cloned()
}

/// Storage key of a type: objects of all versions of one group/resource share storage.
pub fn storage_key(rt: &ResourceType) -> String {
    format!("{}/{}", rt.group, rt.plural)
}

/// Extra subresources (besides `status`) of a type, with their verbs, for discovery and routing.
pub fn extra_subresources(rt: &ResourceType) -> &'static [(&'static str, &'static [&'static str])] {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => &[
            ("binding", &["create"]),
            ("log", &["get"]),
            ("exec", &["create", "get"]),
            ("attach", &["create", "get"]),
            ("portforward", &["create", "get"]),
        ],
        ("", "serviceaccounts") => &[("token", &["create"])],
        ("", "namespaces") => &[("finalize", &["update"])],
        ("", "replicationcontrollers")
        | ("apps", "deployments" | "replicasets" | "statefulsets") => {
            &[("scale", &["get", "patch", "update"])]
        }
        _ => &[],
    }
}

/// Discovery verbs of a type's main resource.
pub fn verbs(rt: &ResourceType) -> &'static [&'static str] {
    if rt.group.is_empty() && rt.plural == "namespaces" {
        NAMESPACE_VERBS
    } else {
        FULL_VERBS
    }
}

/// One group as discovery shows it: its name, served versions (preferred first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Served versions, the preferred one first.
    pub versions: Vec<String>,
}

/// Per-instance registry: the built-ins plus the types of established CRDs.
#[derive(Default)]
pub struct Registry {
    custom: RwLock<Vec<CustomEntry>>,
}

struct CustomEntry {
    crd_name: String,
    /// Versions in the CRD's order; the storage/preferred one is listed first by `set_crd`.
    types: Vec<Arc<ResourceType>>,
    /// `openAPIV3Schema` per version name.
    schemas: Vec<(String, Arc<serde_json::Value>)>,
}

impl Registry {
    /// A registry serving only the built-in types.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The type served at `group/version/plural`, if any.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        if let Some(rt) = builtins()
            .iter()
            .find(|rt| rt.group == group && rt.version == version && rt.plural == plural)
        {
            return Some(rt.clone());
        }
        let custom = self.custom.read();
        custom
            .iter()
            .flat_map(|e| e.types.iter())
            .find(|rt| rt.group == group && rt.version == version && rt.plural == plural)
            .cloned()
    }

    /// Every served type (built-in first, then custom).
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        let mut out: Vec<Arc<ResourceType>> = builtins().to_vec();
        out.extend(
            self.custom
                .read()
                .iter()
                .flat_map(|e| e.types.iter().cloned()),
        );
        out
    }

    /// Served types of one group/version.
    pub fn group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .filter(|rt| rt.group == group && rt.version == version)
            .collect()
    }

    /// All groups except the core group, built-ins first, then CRD groups in creation order.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let mut out: Vec<GroupInfo> = BUILTIN_GROUPS
            .iter()
            .map(|g| GroupInfo {
                name: g.to_string(),
                versions: vec!["v1".to_string()],
            })
            .collect();
        for entry in self.custom.read().iter() {
            for rt in &entry.types {
                match out.iter_mut().find(|g| g.name == rt.group) {
                    Some(g) => {
                        if !g.versions.contains(&rt.version) {
                            g.versions.push(rt.version.clone());
                        }
                    }
                    None => out.push(GroupInfo {
                        name: rt.group.clone(),
                        versions: vec![rt.version.clone()],
                    }),
                }
            }
        }
        out
    }

    /// Installs (or replaces) the types defined by one CRD, with each version's `openAPIV3Schema`.
    pub fn set_crd(
        &self,
        crd_name: &str,
        types: Vec<ResourceType>,
        schemas: Vec<(String, serde_json::Value)>,
    ) {
        let mut custom = self.custom.write();
        let types: Vec<Arc<ResourceType>> = types.into_iter().map(Arc::new).collect();
        let schemas: Vec<(String, Arc<serde_json::Value>)> =
            schemas.into_iter().map(|(v, s)| (v, Arc::new(s))).collect();
        match custom.iter_mut().find(|e| e.crd_name == crd_name) {
            Some(entry) => {
                entry.types = types;
                entry.schemas = schemas;
            }
            None => custom.push(CustomEntry {
                crd_name: crd_name.to_string(),
                types,
                schemas,
            }),
        }
    }

    /// The `openAPIV3Schema` of a custom resource version, if its CRD gives one.
    pub fn schema(&self, rt: &ResourceType) -> Option<Arc<serde_json::Value>> {
        if !rt.custom {
            return None;
        }
        let custom = self.custom.read();
        custom
            .iter()
            .filter(|e| {
                e.types
                    .iter()
                    .any(|t| t.group == rt.group && t.plural == rt.plural)
            })
            .flat_map(|e| e.schemas.iter())
            .find(|(v, _)| *v == rt.version)
            .map(|(_, s)| s.clone())
    }

    /// Removes the types of a CRD; returns whether it was installed.
    pub fn remove_crd(&self, crd_name: &str) -> bool {
        let mut custom = self.custom.write();
        let before = custom.len();
        custom.retain(|e| e.crd_name != crd_name);
        custom.len() != before
    }

    /// Whether a (group, plural) is already served by another CRD or a built-in (names conflict).
    pub fn plural_taken(&self, group: &str, plural: &str, except_crd: &str) -> bool {
        builtins()
            .iter()
            .any(|rt| rt.group == group && rt.plural == plural)
            || self
                .custom
                .read()
                .iter()
                .filter(|e| e.crd_name != except_crd)
                .flat_map(|e| e.types.iter())
                .any(|rt| rt.group == group && rt.plural == plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_real_short_names_and_categories() {
        let pods = builtin("", "pods").expect("pods");
        assert_eq!(pods.short_names, vec!["po"]);
        assert_eq!(pods.categories, vec!["all"]);
        assert!(pods.has_status);
        let deploy = builtin("apps", "deployments").expect("deployments");
        assert_eq!(deploy.short_names, vec!["deploy"]);
        assert!(deploy.has_generation);
        let cm = builtin("", "configmaps").expect("configmaps");
        assert!(cm.categories.is_empty());
        assert!(!builtin("", "namespaces").expect("ns").namespaced);
    }

    #[test]
    fn crd_types_appear_and_disappear() {
        let reg = Registry::new();
        assert!(reg.lookup("example.com", "v1", "widgets").is_none());
        let mut rt = (*builtin("", "configmaps").expect("cm")).clone();
        rt.group = "example.com".into();
        rt.plural = "widgets".into();
        rt.kind = "Widget".into();
        rt.custom = true;
        reg.set_crd("widgets.example.com", vec![rt], Vec::new());
        assert!(reg.lookup("example.com", "v1", "widgets").is_some());
        assert!(reg.groups().iter().any(|g| g.name == "example.com"));
        assert!(reg.plural_taken("example.com", "widgets", "other"));
        assert!(!reg.plural_taken("example.com", "widgets", "widgets.example.com"));
        assert!(reg.remove_crd("widgets.example.com"));
        assert!(reg.lookup("example.com", "v1", "widgets").is_none());
    }
}
