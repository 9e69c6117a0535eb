//! The catalogue of synced kinds: one module per [`Resource`], one line per kind in [`catalogue`].
//!
//! Namespace and Pod have their own executors (adapters here); the other namespaced kinds copied down are
//! a [`DownKind`] each, made a [`Resource`] by [`Downward`].

pub mod configmap;
mod endpoints;
mod ingress;
mod namespace;
mod networkpolicy;
mod pdb;
mod pod;
mod pvc;
pub mod secret;
pub mod service;
pub mod serviceaccount;

use std::marker::PhantomData;
use std::sync::Arc;

use super::TenantInfo;
use super::object::{self, DownKind, ObjectAction};
use super::resource::{Check, Ctx, Drift, Resource, SuperLocation, SyncFuture};
use super::sync_object::{self, Direction};
use crate::naming::super_namespace;
use crate::record::WorkKey;
use crate::source::KindSpec;

/// Every known resource, opt-in ones included. Adding a kind = its module + one line here.
#[must_use]
pub fn catalogue() -> Vec<Arc<dyn Resource>> {
    let mut list: Vec<Arc<dyn Resource>> = vec![
        Arc::new(namespace::NamespaceResource),
        Arc::new(pod::PodResource),
        Downward::<service::ServiceKind>::resource(),
        Downward::<endpoints::EndpointsKind>::resource(),
        Downward::<configmap::ConfigMapKind>::resource(),
        Downward::<secret::SecretKind>::resource(),
        Downward::<serviceaccount::ServiceAccountKind>::resource(),
        Downward::<pvc::PvcKind>::resource(),
        Downward::<ingress::IngressKind>::resource(),
        Downward::<networkpolicy::NetworkPolicyKind>::resource(),
        Downward::<pdb::PdbKind>::resource(),
    ];
    list.extend(crate::upward::resources());
    list
}

/// A [`DownKind`] as a [`Resource`]: down and up run the generic executor, the check classifies the plan.
pub(crate) struct Downward<D>(PhantomData<fn() -> D>);

impl<D: DownKind> Downward<D> {
    /// The resource of kind `D`.
    pub(crate) fn resource() -> Arc<dyn Resource> {
        Arc::new(Self(PhantomData))
    }
}

impl<D: DownKind> Resource for Downward<D> {
    fn kind(&self) -> &'static str {
        D::KIND
    }

    fn spec(&self) -> KindSpec {
        KindSpec::of::<D::Object>()
    }

    fn default_enabled(&self) -> bool {
        D::DEFAULT_ENABLED
    }

    fn reconcile_down<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(sync_object::reconcile::<D>(ctx, Direction::Down))
    }

    fn reconcile_up<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        Box::pin(sync_object::reconcile::<D>(ctx, Direction::Up))
    }

    fn super_location(&self, tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation> {
        Some(SuperLocation {
            namespace: super_namespace(&tenant.cluster_key, &key.namespace),
            name: D::super_name(&key.name),
        })
    }

    fn check(&self, check: &Check<'_>) -> Drift {
        let (tenant_obj, super_obj) = check.objects::<D::Object>();
        // A view that cannot be read says nothing about drift; the reconcile will find out.
        let synced = D::synced(check.view, check.tenant, check.key).unwrap_or(true);
        let super_ns = super_namespace(&check.tenant.cluster_key, &check.key.namespace);
        let actions = object::plan::<D>(
            tenant_obj.as_ref(),
            super_obj.as_ref(),
            check.tenant,
            check.key,
            &super_ns,
            synced,
        );
        classify(&actions, tenant_obj.is_none())
    }
}

/// The drift a plan reveals: its first action that a repair could change.
fn classify<K>(actions: &[ObjectAction<K>], tenant_absent: bool) -> Drift {
    for action in actions {
        let drift = match action {
            ObjectAction::CreateSuper(_) => Drift::MissingInSuper,
            ObjectAction::DeleteSuper { .. } if tenant_absent => Drift::OrphanInSuper,
            ObjectAction::DeleteSuper { .. } | ObjectAction::UpdateSuper(_) => {
                Drift::Different("super")
            }
            ObjectAction::UpdateTenant(_) | ObjectAction::UpdateTenantStatus(_) => {
                Drift::Different("status")
            }
            ObjectAction::Report { .. } => continue,
        };
        return drift;
    }
    Drift::InSync
}

/// A view on a scratch sled database, for unit tests of checks.
#[cfg(test)]
pub(crate) fn test_view() -> (tempfile::TempDir, crate::log::View) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = sled::open(dir.path()).unwrap_or_else(|e| panic!("sled: {e}"));
    let tree = db.open_tree("view").unwrap_or_else(|e| panic!("tree: {e}"));
    let view = crate::log::View::new(tree, std::sync::Arc::new(parking_lot::Mutex::new(())));
    (dir, view)
}

/// Shared helpers of the kinds' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::super::TenantInfo;
    use super::super::object::{self, DownKind, ObjectAction};
    use crate::record::WorkKey;

    /// Super namespace of tenant namespace `web` of [`tenant`].
    pub(crate) const SNS: &str = "team-ba7816-vc1-web";

    /// A tenant.
    pub(crate) fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        }
    }

    /// Work key of object `name` in tenant namespace `web`.
    pub(crate) fn key(name: &str) -> WorkKey {
        WorkKey {
            cluster: tenant().cluster_key,
            kind: "X".into(),
            namespace: "web".into(),
            name: name.into(),
        }
    }

    /// The plan for tenant object `name` of namespace `web`.
    pub(crate) fn run<D: DownKind>(
        t: Option<&D::Object>,
        s: Option<&D::Object>,
        name: &str,
    ) -> Vec<ObjectAction<D::Object>> {
        object::plan::<D>(t, s, &tenant(), &key(name), SNS, true)
    }

    /// `obj` as the API server returns it after creation (uid `s-uid`, resourceVersion 1).
    pub(crate) fn with_uid<K: kube::Resource>(mut obj: K) -> K {
        obj.meta_mut().uid = Some("s-uid".into());
        obj.meta_mut().resource_version = Some("1".into());
        obj
    }

    /// The check of resource `r` for object `name` of tenant namespace `web`, both sides given as JSON.
    pub(crate) fn check(
        r: &dyn crate::reconcile::Resource,
        view: &crate::log::View,
        name: &str,
        t: Option<&serde_json::Value>,
        s: Option<&serde_json::Value>,
    ) -> crate::reconcile::Drift {
        let info = tenant();
        let mut k = key(name);
        k.kind = r.kind().to_owned();
        r.check(&crate::reconcile::resource::Check {
            tenant: &info,
            key: &k,
            tenant_object: t,
            super_object: s,
            view,
        })
    }

    /// The super copy of `t` as created.
    pub(crate) fn created<D: DownKind>(t: &D::Object, name: &str) -> D::Object {
        with_uid(object::desired::<D>(t, &tenant(), name, SNS).unwrap_or_else(|e| panic!("{e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{SNS, check, key, tenant};
    use super::*;
    use serde_json::json;

    #[test]
    fn downward_checks_classify_drift_per_kind() {
        let (_dir, view) = test_view();
        let cm = Downward::<configmap::ConfigMapKind>::resource();
        let loc = cm
            .super_location(&tenant(), &key("kube-root-ca.crt"))
            .unwrap_or_else(|| panic!("located"));
        assert_eq!(
            (loc.namespace.as_str(), loc.name.as_str()),
            (SNS, "tenant-kube-root-ca.crt")
        );
        let t = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "web", "uid": "t-uid"},
            "data": {"ca.crt": "PEM"}});
        let parsed: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(t.clone()).unwrap_or_default();
        let copy = test_support::created::<configmap::ConfigMapKind>(&parsed, "kube-root-ca.crt");
        let s = serde_json::to_value(&copy).unwrap_or_default();
        let name = "kube-root-ca.crt";
        assert_eq!(
            check(cm.as_ref(), &view, name, Some(&t), Some(&s)),
            Drift::InSync
        );
        assert_eq!(
            check(cm.as_ref(), &view, name, Some(&t), None),
            Drift::MissingInSuper
        );
        assert_eq!(
            check(cm.as_ref(), &view, name, None, Some(&s)),
            Drift::OrphanInSuper
        );
        let mut changed = t.clone();
        changed["data"]["ca.crt"] = json!("NEW");
        assert_eq!(
            check(cm.as_ref(), &view, name, Some(&changed), Some(&s)),
            Drift::Different("super")
        );

        // A service whose super ClusterIP has not reached the tenant yet drifts upward.
        let svc = Downward::<service::ServiceKind>::resource();
        let t = json!({"metadata": {"name": "web", "namespace": "web", "uid": "t-uid"},
            "spec": {"ports": [{"port": 80}], "clusterIP": "10.96.0.9"}});
        let parsed: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(t.clone()).unwrap_or_default();
        let mut copy = test_support::created::<service::ServiceKind>(&parsed, "web");
        if let Some(spec) = copy.spec.as_mut() {
            spec.cluster_ip = Some("10.0.0.9".into());
        }
        let s = serde_json::to_value(&copy).unwrap_or_default();
        assert_eq!(
            check(svc.as_ref(), &view, "web", Some(&t), Some(&s)),
            Drift::Different("status")
        );

        // Endpoints of a selector service are not ours to copy: no drift without a super copy.
        let ep = Downward::<endpoints::EndpointsKind>::resource();
        let svc_json = json!({"metadata": {"name": "web", "namespace": "web", "uid": "s", "resourceVersion": "1"},
            "spec": {"selector": {"app": "web"}}});
        view.record_write(
            &tenant().cluster_key,
            "Service",
            "web",
            "web",
            Some(&svc_json),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = json!({"metadata": {"name": "web", "namespace": "web", "uid": "e-uid"},
            "subsets": [{"addresses": [{"ip": "10.1.0.1"}]}]});
        assert_eq!(
            check(ep.as_ref(), &view, "web", Some(&t), None),
            Drift::InSync
        );
        assert_eq!(
            check(ep.as_ref(), &view, "other", Some(&t), None),
            Drift::MissingInSuper
        );
    }

    #[test]
    fn every_kind_has_a_watch_spec_matching_its_name() {
        for r in catalogue() {
            let spec = r.spec();
            assert_eq!(spec.kind, r.kind());
            // Cluster-scoped kinds: Namespace, and the upward kinds keyed under the super cluster.
            assert!(
                spec.namespaced
                    || r.kind() == "Namespace"
                    || spec.super_key == crate::source::SuperKey::Cluster,
                "{}",
                r.kind()
            );
        }
    }
}
