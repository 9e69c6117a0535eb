//! PersistentVolumeClaim, both directions.
//!
//! Down: the spec is copied with `volumeName` cleared, so the super cluster binds the claim to one of its
//! own volumes; afterwards the super claim's binding (`volumeName`, a defaulted `storageClassName`) is kept
//! and only a storage request change (expansion) flows down — the rest of a claim's spec is immutable.
//!
//! Up: `status.phase`, `status.capacity` and `status.accessModes` of the super claim are copied into the
//! tenant claim's status.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;

/// PersistentVolumeClaims, both directions.
pub(crate) struct PvcKind;

impl DownKind for PvcKind {
    type Object = PersistentVolumeClaim;
    const KIND: &'static str = "PersistentVolumeClaim";

    fn translate(
        t: &PersistentVolumeClaim,
        meta: ObjectMeta,
        _: &TenantInfo,
    ) -> Result<PersistentVolumeClaim, String> {
        let mut spec = t.spec.clone().ok_or("the claim has no spec")?;
        spec.volume_name = None;
        Ok(PersistentVolumeClaim {
            metadata: meta,
            spec: Some(spec),
            status: None,
        })
    }

    fn update_body(
        desired: &PersistentVolumeClaim,
        actual: &PersistentVolumeClaim,
    ) -> Option<PersistentVolumeClaim> {
        let want = desired
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.clone());
        let have = actual
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.clone());
        if want.clone().unwrap_or_default() == have.unwrap_or_default() {
            return None;
        }
        let mut out = actual.clone();
        out.spec
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default)
            .requests = want;
        Some(out)
    }

    fn up_status(
        s: &PersistentVolumeClaim,
        t: &PersistentVolumeClaim,
    ) -> Option<PersistentVolumeClaim> {
        let sup = s.status.clone().unwrap_or_default();
        let mut status: PersistentVolumeClaimStatus = t.status.clone().unwrap_or_default();
        let before = status.clone();
        status.phase = sup.phase;
        status.capacity = sup.capacity;
        status.access_modes = sup.access_modes;
        (status != before).then(|| PersistentVolumeClaim {
            status: Some(status),
            ..t.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::kinds::test_support::{created, run};
    use crate::reconcile::object::ObjectAction;
    use serde_json::json;

    fn claim(volume: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "web", "uid": "t-uid", "resourceVersion": "4"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                "resources": {"requests": {"storage": "1Gi"}}, "volumeName": volume}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn volume_name_is_cleared_and_the_super_binding_kept() {
        let t = claim(Some("tenant-pv"));
        let s = created::<PvcKind>(&t, "data");
        let spec = s.spec.clone().unwrap_or_default();
        assert_eq!(spec.volume_name, None);
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        let mut bound = s.clone();
        if let Some(spec) = bound.spec.as_mut() {
            spec.volume_name = Some("pvc-1234".into());
        }
        assert_eq!(run::<PvcKind>(Some(&t), Some(&bound), "data"), vec![]);
        // Expansion flows down, keeping the super binding.
        let mut bigger = t.clone();
        if let Some(r) = bigger.spec.as_mut().and_then(|s| s.resources.as_mut()) {
            r.requests = Some(
                [(
                    "storage".to_owned(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
                )]
                .into(),
            );
        }
        let actions = run::<PvcKind>(Some(&bigger), Some(&bound), "data");
        let [ObjectAction::UpdateSuper(u)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let spec = u.spec.clone().unwrap_or_default();
        assert_eq!(spec.volume_name.as_deref(), Some("pvc-1234"));
        assert_eq!(
            spec.resources.and_then(|r| r.requests),
            bigger
                .spec
                .and_then(|s| s.resources)
                .and_then(|r| r.requests)
        );
    }

    #[test]
    fn phase_capacity_and_access_modes_flow_up() {
        let t = claim(None);
        let mut s = created::<PvcKind>(&t, "data");
        s.status = Some(
            serde_json::from_value(json!({"phase": "Bound", "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"]}))
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let actions = run::<PvcKind>(Some(&t), Some(&s), "data");
        let [ObjectAction::UpdateTenantStatus(u)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let status = u.status.clone().unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some("Bound"));
        assert_eq!(
            status.capacity,
            s.status.clone().unwrap_or_default().capacity
        );
        let mut synced = t.clone();
        synced.status = Some(status);
        assert_eq!(run::<PvcKind>(Some(&synced), Some(&s), "data"), vec![]);
    }
}
