//! Metadata translation shared by every synced kind: the syncer's marks on a super copy, reserved-prefix
//! stripping, ownership checks and the upward copy of transparent keys.
//!
//! Ownership of label and annotation keys on a super object:
//! * **tenant-owned**: every key the tenant may set. Copied down; a tenant-owned key that exists only on the
//!   super object is removed (the super copy mirrors the tenant).
//! * **super-owned**: keys under `tenancy.x-k8s.io` (and its sub-domains such as
//!   `transparency.tenancy.x-k8s.io`), the VC's opaque and transparent prefixes, and keys the API server
//!   manages itself (`kubernetes.io/metadata.name` on namespaces). Stripped from the tenant's metadata on the
//!   way down, so a tenant can never forge the syncer's marks; kept as they are on the super object, except
//!   the syncer's own marks, which are always (re)written.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::tenants::TenantInfo;
use crate::naming::{
    ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_OWNER_REFERENCES, ANNOTATION_UID,
    ANNOTATION_VC_NAME, ANNOTATION_VC_NAMESPACE, LABEL_CONTROLLED, RESERVED_PREFIX,
    TRANSPARENT_PREFIX,
};

/// Label the API server sets on every namespace to its own name; never copied between clusters.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The syncer's own marks: always taken from the translation, never kept from the super object.
const MARK_KEYS: &[&str] = &[
    ANNOTATION_CLUSTER,
    ANNOTATION_UID,
    ANNOTATION_NAMESPACE,
    ANNOTATION_VC_NAME,
    ANNOTATION_VC_NAMESPACE,
    ANNOTATION_OWNER_REFERENCES,
    LABEL_CONTROLLED,
];

/// A string map as used for labels and annotations.
pub type StringMap = BTreeMap<String, String>;

/// True for keys a tenant may not set on a super object (see the module docs).
#[must_use]
pub fn is_super_owned(key: &str, tenant: &TenantInfo) -> bool {
    let domain = key.split_once('/').map_or("", |(d, _)| d);
    key.starts_with(RESERVED_PREFIX)
        || domain.ends_with(&format!(".{RESERVED_PREFIX}"))
        || tenant
            .opaque_prefixes
            .iter()
            .chain(&tenant.transparent_prefixes)
            .any(|p| !p.is_empty() && key.starts_with(p.as_str()))
}

/// True for keys copied from a super object up to its tenant object.
#[must_use]
pub fn is_transparent(key: &str, tenant: &TenantInfo) -> bool {
    key.starts_with(TRANSPARENT_PREFIX)
        || tenant
            .transparent_prefixes
            .iter()
            .any(|p| !p.is_empty() && key.starts_with(p.as_str()))
}

/// The tenant-owned part of a label or annotation map.
#[must_use]
pub fn strip_super_owned(
    map: Option<&StringMap>,
    tenant: &TenantInfo,
    extra: &[&str],
) -> StringMap {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| !is_super_owned(k, tenant) && !extra.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Where a super copy goes.
#[derive(Clone, Copy, Debug)]
pub enum Placement<'a> {
    /// A namespaced object, kept under its tenant name in this super namespace.
    Namespaced {
        /// The super namespace ([`crate::naming::super_namespace`]).
        super_namespace: &'a str,
    },
    /// A tenant Namespace, copied as the super namespace of this name.
    Namespace {
        /// The super namespace's name.
        super_name: &'a str,
    },
}

/// Metadata of the super copy of a tenant object: name and namespace per `placement`, the tenant's
/// tenant-owned labels and annotations plus the syncer's marks, and nothing else (uid, resourceVersion,
/// ownerReferences, finalizers, managedFields, creationTimestamp, generation are left unset).
#[must_use]
pub fn super_meta(
    tenant_meta: &ObjectMeta,
    tenant: &TenantInfo,
    placement: Placement<'_>,
) -> ObjectMeta {
    let tenant_name = tenant_meta.name.clone().unwrap_or_default();
    let (name, namespace, tenant_namespace, extra): (String, Option<String>, String, &[&str]) =
        match placement {
            Placement::Namespaced { super_namespace } => (
                tenant_name,
                Some(super_namespace.to_owned()),
                tenant_meta.namespace.clone().unwrap_or_default(),
                &[],
            ),
            Placement::Namespace { super_name } => (
                super_name.to_owned(),
                None,
                tenant_name,
                &[NAMESPACE_NAME_LABEL],
            ),
        };
    let mut labels = strip_super_owned(tenant_meta.labels.as_ref(), tenant, extra);
    labels.extend(marks_labels(tenant));
    let mut annotations = strip_super_owned(tenant_meta.annotations.as_ref(), tenant, &[]);
    annotations.insert(ANNOTATION_CLUSTER.into(), tenant.cluster_key.clone());
    annotations.insert(
        ANNOTATION_UID.into(),
        tenant_meta.uid.clone().unwrap_or_default(),
    );
    annotations.insert(ANNOTATION_NAMESPACE.into(), tenant_namespace);
    annotations.insert(ANNOTATION_VC_NAME.into(), tenant.vc_name.clone());
    annotations.insert(ANNOTATION_VC_NAMESPACE.into(), tenant.vc_namespace.clone());
    if let Some(refs) = tenant_meta
        .owner_references
        .as_ref()
        .filter(|r| !r.is_empty())
    {
        match serde_json::to_string(refs) {
            Ok(json) => {
                annotations.insert(ANNOTATION_OWNER_REFERENCES.into(), json);
            }
            Err(err) => tracing::warn!(%err, "failed to encode tenant owner references"),
        }
    }
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

/// The labels every super copy carries.
fn marks_labels(tenant: &TenantInfo) -> [(String, String); 3] {
    [
        (ANNOTATION_VC_NAME.into(), tenant.vc_name.clone()),
        (ANNOTATION_VC_NAMESPACE.into(), tenant.vc_namespace.clone()),
        (LABEL_CONTROLLED.into(), "true".into()),
    ]
}

/// The label or annotation map a super object should have: the tenant-owned keys of `desired` (the
/// translated map, which also holds the syncer's marks), plus the super-owned keys already on the super object
/// except the syncer's marks (so a stale mark such as removed owner references goes). `keep` names further keys kept from `actual` (server-managed ones).
#[must_use]
pub fn merge_down(
    desired: Option<&StringMap>,
    actual: Option<&StringMap>,
    tenant: &TenantInfo,
    keep: &[&str],
) -> StringMap {
    let mut out: StringMap = actual
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            (is_super_owned(k, tenant) && !MARK_KEYS.contains(&k.as_str()))
                || keep.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in desired.into_iter().flatten() {
        if !keep.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// True when two optional maps hold the same entries (`None` equals empty).
#[must_use]
pub fn same_map(a: Option<&StringMap>, b: Option<&StringMap>) -> bool {
    let empty = StringMap::new();
    a.unwrap_or(&empty) == b.unwrap_or(&empty)
}

/// Labels and annotations of the super object per [`merge_down`]; `None` when `actual` already has them.
#[must_use]
pub fn down_update(
    desired: &ObjectMeta,
    actual: &ObjectMeta,
    tenant: &TenantInfo,
    keep_labels: &[&str],
) -> Option<(StringMap, StringMap)> {
    let labels = merge_down(
        desired.labels.as_ref(),
        actual.labels.as_ref(),
        tenant,
        keep_labels,
    );
    let annotations = merge_down(
        desired.annotations.as_ref(),
        actual.annotations.as_ref(),
        tenant,
        &[],
    );
    let same = same_map(Some(&labels), actual.labels.as_ref())
        && same_map(Some(&annotations), actual.annotations.as_ref());
    (!same).then_some((labels, annotations))
}

/// The tenant object's labels and annotations after copying the super object's transparent keys up (and
/// removing transparent keys the super object no longer has); `None` when already in sync.
#[must_use]
pub fn up_update(
    super_meta: &ObjectMeta,
    tenant_meta: &ObjectMeta,
    tenant: &TenantInfo,
) -> Option<(StringMap, StringMap)> {
    let lift = |sup: Option<&StringMap>, ten: Option<&StringMap>| -> StringMap {
        let mut out: StringMap = ten
            .into_iter()
            .flatten()
            .filter(|(k, _)| !is_transparent(k, tenant))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.extend(
            sup.into_iter()
                .flatten()
                .filter(|(k, _)| is_transparent(k, tenant))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out
    };
    let labels = lift(super_meta.labels.as_ref(), tenant_meta.labels.as_ref());
    let annotations = lift(
        super_meta.annotations.as_ref(),
        tenant_meta.annotations.as_ref(),
    );
    let same = same_map(Some(&labels), tenant_meta.labels.as_ref())
        && same_map(Some(&annotations), tenant_meta.annotations.as_ref());
    (!same).then_some((labels, annotations))
}

/// Whose a super object is, judged by its marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Made by the syncer for this tenant and this tenant namespace, on behalf of the tenant object with
    /// this uid.
    Ours {
        /// The `tenancy.x-k8s.io/uid` mark.
        tenant_uid: String,
    },
    /// Anything else: no marks, or another tenant's or another namespace's. Never touched.
    Foreign,
}

/// Reads the marks of a super object: is it this tenant's copy of an object of `tenant_namespace`?
#[must_use]
pub fn ownership(
    super_meta: &ObjectMeta,
    tenant: &TenantInfo,
    tenant_namespace: &str,
) -> Ownership {
    let Some(ann) = super_meta.annotations.as_ref() else {
        return Ownership::Foreign;
    };
    let get = |k: &str| ann.get(k).map(String::as_str).unwrap_or_default();
    let uid = get(ANNOTATION_UID);
    if get(ANNOTATION_CLUSTER) == tenant.cluster_key
        && get(ANNOTATION_NAMESPACE) == tenant_namespace
        && !uid.is_empty()
    {
        Ownership::Ours {
            tenant_uid: uid.to_owned(),
        }
    } else {
        Ownership::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            opaque_prefixes: vec!["secret.example.com/".into()],
            transparent_prefixes: vec!["up.example.com/".into()],
            ..TenantInfo::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn super_owned_keys() {
        let t = tenant();
        for key in [
            "tenancy.x-k8s.io/uid",
            "tenancy.x-k8s.io/cluster",
            "transparency.tenancy.x-k8s.io/clusterIP",
            "secret.example.com/x",
            "up.example.com/y",
        ] {
            assert!(is_super_owned(key, &t), "{key}");
        }
        for key in ["app", "example.com/tenancy.x-k8s.io", "x-k8s.io/foo"] {
            assert!(!is_super_owned(key, &t), "{key}");
        }
        assert!(is_transparent("transparency.tenancy.x-k8s.io/a", &t));
        assert!(is_transparent("up.example.com/a", &t));
        assert!(!is_transparent("tenancy.x-k8s.io/uid", &t));
    }

    #[test]
    fn forged_marks_are_replaced_by_the_real_ones() {
        let t = tenant();
        let meta = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("real-uid".into()),
            resource_version: Some("42".into()),
            finalizers: Some(vec!["x/y".into()]),
            generation: Some(3),
            labels: Some(map(&[
                ("app", "web"),
                ("tenancy.x-k8s.io/vcname", "other"),
                ("tenancy.x-k8s.io/controlled", "false"),
                ("secret.example.com/tier", "gold"),
            ])),
            annotations: Some(map(&[
                ("note", "hi"),
                ("tenancy.x-k8s.io/uid", "forged-uid"),
                ("tenancy.x-k8s.io/cluster", "victim-cluster"),
                ("transparency.tenancy.x-k8s.io/clusterIP", "1.2.3.4"),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-1".into(),
                uid: "rs-uid".into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        };
        let out = super_meta(
            &meta,
            &t,
            Placement::Namespaced {
                super_namespace: "sns",
            },
        );
        assert_eq!(out.name.as_deref(), Some("web"));
        assert_eq!(out.namespace.as_deref(), Some("sns"));
        assert_eq!(
            (
                out.uid,
                out.resource_version,
                out.finalizers,
                out.generation
            ),
            (None, None, None, None)
        );
        assert_eq!(out.owner_references, None);
        assert_eq!(
            out.labels,
            Some(map(&[
                ("app", "web"),
                ("tenancy.x-k8s.io/controlled", "true"),
                ("tenancy.x-k8s.io/vcname", "vc1"),
                ("tenancy.x-k8s.io/vcnamespace", "team"),
            ]))
        );
        let ann = out.annotations.unwrap_or_default();
        assert_eq!(
            ann.get("tenancy.x-k8s.io/uid").map(String::as_str),
            Some("real-uid")
        );
        assert_eq!(
            ann.get("tenancy.x-k8s.io/cluster").map(String::as_str),
            Some("team-ba7816-vc1")
        );
        assert_eq!(
            ann.get("tenancy.x-k8s.io/namespace").map(String::as_str),
            Some("default")
        );
        assert_eq!(ann.get("note").map(String::as_str), Some("hi"));
        assert!(!ann.contains_key("transparency.tenancy.x-k8s.io/clusterIP"));
        let refs: Vec<OwnerReference> = ann
            .get("tenancy.x-k8s.io/ownerReferences")
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        assert_eq!(refs.first().map(|r| r.uid.as_str()), Some("rs-uid"));
    }

    #[test]
    fn namespace_placement_drops_the_server_name_label() {
        let t = tenant();
        let meta = ObjectMeta {
            name: Some("web".into()),
            uid: Some("ns-uid".into()),
            labels: Some(map(&[(NAMESPACE_NAME_LABEL, "web"), ("env", "prod")])),
            ..ObjectMeta::default()
        };
        let out = super_meta(
            &meta,
            &t,
            Placement::Namespace {
                super_name: "k-web",
            },
        );
        assert_eq!((out.name.as_deref(), out.namespace), (Some("k-web"), None));
        let labels = out.labels.unwrap_or_default();
        assert!(!labels.contains_key(NAMESPACE_NAME_LABEL));
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        let ann = out.annotations.unwrap_or_default();
        assert_eq!(
            ann.get(ANNOTATION_NAMESPACE).map(String::as_str),
            Some("web")
        );
    }

    #[test]
    fn merge_down_keeps_super_owned_and_drops_stale_tenant_keys() {
        let t = tenant();
        let desired = map(&[("app", "v2"), ("tenancy.x-k8s.io/uid", "u")]);
        let actual = map(&[
            ("app", "v1"),
            ("removed-by-tenant", "x"),
            ("secret.example.com/tier", "gold"),
            ("tenancy.x-k8s.io/uid", "u"),
            (ANNOTATION_OWNER_REFERENCES, "[]"),
            (NAMESPACE_NAME_LABEL, "k-web"),
        ]);
        let out = merge_down(Some(&desired), Some(&actual), &t, &[NAMESPACE_NAME_LABEL]);
        assert_eq!(
            out,
            map(&[
                ("app", "v2"),
                (NAMESPACE_NAME_LABEL, "k-web"),
                ("secret.example.com/tier", "gold"),
                ("tenancy.x-k8s.io/uid", "u"),
            ])
        );
    }

    #[test]
    fn down_update_is_none_when_in_sync() {
        let t = tenant();
        let desired = ObjectMeta {
            labels: Some(map(&[("a", "1")])),
            annotations: Some(map(&[("tenancy.x-k8s.io/uid", "u")])),
            ..ObjectMeta::default()
        };
        let mut actual = desired.clone();
        actual
            .annotations
            .get_or_insert_with(StringMap::new)
            .insert("secret.example.com/x".into(), "kept".into());
        assert_eq!(down_update(&desired, &actual, &t, &[]), None);
        actual.labels = Some(map(&[("a", "2")]));
        let (labels, _) = down_update(&desired, &actual, &t, &[]).unwrap_or_default();
        assert_eq!(labels, map(&[("a", "1")]));
    }

    #[test]
    fn up_update_copies_transparent_keys_only() {
        let t = tenant();
        let sup = ObjectMeta {
            annotations: Some(map(&[
                ("transparency.tenancy.x-k8s.io/clusterIP", "10.0.0.1"),
                ("up.example.com/zone", "a"),
                ("tenancy.x-k8s.io/uid", "u"),
                ("super-only", "x"),
            ])),
            ..ObjectMeta::default()
        };
        let ten = ObjectMeta {
            annotations: Some(map(&[
                ("mine", "1"),
                ("transparency.tenancy.x-k8s.io/stale", "old"),
            ])),
            ..ObjectMeta::default()
        };
        let (labels, annotations) = up_update(&sup, &ten, &t).unwrap_or_default();
        assert!(labels.is_empty());
        assert_eq!(
            annotations,
            map(&[
                ("mine", "1"),
                ("transparency.tenancy.x-k8s.io/clusterIP", "10.0.0.1"),
                ("up.example.com/zone", "a"),
            ])
        );
        let synced = ObjectMeta {
            annotations: Some(annotations),
            ..ObjectMeta::default()
        };
        assert_eq!(up_update(&sup, &synced, &t), None);
    }

    #[test]
    fn ownership_needs_cluster_namespace_and_uid() {
        let t = tenant();
        let with = |pairs: &[(&str, &str)]| ObjectMeta {
            annotations: Some(map(pairs)),
            ..ObjectMeta::default()
        };
        let ours = with(&[
            (ANNOTATION_CLUSTER, "team-ba7816-vc1"),
            (ANNOTATION_NAMESPACE, "default"),
            (ANNOTATION_UID, "u1"),
        ]);
        assert_eq!(
            ownership(&ours, &t, "default"),
            Ownership::Ours {
                tenant_uid: "u1".into()
            }
        );
        assert_eq!(ownership(&ours, &t, "other"), Ownership::Foreign);
        let other = with(&[
            (ANNOTATION_CLUSTER, "x"),
            (ANNOTATION_NAMESPACE, "default"),
            (ANNOTATION_UID, "u1"),
        ]);
        assert_eq!(ownership(&other, &t, "default"), Ownership::Foreign);
        assert_eq!(
            ownership(&ObjectMeta::default(), &t, "default"),
            Ownership::Foreign
        );
    }
}
