//! PodDisruptionBudget (policy/v1, opt-in), down: the spec is copied as it is — its pod selector matches the
//! super pods, which carry the tenant pods' labels, in the same super namespace.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;

/// PodDisruptionBudgets, down.
pub(crate) struct PdbKind;

impl DownKind for PdbKind {
    type Object = PodDisruptionBudget;
    const KIND: &'static str = "PodDisruptionBudget";
    const DEFAULT_ENABLED: bool = false;

    fn translate(
        t: &PodDisruptionBudget,
        meta: ObjectMeta,
        _: &TenantInfo,
    ) -> Result<PodDisruptionBudget, String> {
        Ok(PodDisruptionBudget {
            metadata: meta,
            spec: t.spec.clone(),
            status: None,
        })
    }

    fn update_body(
        desired: &PodDisruptionBudget,
        actual: &PodDisruptionBudget,
    ) -> Option<PodDisruptionBudget> {
        (desired.spec != actual.spec).then(|| PodDisruptionBudget {
            spec: desired.spec.clone(),
            ..actual.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::kinds::test_support::{created, run};
    use crate::reconcile::object::ObjectAction;
    use serde_json::json;

    #[test]
    fn spec_copied_and_changes_flow_down() {
        let t: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "web", "uid": "t-uid"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = created::<PdbKind>(&t, "web");
        assert_eq!(s.spec, t.spec);
        let mut t2 = t.clone();
        if let Some(spec) = t2.spec.as_mut() {
            spec.min_available =
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1));
        }
        let actions = run::<PdbKind>(Some(&t2), Some(&s), "web");
        assert!(
            matches!(actions.as_slice(), [ObjectAction::UpdateSuper(u)] if u.spec == t2.spec),
            "{actions:?}"
        );
    }
}
