//! The tenant's service-account token in a super pod, and the tenant's root CA.
//!
//! A super kubelet must never mint a *super* token into a tenant pod, so the super pod gets
//! `automountServiceAccountToken: false` and no `serviceAccountToken` projection. Instead, every projected
//! `serviceAccountToken` source without an audience (what the tenant's service-account admission puts in the
//! `kube-api-access-*` volume) becomes a `secret` source reading key `token` of a **token secret**: an Opaque
//! Secret in the super namespace, one per tenant service account, named [`token_secret_name`], holding a token
//! the syncer obtained from the *tenant* API server (TokenRequest, `POST serviceaccounts/<sa>/token`,
//! [`TOKEN_EXPIRATION_SECONDS`]) and renews once 80 % of its lifetime has passed ([`refresh_due`]), as a
//! kubelet renews projected tokens. Token sources with an audience (tokens meant for another system) are
//! removed: they are not supported.
//!
//! The token secret is the syncer's own object, not a copy of a tenant object: it carries the cluster and
//! namespace marks and [`ANNOTATION_TOKEN_FOR`] (the service account), but neither a `tenancy.x-k8s.io/uid`
//! mark nor the `controlled` label, so the generic Secret sync neither watches nor adopts it.
//!
//! References to the tenant's `kube-root-ca.crt` ConfigMap (projected sources, volumes, env) are renamed to
//! its super copy [`SUPER_ROOT_CA`] (the super namespace has a `kube-root-ca.crt` of its own, the *super*
//! CA); projected sources of it are marked `optional`, so a pod does not wait for the copy to start.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PodSpec, Secret, SecretProjection, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::tenants::TenantInfo;
use crate::naming::{
    ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_VC_NAME, ANNOTATION_VC_NAMESPACE,
};

/// The tenant's root CA ConfigMap (created in every namespace by the tenant's controller manager).
pub const TENANT_ROOT_CA: &str = "kube-root-ca.crt";
/// Name of the super copy of the tenant's `kube-root-ca.crt` ConfigMap (the ConfigMap sync's convention).
pub const SUPER_ROOT_CA: &str = super::kinds::configmap::ROOT_CA_SUPER_NAME;
/// Key of the token in a token secret.
pub const TOKEN_KEY: &str = "token";
/// Name prefix of token secrets.
pub const TOKEN_SECRET_PREFIX: &str = "vc-token-";
/// Annotation on a token secret: the tenant service account whose token it holds.
pub const ANNOTATION_TOKEN_FOR: &str = "tenancy.x-k8s.io/token-service-account";
/// Annotation on a token secret: when its token was issued (RFC 3339).
pub const ANNOTATION_TOKEN_ISSUED: &str = "tenancy.x-k8s.io/token-issued";
/// Annotation on a token secret: when its token expires (RFC 3339, from the TokenRequest's status).
pub const ANNOTATION_TOKEN_EXPIRES: &str = "tenancy.x-k8s.io/token-expiration";
/// Annotation on a token secret: uid of the super namespace it was written in (a re-created namespace with
/// the same name does not have it, so the view's entry is known to be stale).
pub const ANNOTATION_TOKEN_NAMESPACE_UID: &str = "tenancy.x-k8s.io/token-namespace-uid";
/// Lifetime asked for in TokenRequests (7 days; a server may grant less, [`refresh_due`] uses what it gave).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 7 * 24 * 3600;
/// Longest Secret name.
const MAX_NAME: usize = 253;

/// The service account a tenant pod runs as.
#[must_use]
pub fn service_account(spec: &PodSpec) -> &str {
    spec.service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// Name of the token secret of tenant service account `sa` (`vc-token-<sa>`; a name too long for a Secret
/// is cut and suffixed with a hash of the whole).
#[must_use]
pub fn token_secret_name(sa: &str) -> String {
    let full = format!("{TOKEN_SECRET_PREFIX}{sa}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let mut hash = hex::encode(Sha256::digest(full.as_bytes()));
    hash.truncate(10);
    let head: String = full.chars().take(MAX_NAME - 11).collect();
    format!("{}-{hash}", head.trim_end_matches(['-', '.']))
}

/// Rewrites token and root-CA references of `spec` (see the module docs). Returns whether the pod needs the
/// token secret `secret`.
pub fn rewrite_token_sources(spec: &mut PodSpec, secret: &str) -> bool {
    let mut needs_token = false;
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = v.config_map.as_mut()
            && cm.name == TENANT_ROOT_CA
        {
            cm.name = SUPER_ROOT_CA.into();
        }
        let Some(projected) = v.projected.as_mut() else {
            continue;
        };
        let sources = projected.sources.take().unwrap_or_default();
        let mut kept = Vec::with_capacity(sources.len());
        for mut source in sources {
            if let Some(token) = source.service_account_token.as_ref() {
                if token.audience.as_deref().is_some_and(|a| !a.is_empty()) {
                    continue;
                }
                needs_token = true;
                kept.push(VolumeProjection {
                    secret: Some(SecretProjection {
                        name: secret.to_owned(),
                        items: Some(vec![KeyToPath {
                            key: TOKEN_KEY.into(),
                            path: token.path.clone(),
                            ..KeyToPath::default()
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                });
                continue;
            }
            if let Some(cm) = source.config_map.as_mut()
                && cm.name == TENANT_ROOT_CA
            {
                cm.name = SUPER_ROOT_CA.into();
                cm.optional = Some(true);
            }
            kept.push(source);
        }
        if kept.is_empty() {
            dropped.insert(v.name.clone());
        }
        projected.sources = Some(kept);
    }
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| !dropped.contains(&v.name));
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        if let Some(mounts) = c.volume_mounts.as_mut() {
            mounts.retain(|m| !dropped.contains(&m.name));
        }
        rename_root_ca_in_env(c);
    }
    needs_token
}

fn rename_root_ca_in_env(c: &mut Container) {
    for from in c.env_from.iter_mut().flatten() {
        if let Some(cm) = from.config_map_ref.as_mut()
            && cm.name == TENANT_ROOT_CA
        {
            cm.name = SUPER_ROOT_CA.into();
        }
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(cm) = env
            .value_from
            .as_mut()
            .and_then(|f| f.config_map_key_ref.as_mut())
            && cm.name == TENANT_ROOT_CA
        {
            cm.name = SUPER_ROOT_CA.into();
        }
    }
}

/// A token obtained from the tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The bearer token.
    pub token: String,
    /// When it was obtained.
    pub issued: Timestamp,
    /// When it expires.
    pub expires: Timestamp,
}

/// The token secret holding `token` for tenant service account `sa` of tenant namespace `tenant_namespace`,
/// in super namespace `super_namespace` (uid `namespace_uid`).
#[must_use]
pub fn token_secret(
    tenant: &TenantInfo,
    tenant_namespace: &str,
    super_namespace: &str,
    namespace_uid: &str,
    sa: &str,
    token: &IssuedToken,
) -> Secret {
    let annotations: BTreeMap<String, String> = [
        (ANNOTATION_CLUSTER, tenant.cluster_key.clone()),
        (ANNOTATION_NAMESPACE, tenant_namespace.to_owned()),
        (ANNOTATION_VC_NAME, tenant.vc_name.clone()),
        (ANNOTATION_VC_NAMESPACE, tenant.vc_namespace.clone()),
        (ANNOTATION_TOKEN_FOR, sa.to_owned()),
        (ANNOTATION_TOKEN_ISSUED, token.issued.to_string()),
        (ANNOTATION_TOKEN_EXPIRES, token.expires.to_string()),
        (ANNOTATION_TOKEN_NAMESPACE_UID, namespace_uid.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let labels: BTreeMap<String, String> = [
        (ANNOTATION_VC_NAME.to_owned(), tenant.vc_name.clone()),
        (
            ANNOTATION_VC_NAMESPACE.to_owned(),
            tenant.vc_namespace.clone(),
        ),
    ]
    .into();
    Secret {
        metadata: ObjectMeta {
            name: Some(token_secret_name(sa)),
            namespace: Some(super_namespace.to_owned()),
            annotations: Some(annotations),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [(
                TOKEN_KEY.to_owned(),
                ByteString(token.token.clone().into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    }
}

/// What an existing token secret is to the pod that needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSecretState {
    /// Ours, for this service account, written in this super namespace, token still fresh.
    Fresh,
    /// Ours, but the token is past 80 % of its lifetime (or its times do not parse): renew.
    Due,
    /// Ours by its marks but written in an earlier namespace of the same name (a stale view entry).
    OtherNamespace,
    /// Not ours (another tenant, namespace or service account, or not a token secret): left alone.
    Foreign,
}

/// Classifies an existing token secret for service account `sa` of tenant namespace `tenant_namespace`, the
/// super namespace having uid `namespace_uid`, at time `now`.
#[must_use]
pub fn token_secret_state(
    secret: &Secret,
    tenant: &TenantInfo,
    tenant_namespace: &str,
    sa: &str,
    namespace_uid: &str,
    now: Timestamp,
) -> TokenSecretState {
    let Some(ann) = secret.metadata.annotations.as_ref() else {
        return TokenSecretState::Foreign;
    };
    let get = |k: &str| ann.get(k).map(String::as_str).unwrap_or_default();
    if get(ANNOTATION_CLUSTER) != tenant.cluster_key
        || get(ANNOTATION_NAMESPACE) != tenant_namespace
        || get(ANNOTATION_TOKEN_FOR) != sa
    {
        return TokenSecretState::Foreign;
    }
    if get(ANNOTATION_TOKEN_NAMESPACE_UID) != namespace_uid {
        return TokenSecretState::OtherNamespace;
    }
    let has_token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .is_some_and(|t| !t.0.is_empty());
    let issued = get(ANNOTATION_TOKEN_ISSUED).parse::<Timestamp>();
    let expires = get(ANNOTATION_TOKEN_EXPIRES).parse::<Timestamp>();
    match (has_token, issued, expires) {
        (true, Ok(issued), Ok(expires)) if !refresh_due(issued, expires, now) => {
            TokenSecretState::Fresh
        }
        _ => TokenSecretState::Due,
    }
}

/// True once 80 % of a token's lifetime has passed (or it is already expired).
#[must_use]
pub fn refresh_due(issued: Timestamp, expires: Timestamp, now: Timestamp) -> bool {
    let lifetime = expires.as_second() - issued.as_second();
    if lifetime <= 0 {
        return true;
    }
    now.as_second() >= issued.as_second() + lifetime * 4 / 5
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        }
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn kube_api_access_reads_the_token_secret_and_the_renamed_ca() {
        let mut s = spec(json!({
            "containers": [{"name": "app", "volumeMounts": [
                {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                {"name": "vault", "mountPath": "/vault"}],
                "env": [{"name": "CA", "valueFrom": {"configMapKeyRef": {"name": "kube-root-ca.crt", "key": "ca.crt"}}}],
                "envFrom": [{"configMapRef": {"name": "kube-root-ca.crt"}}]}],
            "volumes": [
                {"name": "kube-api-access-abcde", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
                {"name": "vault", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "vault", "path": "vault-token"}}]}},
                {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}
            ]
        }));
        assert!(rewrite_token_sources(&mut s, "vc-token-builder"));
        let volumes = s.volumes.clone().unwrap_or_default();
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["kube-api-access-abcde", "ca"],
            "audience-only volume dropped"
        );
        let sources = volumes[0]
            .projected
            .as_ref()
            .and_then(|p| p.sources.clone())
            .unwrap_or_default();
        assert_eq!(sources.len(), 3);
        assert!(sources.iter().all(|s| s.service_account_token.is_none()));
        let secret = sources[0].secret.clone().unwrap_or_default();
        assert_eq!(secret.name, "vc-token-builder");
        assert_eq!(
            secret.items,
            Some(vec![KeyToPath {
                key: "token".into(),
                path: "token".into(),
                ..KeyToPath::default()
            }])
        );
        let cm = sources[1].config_map.clone().unwrap_or_default();
        assert_eq!((cm.name.as_str(), cm.optional), (SUPER_ROOT_CA, Some(true)));
        assert_eq!(
            volumes[1].config_map.as_ref().map(|c| c.name.as_str()),
            Some(SUPER_ROOT_CA)
        );
        let app = &s.containers[0];
        let mounts: Vec<&str> = app
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(mounts, ["kube-api-access-abcde"]);
        let env_cm = app.env.as_ref().and_then(|e| e[0].value_from.clone());
        assert_eq!(
            env_cm.and_then(|f| f.config_map_key_ref).map(|c| c.name),
            Some(SUPER_ROOT_CA.to_owned())
        );
        let from = app.env_from.clone().unwrap_or_default();
        assert_eq!(
            from[0].config_map_ref.as_ref().map(|c| c.name.as_str()),
            Some(SUPER_ROOT_CA)
        );
    }

    #[test]
    fn pods_without_token_sources_need_no_secret() {
        let mut s = spec(json!({"containers": [{"name": "app"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}));
        let before = s.clone();
        assert!(!rewrite_token_sources(&mut s, "vc-token-default"));
        assert_eq!(s, before);
    }

    #[test]
    fn service_account_and_secret_names() {
        assert_eq!(service_account(&spec(json!({"containers": []}))), "default");
        assert_eq!(
            service_account(&spec(json!({"containers": [], "serviceAccount": "old"}))),
            "old"
        );
        assert_eq!(
            service_account(&spec(
                json!({"containers": [], "serviceAccountName": "new", "serviceAccount": "old"})
            )),
            "new"
        );
        assert_eq!(token_secret_name("builder"), "vc-token-builder");
        let long = "a".repeat(253);
        let name = token_secret_name(&long);
        assert!(name.len() <= 253, "{}", name.len());
        assert_ne!(name, token_secret_name(&"a".repeat(252)));
    }

    #[test]
    fn token_secret_is_ours_and_renewed_at_80_percent() {
        let t = tenant();
        let token = IssuedToken {
            token: "tok".into(),
            issued: ts("2026-01-01T00:00:00Z"),
            expires: ts("2026-01-11T00:00:00Z"),
        };
        let secret = token_secret(
            &t,
            "web",
            "team-ba7816-vc1-web",
            "ns-uid",
            "builder",
            &token,
        );
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.metadata.name.as_deref(), Some("vc-token-builder"));
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        assert!(
            !labels.contains_key(crate::naming::LABEL_CONTROLLED),
            "not picked up by the generic Secret sync"
        );
        let state = |now: &str, sa: &str, ns_uid: &str| {
            token_secret_state(&secret, &t, "web", sa, ns_uid, ts(now))
        };
        assert_eq!(
            state("2026-01-08T23:59:59Z", "builder", "ns-uid"),
            TokenSecretState::Fresh
        );
        assert_eq!(
            state("2026-01-09T00:00:00Z", "builder", "ns-uid"),
            TokenSecretState::Due
        );
        assert_eq!(
            state("2026-01-02T00:00:00Z", "other", "ns-uid"),
            TokenSecretState::Foreign
        );
        assert_eq!(
            state("2026-01-02T00:00:00Z", "builder", "new-ns-uid"),
            TokenSecretState::OtherNamespace
        );
        let mut other_tenant = t.clone();
        other_tenant.cluster_key = "x".into();
        assert_eq!(
            token_secret_state(
                &secret,
                &other_tenant,
                "web",
                "builder",
                "ns-uid",
                ts("2026-01-02T00:00:00Z")
            ),
            TokenSecretState::Foreign
        );
    }
}
