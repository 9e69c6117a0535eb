//! ServiceAccount, down: the super copy has `automountServiceAccountToken: false` (a super pod never gets a
//! super-cluster token) and no `secrets` list (the tenant's token secrets are copied as Opaque secrets, see
//! `secret`); `imagePullSecrets` are kept (they name secrets copied into the same super namespace). A
//! `secrets` list the super cluster adds later is left alone.
//!
//! The tenant's `default` ServiceAccount is not copied: the super cluster's own service-account controller
//! creates (and re-creates) a `default` account in every super namespace, which the syncer does not own;
//! a super pod of the `default` account uses that one (it never mounts its token: the tenant's token is
//! mounted instead).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::object::DownKind;
use crate::log::{LogError, View};
use crate::record::WorkKey;

/// The account every namespace gets from its cluster's service-account controller.
pub const DEFAULT_ACCOUNT: &str = "default";

/// ServiceAccounts, down.
pub(crate) struct ServiceAccountKind;

impl DownKind for ServiceAccountKind {
    type Object = ServiceAccount;
    const KIND: &'static str = "ServiceAccount";

    fn synced(_: &View, _: &TenantInfo, key: &WorkKey) -> Result<bool, LogError> {
        Ok(key.name != DEFAULT_ACCOUNT)
    }

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
    fn the_default_account_is_left_to_the_super_cluster() {
        let (_dir, view) = crate::reconcile::kinds::test_view();
        let t = crate::reconcile::kinds::test_support::tenant();
        let key = |name: &str| crate::reconcile::kinds::test_support::key(name);
        assert!(!ServiceAccountKind::synced(&view, &t, &key("default")).unwrap_or(true));
        assert!(ServiceAccountKind::synced(&view, &t, &key("builder")).unwrap_or(false));
    }

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
