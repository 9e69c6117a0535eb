//! Secret, down: type, data and `immutable` copied. A service-account token secret
//! (`kubernetes.io/service-account-token`) is copied as an `Opaque` secret of the same name and data, with
//! its `kubernetes.io/service-account.name` / `.uid` annotations moved to [`ANNOTATION_SA_NAME`] /
//! [`ANNOTATION_SA_UID`], so the super cluster's token controller neither fills nor deletes it (it acts on
//! the type and on those annotations). Super pods mount the tenant's token from this copy.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;

/// Type of service-account token secrets.
pub const TYPE_SA_TOKEN: &str = "kubernetes.io/service-account-token";
/// Type given to their super copies.
pub const TYPE_OPAQUE: &str = "Opaque";
/// The tenant annotation naming the token's service account.
pub const TENANT_SA_NAME: &str = "kubernetes.io/service-account.name";
/// The tenant annotation with the token's service account uid.
pub const TENANT_SA_UID: &str = "kubernetes.io/service-account.uid";
/// Where the service-account name goes on the super copy.
pub const ANNOTATION_SA_NAME: &str = "tenancy.x-k8s.io/service-account.name";
/// Where the service-account uid goes on the super copy.
pub const ANNOTATION_SA_UID: &str = "tenancy.x-k8s.io/service-account.uid";

/// Secrets, down.
pub(crate) struct SecretKind;

impl DownKind for SecretKind {
    type Object = Secret;
    const KIND: &'static str = "Secret";

    fn translate(t: &Secret, mut meta: ObjectMeta, _: &TenantInfo) -> Result<Secret, String> {
        let mut type_ = t.type_.clone();
        if type_.as_deref() == Some(TYPE_SA_TOKEN) {
            type_ = Some(TYPE_OPAQUE.to_owned());
            let tenant_ann = t.metadata.annotations.clone().unwrap_or_default();
            let ann = meta.annotations.get_or_insert_with(Default::default);
            for (from, to) in [
                (TENANT_SA_NAME, ANNOTATION_SA_NAME),
                (TENANT_SA_UID, ANNOTATION_SA_UID),
            ] {
                ann.remove(from);
                if let Some(v) = tenant_ann.get(from) {
                    ann.insert(to.to_owned(), v.clone());
                }
            }
        }
        Ok(Secret {
            metadata: meta,
            data: t.data.clone(),
            // Write-only on the tenant side (folded into `data` by its API server); never copied.
            string_data: None,
            immutable: t.immutable,
            type_,
        })
    }

    fn update_body(desired: &Secret, actual: &Secret) -> Option<Secret> {
        let same = desired.data.clone().unwrap_or_default()
            == actual.data.clone().unwrap_or_default()
            && desired.immutable.unwrap_or(false) == actual.immutable.unwrap_or(false);
        (!same).then(|| Secret {
            data: desired.data.clone(),
            immutable: desired.immutable,
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

    fn token_secret() -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "default-token-abcde", "namespace": "web", "uid": "t-uid",
                "annotations": {TENANT_SA_NAME: "default", TENANT_SA_UID: "sa-uid", "note": "kept"}},
            "type": TYPE_SA_TOKEN,
            "data": {"token": "dG9rZW4=", "ca.crt": "Y2E=", "namespace": "d2Vi"}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn token_secrets_become_opaque_with_the_account_under_the_reserved_prefix() {
        let t = token_secret();
        let actions = run::<SecretKind>(Some(&t), None, "default-token-abcde");
        let [ObjectAction::CreateSuper(s)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(s.type_.as_deref(), Some(TYPE_OPAQUE));
        assert_eq!(s.metadata.name.as_deref(), Some("default-token-abcde"));
        assert_eq!(s.data, t.data);
        let ann = s.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get(ANNOTATION_SA_NAME).map(String::as_str),
            Some("default")
        );
        assert_eq!(
            ann.get(ANNOTATION_SA_UID).map(String::as_str),
            Some("sa-uid")
        );
        assert!(!ann.contains_key(TENANT_SA_NAME) && !ann.contains_key(TENANT_SA_UID));
        assert_eq!(ann.get("note").map(String::as_str), Some("kept"));
        // The moved annotations are stable: no update loop once created.
        let s = created::<SecretKind>(&t, "default-token-abcde");
        assert_eq!(
            run::<SecretKind>(Some(&t), Some(&s), "default-token-abcde"),
            vec![]
        );
    }

    #[test]
    fn other_secrets_keep_their_type_and_data_changes_flow_down() {
        let t: Secret = serde_json::from_value(json!({
            "metadata": {"name": "tls", "namespace": "web", "uid": "t-uid"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "Yg=="}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = created::<SecretKind>(&t, "tls");
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        let mut t2 = t.clone();
        t2.data
            .get_or_insert_with(Default::default)
            .insert("tls.key".into(), k8s_openapi::ByteString(b"c".to_vec()));
        let actions = run::<SecretKind>(Some(&t2), Some(&s), "tls");
        let [ObjectAction::UpdateSuper(u)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(u.data, t2.data);
    }
}
