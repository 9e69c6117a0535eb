//! Keeps a pod's token secret ([`super::pod_token`]) present and fresh in its super namespace: TokenRequest on
//! the tenant API server, then create (or replace, with the resourceVersion read) the Opaque super secret.
//!
//! The token secret is not watched (it has no `controlled` label), so the view holds it only as this module
//! recorded it, under its own kind name [`KIND_TOKEN_SECRET`] (no source lists that kind, so no relist ever
//! diffs it away). A view entry written in an earlier super namespace of the same name, or one that is not
//! ours, is checked with a live read before anything is decided.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use super::pod_token::{
    IssuedToken, TOKEN_EXPIRATION_SECONDS, TokenSecretState, token_secret, token_secret_name,
    token_secret_state,
};
use super::writer::{self, Created, Target, WriteError};
use super::{Ctx, Read, SyncError, count_write};
use crate::record::SUPER_CLUSTER;

/// Kind name under which token secrets are kept in the view.
pub(crate) const KIND_TOKEN_SECRET: &str = "TokenSecret";
/// Kind label of token-secret writes in metrics and errors.
const KIND_SECRET: &str = "Secret";
/// Create/replace attempts before giving up (retried by the shard).
const ATTEMPTS: usize = 3;

/// Outcome of ensuring a token secret.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenSecret {
    /// Present and fresh.
    Ready,
    /// The name is held by an object that is not this service account's token secret: left alone.
    Foreign,
}

/// Makes sure the token secret of tenant service account `sa` exists and is fresh in super namespace
/// `super_ns` (uid `namespace_uid`).
pub(crate) async fn ensure(
    ctx: &Ctx<'_>,
    super_ns: &str,
    namespace_uid: &str,
    sa: &str,
) -> Result<TokenSecret, SyncError> {
    let name = token_secret_name(sa);
    let api: Api<Secret> = Api::namespaced(ctx.super_client.clone(), super_ns);
    let target = Target {
        cluster: SUPER_CLUSTER,
        kind: KIND_SECRET,
        namespace: super_ns,
        name: &name,
    };
    let state_of = |secret: &Secret| {
        token_secret_state(
            secret,
            &ctx.tenant.info,
            &ctx.key.namespace,
            sa,
            namespace_uid,
            Timestamp::now(),
        )
    };
    let mut current = match ctx.read::<Secret>(SUPER_CLUSTER, KIND_TOKEN_SECRET, super_ns, &name)? {
        Read::Object(s) if state_of(&s) == TokenSecretState::Fresh => {
            return Ok(TokenSecret::Ready);
        }
        Read::Object(s) if state_of(&s) == TokenSecretState::Due => Some(*s),
        _ => live(ctx, &api, target).await?,
    };
    for _ in 0..ATTEMPTS {
        let state = current.as_ref().map(state_of);
        match state {
            Some(TokenSecretState::Fresh) => return Ok(TokenSecret::Ready),
            Some(TokenSecretState::Foreign) => return Ok(TokenSecret::Foreign),
            _ => {}
        }
        let token = request_token(ctx, sa).await?;
        let mut secret = token_secret(
            &ctx.tenant.info,
            &ctx.key.namespace,
            super_ns,
            namespace_uid,
            sa,
            &token,
        );
        match current {
            None => match writer::create(&api, target, &secret).await? {
                Created::Yes(created) => {
                    count_write(KIND_SECRET, "super", "create");
                    record(ctx, super_ns, &name, Some(&created))?;
                    return Ok(TokenSecret::Ready);
                }
                Created::AlreadyExists => current = live(ctx, &api, target).await?,
            },
            Some(old) => {
                secret.metadata.resource_version = old.metadata.resource_version.clone();
                match writer::replace(&api, target, &secret).await {
                    Ok(updated) => {
                        count_write(KIND_SECRET, "super", "update");
                        record(ctx, super_ns, &name, Some(&updated))?;
                        return Ok(TokenSecret::Ready);
                    }
                    Err(e) if e.is_conflict() || e.is_not_found() => {
                        current = live(ctx, &api, target).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(SyncError::Unsettled {
        kind: KIND_SECRET,
        namespace: super_ns.to_owned(),
        name,
    })
}

/// Live read of the token secret, recorded in the view.
async fn live(
    ctx: &Ctx<'_>,
    api: &Api<Secret>,
    target: Target<'_>,
) -> Result<Option<Secret>, SyncError> {
    let secret = writer::get(api, target).await?;
    record(ctx, target.namespace, target.name, secret.as_ref())?;
    Ok(secret)
}

fn record(ctx: &Ctx<'_>, ns: &str, name: &str, secret: Option<&Secret>) -> Result<(), SyncError> {
    ctx.record(SUPER_CLUSTER, KIND_TOKEN_SECRET, ns, name, secret)
}

/// A token for tenant service account `sa` (TokenRequest on the tenant API server, default audiences).
async fn request_token(ctx: &Ctx<'_>, sa: &str) -> Result<IssuedToken, SyncError> {
    let api: Api<ServiceAccount> = Api::namespaced(ctx.tenant.client.clone(), &ctx.key.namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = Timestamp::now();
    let answer = api
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .map_err(|source| WriteError {
            verb: "create_token",
            kind: "ServiceAccount",
            cluster: ctx.key.cluster.clone(),
            namespace: ctx.key.namespace.clone(),
            name: sa.to_owned(),
            source,
        })?;
    count_write("ServiceAccount", "tenant", "create_token");
    let status = answer.status.unwrap_or_default();
    match (status.token, status.expiration_timestamp) {
        (Some(token), Some(expires)) if !token.is_empty() => Ok(IssuedToken {
            token,
            issued,
            expires: expires.0,
        }),
        _ => Err(SyncError::Waiting(format!(
            "the tenant answered the token request for service account {}/{sa} without a token",
            ctx.key.namespace
        ))),
    }
}
