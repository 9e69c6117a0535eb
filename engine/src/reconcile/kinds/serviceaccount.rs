//! ServiceAccount, down: the super copy has `automountServiceAccountToken: false` (a super pod never gets a
//! super-cluster token) and no `secrets` list (the tenant's token secrets are copied as Opaque secrets, see
//! `secret`); `imagePullSecrets` are kept (they name secrets copied into the same super namespace). A
//! `secrets` list the super cluster adds later is left alone.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;

/// ServiceAccounts, down.
pub(crate) struct ServiceAccountKind;

impl DownKind for ServiceAccountKind {
    type Object = ServiceAccount;
    const KIND: &'static str = "ServiceAccount";

    fn translate(
        t: &ServiceAccount,
        meta: ObjectMeta,
        _: &TenantInfo,
    ) -> Result<ServiceAccount, String> {
        Ok(ServiceAccount {
            metadata: meta,
            automount_service_account_token: Some(false),
            image_pull_secrets: t.image_pull_secrets.clone(),
            secrets: None,
        })
    }

    fn update_body(desired: &ServiceAccount, actual: &ServiceAccount) -> Option<ServiceAccount> {
        let same = desired.image_pull_secrets.clone().unwrap_or_default()
            == actual.image_pull_secrets.clone().unwrap_or_default()
            && actual.automount_service_account_token == Some(false);
        (!same).then(|| ServiceAccount {
            automount_service_account_token: Some(false),
            image_pull_secrets: desired.image_pull_secrets.clone(),
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
    fn no_automount_no_secrets_pull_secrets_kept() {
        let t: ServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": "builder", "namespace": "web", "uid": "t-uid"},
            "automountServiceAccountToken": true,
            "secrets": [{"name": "builder-token-x"}],
            "imagePullSecrets": [{"name": "registry"}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = created::<ServiceAccountKind>(&t, "builder");
        assert_eq!(s.automount_service_account_token, Some(false));
        assert_eq!(s.secrets, None);
        assert_eq!(s.image_pull_secrets, t.image_pull_secrets);
        // A secrets list added on the super side is not fought over.
        let mut with_secrets = s.clone();
        with_secrets.secrets = Some(vec![Default::default()]);
        assert_eq!(
            run::<ServiceAccountKind>(Some(&t), Some(&with_secrets), "builder"),
            vec![]
        );
        // Someone turning automount on in the super copy is undone.
        let mut on = s.clone();
        on.automount_service_account_token = Some(true);
        let actions = run::<ServiceAccountKind>(Some(&t), Some(&on), "builder");
        assert!(
            matches!(actions.as_slice(), [ObjectAction::UpdateSuper(u)] if u.automount_service_account_token == Some(false)),
            "{actions:?}"
        );
    }
}
