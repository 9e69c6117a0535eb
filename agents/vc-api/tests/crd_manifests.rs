//! The checked-in CRD manifests in `deploy/crds/` are exactly what the Rust types generate.
//!
//! Regenerate with `UPDATE_CRDS=1 cargo test -p vc-api --test crd_manifests`.

use std::path::PathBuf;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

#[test]
fn checked_in_crds_match_the_types() {
    let manifests = vc_api::crd_manifests().unwrap_or_else(|e| panic!("serialize CRDs: {e}"));
    let dir = crd_dir();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        for (file, text) in &manifests {
            std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("write {file}: {e}"));
        }
    }
    for (file, expected) in &manifests {
        let path = dir.join(file);
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == *expected,
            "{} differs from what the types in agents/vc-api generate.\n\
             Regenerate with: UPDATE_CRDS=1 cargo test -p vc-api --test crd_manifests",
            path.display()
        );
    }
}

#[test]
fn crds_have_the_names_scopes_and_subresources_of_the_reference() {
    let crds = vc_api::crds();
    let (_, vc) = &crds[0];
    assert_eq!(vc.spec.group, "tenancy.x-k8s.io");
    assert_eq!(vc.spec.scope, "Namespaced");
    assert_eq!(vc.spec.names.kind, "VirtualCluster");
    assert_eq!(
        vc.spec.names.short_names.as_deref(),
        Some(&["vc".to_string()][..])
    );
    let version = &vc.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let schema = serde_json::to_value(&version.schema).unwrap_or_default();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["clusterVersionName"]));
    for field in [
        "clusterDomain",
        "pkiExpireDays",
        "serviceCidr",
        "transparentMetaPrefixes",
        "opaqueMetaPrefixes",
    ] {
        assert!(spec["properties"][field].is_object(), "spec.{field}");
    }
    let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
    let phases = &status["phase"]["enum"];
    for phase in ["Pending", "Provisioning", "Running", "Updating", "Error"] {
        assert!(
            phases
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p == phase)),
            "{phase} in {phases}"
        );
    }
    for field in [
        "reason",
        "message",
        "conditions",
        "clusterNamespace",
        "observedGeneration",
    ] {
        assert!(status[field].is_object(), "status.{field}");
    }

    let (_, cv) = &crds[1];
    assert_eq!(cv.spec.scope, "Cluster");
    assert_eq!(
        cv.spec.names.short_names.as_deref(),
        Some(&["cv".to_string()][..])
    );
    let schema = serde_json::to_value(&cv.spec.versions[0].schema).unwrap_or_default();
    let etcd = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["etcd"];
    assert_eq!(
        etcd["properties"]["statefulset"]["x-kubernetes-preserve-unknown-fields"],
        serde_json::json!(true)
    );
}
