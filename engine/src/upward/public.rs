//! Public objects: cluster-scoped super objects labelled `tenancy.x-k8s.io/super.public=true` (StorageClass,
//! PriorityClass, IngressClass, CustomResourceDefinition) are offered to every tenant. The tenant copy keeps
//! the object's payload (every top-level field but `metadata` and `status`), its labels and annotations, and is
//! marked with the super object's uid (`tenancy.x-k8s.io/super.uid`): only marked tenant objects are ever
//! updated or deleted, so a tenant's own StorageClass of the same name is left alone.
//!
//! Objects are handled as JSON, the same way for every kind (the status of a CRD is the tenant API server's).

use serde_json::{Map, Value};

use super::ANNOTATION_SUPER_UID;
use crate::naming::LABEL_SUPER_PUBLIC;

/// Metadata fields carried to the tenant copy.
const KEPT_METADATA: &[&str] = &["name", "labels", "annotations"];

/// True when a super object is offered to tenants (`tenancy.x-k8s.io/super.public=true`).
#[must_use]
pub fn is_public(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_SUPER_PUBLIC))
        .and_then(Value::as_str)
        == Some("true")
}

/// True when a tenant object is a copy the syncer made (it carries the super uid mark).
#[must_use]
pub fn is_ours(tenant_obj: &Value) -> bool {
    tenant_obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_SUPER_UID))
        .and_then(Value::as_str)
        .is_some()
}

/// The tenant copy of a public super object.
#[must_use]
pub fn tenant_copy(super_obj: &Value) -> Value {
    let mut out = Map::new();
    if let Some(obj) = super_obj.as_object() {
        for (k, v) in obj {
            if k != "metadata" && k != "status" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut meta = Map::new();
    if let Some(m) = super_obj.get("metadata").and_then(Value::as_object) {
        for field in KEPT_METADATA {
            if let Some(v) = m.get(*field) {
                meta.insert((*field).to_owned(), v.clone());
            }
        }
    }
    let uid = super_obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(ANNOTATION_SUPER_UID.to_owned(), Value::String(uid));
    }
    out.insert("metadata".into(), Value::Object(meta));
    Value::Object(out)
}

/// The payload compared between copies: top-level fields but metadata and status, plus labels and
/// annotations.
fn payload(obj: &Value) -> (Map<String, Value>, Value, Value) {
    let mut body = Map::new();
    if let Some(o) = obj.as_object() {
        for (k, v) in o {
            if k != "metadata" && k != "status" {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    let empty = || Value::Object(Map::new());
    let labels = obj
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(empty);
    let annotations = obj
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or_else(empty);
    (body, labels, annotations)
}

/// The update that brings an existing tenant copy in line with `desired` (from [`tenant_copy`]), keeping the
/// tenant's metadata (resourceVersion, uid) and status, or `None` when it already matches.
#[must_use]
pub fn update(existing: &Value, desired: &Value) -> Option<Value> {
    if payload(existing) == payload(desired) {
        return None;
    }
    let mut out = desired.clone();
    let mut meta = existing
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(m) = meta.as_object_mut() {
        for field in ["labels", "annotations"] {
            match desired.pointer(&format!("/metadata/{field}")) {
                Some(v) => {
                    m.insert(field.to_owned(), v.clone());
                }
                None => {
                    m.remove(field);
                }
            }
        }
    }
    if let Some(o) = out.as_object_mut() {
        o.insert("metadata".into(), meta);
        if let Some(status) = existing.get("status") {
            o.insert("status".into(), status.clone());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage_class(public: bool) -> Value {
        json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "fast", "uid": "sc-uid", "resourceVersion": "12", "creationTimestamp": "2024-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}],
                "labels": {LABEL_SUPER_PUBLIC: if public { "true" } else { "false" }},
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "ebs.csi.aws.com",
            "parameters": {"type": "gp3"},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"
        })
    }

    #[test]
    fn only_labelled_objects_are_public() {
        assert!(is_public(&storage_class(true)));
        assert!(!is_public(&storage_class(false)));
        assert!(!is_public(&json!({"metadata": {"name": "x"}})));
    }

    #[test]
    fn the_copy_keeps_the_payload_and_is_marked() {
        let copy = tenant_copy(&storage_class(true));
        assert_eq!(copy["provisioner"], "ebs.csi.aws.com");
        assert_eq!(copy["parameters"]["type"], "gp3");
        assert_eq!(copy["volumeBindingMode"], "WaitForFirstConsumer");
        assert_eq!(copy["kind"], "StorageClass");
        assert_eq!(copy["metadata"]["name"], "fast");
        assert_eq!(copy["metadata"]["labels"][LABEL_SUPER_PUBLIC], "true");
        assert_eq!(
            copy["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
        assert_eq!(
            copy["metadata"]["annotations"][ANNOTATION_SUPER_UID],
            "sc-uid"
        );
        for gone in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            assert!(copy["metadata"].get(gone).is_none(), "{gone}");
        }
        assert!(is_ours(&copy));
        assert!(!is_ours(&storage_class(true)));
    }

    #[test]
    fn crd_status_is_the_tenants() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com", "uid": "u", "labels": {LABEL_SUPER_PUBLIC: "true"}},
            "spec": {"group": "example.com", "scope": "Namespaced"},
            "status": {"acceptedNames": {"kind": "Widget"}}});
        let copy = tenant_copy(&crd);
        assert!(copy.get("status").is_none());
        let mut existing = copy.clone();
        existing["metadata"]["resourceVersion"] = json!("4");
        existing["status"] = json!({"acceptedNames": {"kind": "Widget", "plural": "widgets"}});
        assert!(
            update(&existing, &copy).is_none(),
            "status differences are not ours"
        );
        let mut changed = crd.clone();
        changed["spec"]["scope"] = json!("Cluster");
        let upd =
            update(&existing, &tenant_copy(&changed)).unwrap_or_else(|| panic!("spec changed"));
        assert_eq!(upd["spec"]["scope"], "Cluster");
        assert_eq!(upd["metadata"]["resourceVersion"], "4");
        assert_eq!(upd["status"]["acceptedNames"]["plural"], "widgets");
    }

    #[test]
    fn label_and_annotation_changes_update_the_copy() {
        let desired = tenant_copy(&storage_class(true));
        let mut existing = desired.clone();
        existing["metadata"]["uid"] = json!("tenant-uid");
        assert!(update(&existing, &desired).is_none());
        let mut sup = storage_class(true);
        sup["metadata"]["annotations"] = json!({});
        let upd =
            update(&existing, &tenant_copy(&sup)).unwrap_or_else(|| panic!("annotations changed"));
        assert_eq!(upd["metadata"]["uid"], "tenant-uid");
        assert!(
            upd["metadata"]["annotations"]
                .get("storageclass.kubernetes.io/is-default-class")
                .is_none()
        );
        assert_eq!(
            upd["metadata"]["annotations"][ANNOTATION_SUPER_UID],
            "sc-uid"
        );
    }
}
