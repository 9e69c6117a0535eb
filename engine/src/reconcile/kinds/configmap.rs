//! ConfigMap, down: data, binaryData and `immutable` copied as they are. The tenant's `kube-root-ca.crt`
//! (the tenant API server's CA, published in every tenant namespace) is copied as
//! [`ROOT_CA_SUPER_NAME`], because the super cluster publishes its own `kube-root-ca.crt` in every super
//! namespace. A tenant ConfigMap literally named [`ROOT_CA_SUPER_NAME`] is therefore not copied when the
//! renamed root CA holds the name (reported as `SuperNameConflict`).

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;

/// Name of the ConfigMap every namespace gets with the API server's CA.
pub const ROOT_CA_NAME: &str = "kube-root-ca.crt";
/// Name of the super copy of the tenant's [`ROOT_CA_NAME`].
pub const ROOT_CA_SUPER_NAME: &str = "tenant-kube-root-ca.crt";

/// ConfigMaps, down.
pub(crate) struct ConfigMapKind;

impl DownKind for ConfigMapKind {
    type Object = ConfigMap;
    const KIND: &'static str = "ConfigMap";

    fn super_name(tenant_name: &str) -> String {
        if tenant_name == ROOT_CA_NAME {
            ROOT_CA_SUPER_NAME.to_owned()
        } else {
            tenant_name.to_owned()
        }
    }

    fn translate(t: &ConfigMap, meta: ObjectMeta, _: &TenantInfo) -> Result<ConfigMap, String> {
        Ok(ConfigMap {
            metadata: meta,
            data: t.data.clone(),
            binary_data: t.binary_data.clone(),
            immutable: t.immutable,
        })
    }

    fn update_body(desired: &ConfigMap, actual: &ConfigMap) -> Option<ConfigMap> {
        let same = desired.data.clone().unwrap_or_default()
            == actual.data.clone().unwrap_or_default()
            && desired.binary_data.clone().unwrap_or_default()
                == actual.binary_data.clone().unwrap_or_default()
            && desired.immutable.unwrap_or(false) == actual.immutable.unwrap_or(false);
        (!same).then(|| ConfigMap {
            data: desired.data.clone(),
            binary_data: desired.binary_data.clone(),
            immutable: desired.immutable,
            ..actual.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{ANNOTATION_NAME, ANNOTATION_UID};
    use crate::reconcile::kinds::test_support::{key, run, tenant, with_uid};
    use crate::reconcile::object::{ObjectAction, desired};
    use serde_json::json;

    fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "web", "uid": "t-uid",
            "labels": {"app": "web", "tenancy.x-k8s.io/vcname": "forged"}}, "data": data}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn root_ca_is_renamed_and_names_its_tenant_object() {
        let t = cm(ROOT_CA_NAME, json!({"ca.crt": "PEM"}));
        let actions = run::<ConfigMapKind>(Some(&t), None, ROOT_CA_NAME);
        let [ObjectAction::CreateSuper(s)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(s.metadata.name.as_deref(), Some(ROOT_CA_SUPER_NAME));
        let ann = s.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get(ANNOTATION_NAME).map(String::as_str),
            Some(ROOT_CA_NAME)
        );
        assert_eq!(ann.get(ANNOTATION_UID).map(String::as_str), Some("t-uid"));
        assert_eq!(s.data, t.data);
        // The forged reserved label is replaced by the real mark.
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("tenancy.x-k8s.io/vcname").map(String::as_str),
            Some("vc1")
        );
        // In sync once created; a data change flows down.
        let created = with_uid(s.as_ref().clone());
        assert_eq!(
            run::<ConfigMapKind>(Some(&t), Some(&created), ROOT_CA_NAME),
            vec![]
        );
        let t2 = cm(ROOT_CA_NAME, json!({"ca.crt": "NEW"}));
        let actions = run::<ConfigMapKind>(Some(&t2), Some(&created), ROOT_CA_NAME);
        let [ObjectAction::UpdateSuper(u)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(u.data, t2.data);
        assert_eq!(u.metadata.resource_version.as_deref(), Some("1"));
    }

    #[test]
    fn a_tenant_object_named_like_the_renamed_root_ca_does_not_take_it_over() {
        let root = cm(ROOT_CA_NAME, json!({"ca.crt": "PEM"}));
        let copy = with_uid(
            desired::<ConfigMapKind>(&root, &tenant(), ROOT_CA_NAME, "team-ba7816-vc1-web")
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let impostor = cm(ROOT_CA_SUPER_NAME, json!({"x": "y"}));
        let actions = run::<ConfigMapKind>(Some(&impostor), Some(&copy), ROOT_CA_SUPER_NAME);
        assert!(
            matches!(actions.as_slice(), [ObjectAction::Report { reason, .. }] if *reason == "SuperNameConflict"),
            "{actions:?}"
        );
        // ... and its absence does not delete the root CA copy either.
        assert_eq!(
            run::<ConfigMapKind>(None, Some(&copy), ROOT_CA_SUPER_NAME),
            vec![]
        );
        assert_eq!(key(ROOT_CA_NAME).name, ROOT_CA_NAME);
    }
}
