//! Super-cluster naming rules, shared by every stage that maps tenant objects to super objects and back.
//!
//! The rules are those of the original VirtualCluster, kept bit-for-bit so that super clusters and agents
//! (vn-agent, kubectl-vc) that already rely on them keep working:
//!
//! * **Cluster key** of a VirtualCluster: `status.clusterNamespace` if set, else
//!   `<vc.namespace>-<first 6 hex of sha256(vc.uid)>-<vc.name>` ([`cluster_key`], [`cluster_key_with_status`]).
//! * **Super namespace** of a tenant namespace: `<clusterKey>-<tenantNamespace>`; when that is longer than
//!   63 characters (the DNS-1123 label limit), its first 57 characters, `-`, and the first 5 hex of sha256 of the
//!   full string ([`super_namespace`]). Object names inside a namespace are kept.
//! * Every super copy carries `tenancy.x-k8s.io/*` annotations naming the tenant object it stands for;
//!   [`tenant_identity`] reads them back (what a super-cluster watch uses to route an event to its tenant).
//!
//! Uniqueness rests on the hashes: the uid hash in the cluster key separates VCs such as `tenant-a/vc1` and
//! `tenant/a-vc1`, and the suffix hash separates long names that share their first 57 characters. Two different
//! (VC, namespace) pairs can only meet on the same super namespace through a 24-bit (cluster key) or 20-bit
//! (truncation) sha256 prefix collision.
//!
//! ```
//! use tenancy_naming::{cluster_key, super_namespace};
//! let key = cluster_key("tenant-a", "vc1", "3f0f1c6e-0000-4000-8000-000000000001");
//! assert!(key.starts_with("tenant-a-") && key.ends_with("-vc1"));
//! assert!(super_namespace(&key, "default").len() <= 63);
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

/// Annotation on a super object: cluster key of the tenant it belongs to.
pub const ANNOTATION_CLUSTER: &str = "tenancy.x-k8s.io/cluster";
/// Annotation on a super object: uid of the tenant object it stands for (checked before every update/delete).
pub const ANNOTATION_UID: &str = "tenancy.x-k8s.io/uid";
/// Annotation on a super object: the tenant namespace (for a super Namespace, the tenant namespace's name).
pub const ANNOTATION_NAMESPACE: &str = "tenancy.x-k8s.io/namespace";
/// Annotation and label on a super object: name of the VirtualCluster.
pub const ANNOTATION_VC_NAME: &str = "tenancy.x-k8s.io/vcname";
/// Annotation and label on a super object: namespace of the VirtualCluster.
pub const ANNOTATION_VC_NAMESPACE: &str = "tenancy.x-k8s.io/vcnamespace";
/// Annotation on a super object: JSON of the tenant object's owner references.
pub const ANNOTATION_OWNER_REFERENCES: &str = "tenancy.x-k8s.io/ownerReferences";
/// Annotation naming the tenant object when its super copy has another name (e.g. the tenant's
/// `kube-root-ca.crt` ConfigMap); absent when the names are equal.
pub const ANNOTATION_NAME: &str = "tenancy.x-k8s.io/name";
/// Label on a super object: `true` when the syncer controls it.
pub const LABEL_CONTROLLED: &str = "tenancy.x-k8s.io/controlled";
/// Label on a super object offered to all tenants.
pub const LABEL_SUPER_PUBLIC: &str = "tenancy.x-k8s.io/super.public";

/// Reserved prefix of the syncer's own marks (`tenancy.x-k8s.io` and its sub-domains).
pub const RESERVED_PREFIX: &str = "tenancy.x-k8s.io";
/// Prefix of keys copied from a super object up to its tenant object.
pub const TRANSPARENT_PREFIX: &str = "transparency.tenancy.x-k8s.io/";

/// Longest DNS-1123 label (namespace names are labels).
pub const MAX_LABEL_LEN: usize = 63;
/// Characters of the full name kept before the hash suffix when a super namespace is too long.
const TRUNCATED_PREFIX_LEN: usize = 57;
/// Hex characters of sha256(vc.uid) in a cluster key.
const CLUSTER_KEY_HASH_LEN: usize = 6;
/// Hex characters of sha256(full name) appended to a truncated super namespace.
const NAMESPACE_HASH_LEN: usize = 5;

/// Cluster key of a VirtualCluster without `status.clusterNamespace`:
/// `<vc_namespace>-<first 6 hex of sha256(vc_uid)>-<vc_name>`.
#[must_use]
pub fn cluster_key(vc_namespace: &str, vc_name: &str, vc_uid: &str) -> String {
    let hash = sha256_hex_prefix(vc_uid, CLUSTER_KEY_HASH_LEN);
    format!("{vc_namespace}-{hash}-{vc_name}")
}

/// Cluster key of a VirtualCluster: `status.clusterNamespace` when set and non-empty, else [`cluster_key`].
#[must_use]
pub fn cluster_key_with_status(
    vc_namespace: &str,
    vc_name: &str,
    vc_uid: &str,
    status_cluster_namespace: Option<&str>,
) -> String {
    match status_cluster_namespace {
        Some(ns) if !ns.is_empty() => ns.to_owned(),
        _ => cluster_key(vc_namespace, vc_name, vc_uid),
    }
}

/// Super-cluster namespace of `tenant_namespace` in the tenant `cluster_key`: `<clusterKey>-<tenantNamespace>`,
/// or, when longer than 63 characters, its first 57 characters + `-` + the first 5 hex of sha256 of the full
/// string. Never panics, whatever the input (truncation counts characters, not bytes).
#[must_use]
pub fn super_namespace(cluster_key: &str, tenant_namespace: &str) -> String {
    let full = format!("{cluster_key}-{tenant_namespace}");
    if full.chars().count() <= MAX_LABEL_LEN {
        return full;
    }
    let hash = sha256_hex_prefix(&full, NAMESPACE_HASH_LEN);
    let mut out: String = full.chars().take(TRUNCATED_PREFIX_LEN).collect();
    out.push('-');
    out.push_str(&hash);
    out
}

/// The tenant object a super object stands for, read from its `tenancy.x-k8s.io/*` annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantIdentity {
    /// Cluster key of the tenant.
    pub cluster_key: String,
    /// Tenant namespace. For a super Namespace, the tenant namespace it stands for.
    pub namespace: String,
    /// Tenant object name. Same as the super object's name for namespaced objects; for a super Namespace,
    /// the tenant namespace's name (equal to [`TenantIdentity::namespace`]).
    pub name: String,
    /// Tenant object uid.
    pub uid: String,
}

/// Reads the tenant identity of a super object from its metadata (the tenant name is the super name unless
/// [`ANNOTATION_NAME`] says otherwise). `None` when the object carries no (or
/// incomplete) syncer marks, i.e. it was not created by the syncer for a tenant.
///
/// A super object with a namespace stands for the tenant object of the same name in the tenant namespace named
/// by `tenancy.x-k8s.io/namespace`; a super object without one (a super Namespace) stands for that tenant
/// namespace itself.
#[must_use]
pub fn tenant_identity(meta: &ObjectMeta) -> Option<TenantIdentity> {
    let annotations = meta.annotations.as_ref()?;
    let non_empty = |key: &str| annotations.get(key).filter(|v| !v.is_empty()).cloned();
    let cluster_key = non_empty(ANNOTATION_CLUSTER)?;
    let namespace = non_empty(ANNOTATION_NAMESPACE)?;
    let uid = non_empty(ANNOTATION_UID)?;
    let name = match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => non_empty(ANNOTATION_NAME)
            .or_else(|| meta.name.clone())
            .filter(|n| !n.is_empty())?,
        _ => namespace.clone(),
    };
    Some(TenantIdentity {
        cluster_key,
        namespace,
        name,
        uid,
    })
}

/// [`tenant_identity`] for an object held as JSON (as in a syncer log record). `None` when the object
/// has no parseable `metadata` or no syncer marks.
#[must_use]
pub fn tenant_identity_from_json(object: &serde_json::Value) -> Option<TenantIdentity> {
    let meta = object.get("metadata")?;
    let meta: ObjectMeta = serde_json::from_value(meta.clone()).ok()?;
    tenant_identity(&meta)
}

/// True when `s` is a DNS-1123 label: 1 to 63 characters of `[a-z0-9-]`, starting and ending alphanumeric.
#[must_use]
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
}

/// First `len` hex characters of sha256(`input`).
fn sha256_hex_prefix(input: &str, len: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(len);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    // Golden values computed outside the code with `printf '%s' <input> | sha256sum`.
    // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    #[test]
    fn cluster_key_golden() {
        assert_eq!(cluster_key("tenant-a", "vc1", "abc"), "tenant-a-ba7816-vc1");
    }

    #[test]
    fn realistic_golden_values() {
        // printf '%s' 3f0f1c6e-8a1b-4c2d-9e3f-0a1b2c3d4e5f | sha256sum = 639e2adb...
        let key = cluster_key(
            "team",
            "production-cluster",
            "3f0f1c6e-8a1b-4c2d-9e3f-0a1b2c3d4e5f",
        );
        assert_eq!(key, "team-639e2a-production-cluster");
        assert_eq!(
            super_namespace(&key, "default"),
            "team-639e2a-production-cluster-default"
        );
        // 65 characters in full; printf '%s' <full> | sha256sum = b0688...
        assert_eq!(
            super_namespace(&key, "monitoring-and-observability-stack"),
            "team-639e2a-production-cluster-monitoring-and-observabili-b0688"
        );
    }

    #[test]
    fn cluster_key_prefers_status_cluster_namespace() {
        assert_eq!(
            cluster_key_with_status("t", "vc", "abc", Some("custom-root")),
            "custom-root"
        );
        assert_eq!(
            cluster_key_with_status("t", "vc", "abc", Some("")),
            "t-ba7816-vc"
        );
        assert_eq!(
            cluster_key_with_status("t", "vc", "abc", None),
            "t-ba7816-vc"
        );
    }

    #[test]
    fn short_super_namespace_is_plain_concatenation() {
        assert_eq!(
            super_namespace("tenant-a-ba7816-vc1", "default"),
            "tenant-a-ba7816-vc1-default"
        );
        // Exactly 63 characters: not hashed.
        let key = "k".repeat(31);
        let ns = "n".repeat(31);
        let out = super_namespace(&key, &ns);
        assert_eq!(out.len(), 63);
        assert_eq!(out, format!("{key}-{ns}"));
    }

    #[test]
    fn long_super_namespace_golden() {
        // full = "a"*32 + "-" + "b"*31 (64 characters);
        // printf '%s' "$full" | sha256sum = b57474aecb7d0d21...
        let out = super_namespace(&"a".repeat(32), &"b".repeat(31));
        let expected = format!("{}-{}-b5747", "a".repeat(32), "b".repeat(24));
        assert_eq!(out, expected);
        assert_eq!(out.len(), 63);
    }

    #[test]
    fn tenant_a_vc1_and_tenant_a_dash_vc1_differ() {
        let a = cluster_key("tenant-a", "vc1", "uid-1");
        let b = cluster_key("tenant", "a-vc1", "uid-2");
        assert_ne!(a, b);
        assert_ne!(
            super_namespace(&a, "default"),
            super_namespace(&b, "default")
        );
    }

    #[test]
    fn non_ascii_input_does_not_panic() {
        let key = "ä".repeat(70);
        let out = super_namespace(&key, "é");
        assert_eq!(out.chars().count(), 63);
    }

    fn meta(namespace: Option<&str>, name: &str, annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            namespace: namespace.map(str::to_owned),
            name: Some(name.to_owned()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn tenant_identity_of_super_pod_and_namespace() {
        let marks = [
            (ANNOTATION_CLUSTER, "t-ba7816-vc"),
            (ANNOTATION_NAMESPACE, "web"),
            (ANNOTATION_UID, "u-1"),
        ];
        let pod = meta(Some("t-ba7816-vc-web"), "nginx", &marks);
        assert_eq!(
            tenant_identity(&pod),
            Some(TenantIdentity {
                cluster_key: "t-ba7816-vc".into(),
                namespace: "web".into(),
                name: "nginx".into(),
                uid: "u-1".into(),
            })
        );
        let ns = meta(None, "t-ba7816-vc-web", &marks);
        let id = tenant_identity(&ns).map(|id| (id.namespace, id.name));
        assert_eq!(id, Some(("web".into(), "web".into())));
    }

    #[test]
    fn tenant_identity_requires_all_marks() {
        let pod = meta(
            Some("x"),
            "p",
            &[(ANNOTATION_CLUSTER, "k"), (ANNOTATION_NAMESPACE, "web")],
        );
        assert_eq!(tenant_identity(&pod), None);
        let pod = meta(
            Some("x"),
            "p",
            &[
                (ANNOTATION_CLUSTER, ""),
                (ANNOTATION_NAMESPACE, "web"),
                (ANNOTATION_UID, "u"),
            ],
        );
        assert_eq!(tenant_identity(&pod), None);
        assert_eq!(tenant_identity(&ObjectMeta::default()), None);
    }

    #[test]
    fn tenant_identity_from_json_reads_metadata() {
        let obj = serde_json::json!({
            "metadata": {"name": "p", "namespace": "sn", "annotations": {
                ANNOTATION_CLUSTER: "k", ANNOTATION_NAMESPACE: "web", ANNOTATION_UID: "u"}}
        });
        assert_eq!(
            tenant_identity_from_json(&obj).map(|id| id.name),
            Some("p".to_owned())
        );
        assert_eq!(tenant_identity_from_json(&serde_json::json!([1, 2])), None);
    }

    fn label() -> impl Strategy<Value = String> {
        // DNS-1123 labels of 1..=63 characters, hyphens inside.
        "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn super_namespace_is_a_valid_label(
            vc_ns in label(), vc_name in label(), uid in "[a-f0-9-]{1,36}", ns in label()
        ) {
            let key = cluster_key(&vc_ns, &vc_name, &uid);
            let out = super_namespace(&key, &ns);
            prop_assert!(out.len() <= MAX_LABEL_LEN);
            prop_assert!(is_dns1123_label(&out), "{out}");
        }

        #[test]
        fn super_namespace_is_stable_and_follows_the_rule(key in label(), ns in label()) {
            let full = format!("{key}-{ns}");
            let out = super_namespace(&key, &ns);
            prop_assert_eq!(&out, &super_namespace(&key, &ns));
            if full.len() <= 63 {
                prop_assert_eq!(out, full);
            } else {
                prop_assert_eq!(&out[..57], &full[..57]);
                prop_assert_eq!(&out[57..58], "-");
                prop_assert_eq!(&out[58..], &sha256_hex_prefix(&full, 5));
            }
        }

        #[test]
        fn distinct_vcs_never_share_a_super_namespace(
            ns_a in label(), name_a in label(), ns_b in label(), name_b in label(),
            tns_a in label(), tns_b in label(), split in 1usize..8,
        ) {
            // Two different VCs (different uids), plus a pair whose namespace/name split the same text
            // differently (`tenant-a/vc1` vs `tenant/a-vc1`).
            let key_a = cluster_key(&ns_a, &name_a, "uid-a");
            let key_b = cluster_key(&ns_b, &name_b, "uid-b");
            prop_assert_ne!(super_namespace(&key_a, &tns_a), super_namespace(&key_b, &tns_b));

            let joined = format!("{ns_a}-{name_a}");
            let cut = split.min(joined.len() - 1);
            let (left, right) = joined.split_at(cut);
            let (left, right) = (left.trim_end_matches('-'), right.trim_start_matches('-'));
            if !left.is_empty() && !right.is_empty() && (left, right) != (ns_a.as_str(), name_a.as_str()) {
                let key_c = cluster_key(left, right, "uid-c");
                prop_assert_ne!(super_namespace(&key_a, &tns_a), super_namespace(&key_c, &tns_a));
            }
        }

        #[test]
        fn distinct_namespaces_of_one_vc_never_collide(key in label(), a in label(), b in label()) {
            prop_assume!(a != b);
            prop_assert_ne!(super_namespace(&key, &a), super_namespace(&key, &b));
        }
    }
}
