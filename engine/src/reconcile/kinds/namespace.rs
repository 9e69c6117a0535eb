//! Namespace as a [`Resource`]: an adapter over the namespace plan (`super::super::namespace`) and its
//! executor (`sync_namespace`). Down only.

use k8s_openapi::api::core::v1::Namespace;

use super::super::namespace::{self, NamespaceAction};
use super::super::resource::{Check, Ctx, Drift, Resource, SuperLocation, SyncFuture};
use super::super::{KIND_NAMESPACE, TenantInfo, sync_namespace};
use crate::naming::super_namespace;
use crate::record::WorkKey;
use crate::source::KindSpec;

/// Tenant namespaces → super namespaces `<clusterKey>-<ns>`.
pub(super) struct NamespaceResource;

impl Resource for NamespaceResource {
    fn kind(&self) -> &'static str {
        KIND_NAMESPACE
    }

    fn spec(&self) -> KindSpec {
        KindSpec::of::<Namespace>()
    }

    fn reconcile_down<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(sync_namespace::reconcile(ctx))
    }

    fn super_location(&self, tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation> {
        Some(SuperLocation {
            namespace: String::new(),
            name: super_namespace(&tenant.cluster_key, &key.name),
        })
    }

    fn check(&self, check: &Check<'_>) -> Drift {
        let (tenant_ns, super_ns) = check.objects::<Namespace>();
        let super_name = super_namespace(&check.tenant.cluster_key, &check.key.name);
        let actions = namespace::plan(
            tenant_ns.as_ref(),
            super_ns.as_ref(),
            check.tenant,
            &check.key.name,
            &super_name,
        );
        let Some(first) = actions.first() else {
            return Drift::InSync;
        };
        match first {
            NamespaceAction::Create(_) => Drift::MissingInSuper,
            NamespaceAction::Delete { .. } if tenant_ns.is_none() => Drift::OrphanInSuper,
            NamespaceAction::Delete { .. } => Drift::Different("stale"),
            NamespaceAction::Update(_) => Drift::Different("metadata"),
            // Not ours to repair.
            NamespaceAction::NameConflict => Drift::InSync,
        }
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
        let r = NamespaceResource;
        let loc = r
            .super_location(&t, &key("web"))
            .unwrap_or_else(|| panic!("located"));
        assert_eq!(loc.name, "team-ba7816-vc1-web");
        let tenant_ns =
            json!({"metadata": {"name": "web", "uid": "t-uid", "labels": {"env": "prod"}}});
        let desired = namespace::desired_super_namespace(
            &serde_json::from_value(tenant_ns.clone()).unwrap_or_default(),
            &t,
            &loc.name,
        );
        let mut super_ns = serde_json::to_value(&desired).unwrap_or_default();
        super_ns["metadata"]["uid"] = json!("s-uid");
        let c = |ten, sup| check(&r, &view, "web", ten, sup);
        assert_eq!(c(Some(&tenant_ns), Some(&super_ns)), Drift::InSync);
        assert_eq!(c(Some(&tenant_ns), None), Drift::MissingInSuper);
        assert_eq!(c(None, Some(&super_ns)), Drift::OrphanInSuper);
        assert_eq!(c(None, None), Drift::InSync);
        let mut relabelled = tenant_ns.clone();
        relabelled["metadata"]["labels"]["env"] = json!("dev");
        assert_eq!(
            c(Some(&relabelled), Some(&super_ns)),
            Drift::Different("metadata")
        );
    }
}
