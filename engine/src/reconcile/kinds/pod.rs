//! Pod as a [`Resource`]: an adapter over the pod plan (`super::super::pod`) and its executor
//! (`sync_pod`), which handles both directions in one plan (status and node binding flow up inside
//! [`Resource::reconcile_down`]; [`Resource::reconcile_up`] has nothing left to do).

use k8s_openapi::api::core::v1::Pod;

use super::super::pod::{self, PodAction};
use super::super::resource::{Check, Ctx, Drift, Resource, SuperLocation, SyncFuture};
use super::super::{KIND_POD, TenantInfo, sync_pod};
use crate::naming::super_namespace;
use crate::record::WorkKey;
use crate::source::KindSpec;

/// Tenant pods → super pods in the translated namespace; status and binding back up.
pub(super) struct PodResource;

impl Resource for PodResource {
    fn kind(&self) -> &'static str {
        KIND_POD
    }

    fn spec(&self) -> KindSpec {
        KindSpec::of::<Pod>()
    }

    fn reconcile_down<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            // Records the super pod's node and makes the tenant's virtual node exist before binding.
            crate::upward::nodes::track_pod(ctx).await?;
            sync_pod::reconcile(ctx).await
        })
    }

    fn super_location(&self, tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation> {
        Some(SuperLocation {
            namespace: super_namespace(&tenant.cluster_key, &key.namespace),
            name: key.name.clone(),
        })
    }

    fn check(&self, check: &Check<'_>) -> Drift {
        let (tenant_pod, super_pod) = check.objects::<Pod>();
        let super_ns = super_namespace(&check.tenant.cluster_key, &check.key.namespace);
        let actions = pod::plan(
            tenant_pod.as_ref(),
            super_pod.as_ref(),
            check.tenant,
            &check.key.namespace,
            &super_ns,
            // Unknown here: no drift is made of the namespace annotation; a bound pod without its copy is
            // drift either way (the repair decides between re-creating it and deleting the tenant pod).
            None,
        );
        let mut drift = Drift::InSync;
        for action in &actions {
            let found = match action {
                PodAction::CreateSuper(_) => Drift::MissingInSuper,
                PodAction::DeleteSuper { .. } if tenant_pod.is_none() => Drift::OrphanInSuper,
                PodAction::DeleteSuper { .. } | PodAction::UpdateSuper(_) => {
                    Drift::Different("super")
                }
                PodAction::UpdateTenantStatus(_)
                | PodAction::BindTenant { .. }
                | PodAction::UpdateTenantMeta { .. } => Drift::Different("status"),
                PodAction::DeleteTenant { .. } => Drift::Different("tenant"),
                // Reported to the tenant already; nothing a repair can change.
                PodAction::Report { .. } => Drift::InSync,
            };
            if found != Drift::InSync {
                drift = found;
                break;
            }
        }
        drift
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, key, tenant};
    use super::*;
    use serde_json::json;

    #[test]
    fn check_classifies_both_sides() {
        let (_dir, view) = crate::reconcile::kinds::test_view();
        let t = tenant();
        let r = PodResource;
        let loc = r
            .super_location(&t, &key("nginx"))
            .unwrap_or_else(|| panic!("located"));
        assert_eq!(loc.namespace, "team-ba7816-vc1-web");
        let tenant_pod = json!({"metadata": {"name": "nginx", "namespace": "web", "uid": "t-uid"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}});
        let parsed: Pod = serde_json::from_value(tenant_pod.clone()).unwrap_or_default();
        let desired =
            pod::desired_super_pod(&parsed, &t, &loc.namespace).unwrap_or_else(|e| panic!("{e}"));
        let mut super_pod = serde_json::to_value(&desired).unwrap_or_default();
        super_pod["metadata"]["uid"] = json!("s-uid");
        let c = |ten, sup| check(&r, &view, "nginx", ten, sup);
        assert_eq!(c(Some(&tenant_pod), Some(&super_pod)), Drift::InSync);
        assert_eq!(c(Some(&tenant_pod), None), Drift::MissingInSuper);
        assert_eq!(c(None, Some(&super_pod)), Drift::OrphanInSuper);
        let mut running = super_pod.clone();
        running["status"] = json!({"phase": "Running"});
        assert_eq!(
            c(Some(&tenant_pod), Some(&running)),
            Drift::Different("status")
        );
        let mut new_image = tenant_pod.clone();
        new_image["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        assert_eq!(
            c(Some(&new_image), Some(&super_pod)),
            Drift::Different("super")
        );
        let mut preset = tenant_pod.clone();
        preset["spec"]["nodeName"] = json!("n1");
        assert_eq!(c(Some(&preset), None), Drift::InSync);
    }
}
