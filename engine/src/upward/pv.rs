//! PersistentVolumes, copied up: a super PV bound to a claim in one of a tenant's super namespaces appears in
//! the tenant with the same name, its `claimRef` translated back to the tenant claim (namespace and uid), and
//! is removed from the tenant when it is unbound or deleted. The copy is marked with the super PV's uid and its
//! reclaim policy is `Retain`: the volume belongs to the super cluster, so the tenant's controllers must never
//! try to recycle or delete it.

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ANNOTATION_SUPER_UID;

/// The claim a super PV is bound to: (namespace, name), when it has a claimRef.
#[must_use]
pub fn claim(pv: &PersistentVolume) -> Option<(&str, &str)> {
    let claim = pv.spec.as_ref()?.claim_ref.as_ref()?;
    let ns = claim.namespace.as_deref()?;
    let name = claim.name.as_deref()?;
    (!ns.is_empty() && !name.is_empty()).then_some((ns, name))
}

/// The tenant copy of `super_pv`, bound to tenant claim `tenant_ns`/(same name) with uid `claim_uid`.
#[must_use]
pub fn tenant_pv(
    super_pv: &PersistentVolume,
    tenant_ns: &str,
    claim_uid: &str,
) -> PersistentVolume {
    let mut spec = super_pv.spec.clone().unwrap_or_default();
    if let Some(cr) = spec.claim_ref.as_ref() {
        spec.claim_ref = Some(ObjectReference {
            api_version: cr.api_version.clone(),
            kind: cr.kind.clone(),
            name: cr.name.clone(),
            namespace: Some(tenant_ns.to_owned()),
            uid: Some(claim_uid.to_owned()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        });
    }
    spec.persistent_volume_reclaim_policy = Some("Retain".into());
    let mut annotations = super_pv.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        ANNOTATION_SUPER_UID.to_owned(),
        super_pv.metadata.uid.clone().unwrap_or_default(),
    );
    PersistentVolume {
        metadata: ObjectMeta {
            name: super_pv.metadata.name.clone(),
            labels: super_pv.metadata.labels.clone(),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: super_pv.status.clone(),
    }
}

/// True when a tenant PV is a copy the syncer made.
#[must_use]
pub fn is_ours(tenant_pv: &PersistentVolume) -> bool {
    tenant_pv
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_SUPER_UID))
}

/// What an existing tenant copy needs: a main update (spec, labels, annotations) and/or a status update.
#[must_use]
pub fn changes(
    existing: &PersistentVolume,
    desired: &PersistentVolume,
) -> (Option<PersistentVolume>, Option<PersistentVolumeStatus>) {
    let object = (existing.spec != desired.spec
        || existing.metadata.labels != desired.metadata.labels
        || existing.metadata.annotations != desired.metadata.annotations)
        .then(|| {
            let mut pv = existing.clone();
            pv.metadata.labels = desired.metadata.labels.clone();
            pv.metadata.annotations = desired.metadata.annotations.clone();
            pv.spec = desired.spec.clone();
            pv
        });
    let phase = |pv: &PersistentVolume| pv.status.as_ref().and_then(|s| s.phase.clone());
    let status = (phase(existing) != phase(desired)).then(|| {
        let mut s = existing.status.clone().unwrap_or_default();
        s.phase = phase(desired);
        s
    });
    (object, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn super_pv(phase: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pvc-123", "uid": "pv-uid", "resourceVersion": "3",
                         "annotations": {"pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com"}},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "fast",
                     "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"},
                     "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "k1-team",
                                  "name": "data", "uid": "super-claim-uid", "resourceVersion": "2"}},
            "status": {"phase": phase}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_copy_is_bound_to_the_tenant_claim_and_retained() {
        let pv = super_pv("Bound");
        assert_eq!(claim(&pv), Some(("k1-team", "data")));
        let copy = tenant_pv(&pv, "team", "tenant-claim-uid");
        let v = serde_json::to_value(&copy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["metadata"]["name"], "pvc-123");
        assert!(v["metadata"].get("uid").is_none());
        assert_eq!(v["metadata"]["annotations"][ANNOTATION_SUPER_UID], "pv-uid");
        assert_eq!(
            v["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
            "ebs.csi.aws.com"
        );
        assert_eq!(
            v["spec"]["claimRef"],
            json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "team",
                   "name": "data", "uid": "tenant-claim-uid"})
        );
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(v["spec"]["csi"]["volumeHandle"], "vol-1");
        assert_eq!(v["status"]["phase"], "Bound");
        assert!(is_ours(&copy));
    }

    #[test]
    fn unbound_pvs_have_no_claim_and_changes_are_detected() {
        let mut pv = super_pv("Available");
        if let Some(s) = pv.spec.as_mut() {
            s.claim_ref = None;
        }
        assert_eq!(claim(&pv), None);

        let desired = tenant_pv(&super_pv("Bound"), "team", "c");
        let mut existing = desired.clone();
        existing.metadata.resource_version = Some("9".into());
        assert_eq!(changes(&existing, &desired), (None, None));
        let released = tenant_pv(&super_pv("Released"), "team", "c");
        let (obj, status) = changes(&existing, &released);
        assert!(obj.is_none());
        assert_eq!(status.and_then(|s| s.phase).as_deref(), Some("Released"));
        let mut bigger = super_pv("Bound");
        if let Some(s) = bigger.spec.as_mut() {
            s.capacity = Some(
                [(
                    "storage".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("20Gi".into()),
                )]
                .into_iter()
                .collect(),
            );
        }
        let (obj, _) = changes(&existing, &tenant_pv(&bigger, "team", "c"));
        let obj = obj.unwrap_or_else(|| panic!("capacity changed"));
        assert_eq!(obj.metadata.resource_version.as_deref(), Some("9"));
    }
}
