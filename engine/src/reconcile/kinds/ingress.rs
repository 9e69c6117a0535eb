//! Ingress (networking.k8s.io/v1, opt-in), both directions: the spec is copied as it is (backends name
//! services of the same namespace, which are copied too; `ingressClassName` names a class of the super
//! cluster), and `status.loadBalancer` flows back up.

use k8s_openapi::api::networking::v1::{Ingress, IngressStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;

/// Ingresses, both directions.
pub(crate) struct IngressKind;

impl DownKind for IngressKind {
    type Object = Ingress;
    const KIND: &'static str = "Ingress";
    const DEFAULT_ENABLED: bool = false;

    fn translate(t: &Ingress, meta: ObjectMeta, _: &TenantInfo) -> Result<Ingress, String> {
        Ok(Ingress {
            metadata: meta,
            spec: t.spec.clone(),
            status: None,
        })
    }

    fn update_body(desired: &Ingress, actual: &Ingress) -> Option<Ingress> {
        (desired.spec != actual.spec).then(|| Ingress {
            spec: desired.spec.clone(),
            ..actual.clone()
        })
    }

    fn up_status(s: &Ingress, t: &Ingress) -> Option<Ingress> {
        let want = s.status.as_ref().and_then(|st| st.load_balancer.clone());
        let have = t.status.as_ref().and_then(|st| st.load_balancer.clone());
        if want.clone().unwrap_or_default() == have.unwrap_or_default() {
            return None;
        }
        let mut status: IngressStatus = t.status.clone().unwrap_or_default();
        status.load_balancer = want;
        Some(Ingress {
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

    #[test]
    fn spec_down_status_up() {
        let t: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "web", "uid": "t-uid", "resourceVersion": "2"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut s = created::<IngressKind>(&t, "web");
        assert_eq!(s.spec, t.spec);
        assert_eq!(run::<IngressKind>(Some(&t), Some(&s), "web"), vec![]);
        s.status = Some(
            serde_json::from_value(
                json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let actions = run::<IngressKind>(Some(&t), Some(&s), "web");
        assert!(
            matches!(actions.as_slice(), [ObjectAction::UpdateTenantStatus(u)] if u.status == s.status),
            "{actions:?}"
        );
    }
}
