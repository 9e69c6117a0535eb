//! Endpoints, down — only those of services *without* a selector (e.g. the tenant's `default/kubernetes`,
//! or a service pointing at addresses outside the cluster). Endpoints of a service with a selector belong
//! to the super cluster's endpoints controller, which computes them from the super pods; they are neither
//! copied nor touched. A tenant Endpoints whose service is not in the view (yet, or at all) is copied.

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;
use crate::log::{LogError, View};
use crate::record::WorkKey;

/// Endpoints of selector-less services, down.
pub(crate) struct EndpointsKind;

/// Whether the service (as JSON from the view) has a non-empty selector.
fn has_selector(service: &serde_json::Value) -> bool {
    serde_json::from_value::<Service>(service.clone())
        .ok()
        .and_then(|s| s.spec)
        .and_then(|s| s.selector)
        .is_some_and(|sel| !sel.is_empty())
}

impl DownKind for EndpointsKind {
    type Object = Endpoints;
    const KIND: &'static str = "Endpoints";

    fn synced(view: &View, _: &TenantInfo, key: &WorkKey) -> Result<bool, LogError> {
        let service = view.get(&key.cluster, "Service", &key.namespace, &key.name)?;
        Ok(!service.is_some_and(|s| has_selector(&s.object)))
    }

    fn translate(t: &Endpoints, meta: ObjectMeta, _: &TenantInfo) -> Result<Endpoints, String> {
        Ok(Endpoints {
            metadata: meta,
            subsets: t.subsets.clone(),
        })
    }

    fn update_body(desired: &Endpoints, actual: &Endpoints) -> Option<Endpoints> {
        (desired.subsets.clone().unwrap_or_default() != actual.subsets.clone().unwrap_or_default())
            .then(|| Endpoints {
                subsets: desired.subsets.clone(),
                ..actual.clone()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::kinds::test_support::{key, tenant};
    use serde_json::json;

    #[test]
    fn only_endpoints_of_services_without_a_selector_are_synced() {
        let (_dir, view) = crate::reconcile::kinds::test_view();
        let t = tenant();
        let k = key("db");
        assert!(
            EndpointsKind::synced(&view, &t, &k).unwrap_or(false),
            "no service: synced"
        );
        let put = |spec: serde_json::Value, rv: &str| {
            let svc = json!({"metadata": {"name": "db", "namespace": "web", "uid": "s", "resourceVersion": rv},
                "spec": spec});
            view.record_write(&t.cluster_key, "Service", "web", "db", Some(&svc))
                .unwrap_or_else(|e| panic!("{e}"));
        };
        put(json!({"ports": [{"port": 5432}]}), "1");
        assert!(
            EndpointsKind::synced(&view, &t, &k).unwrap_or(false),
            "selector-less: synced"
        );
        put(
            json!({"selector": {"app": "db"}, "ports": [{"port": 5432}]}),
            "2",
        );
        assert!(
            !EndpointsKind::synced(&view, &t, &k).unwrap_or(true),
            "selector: not synced"
        );
    }
}
