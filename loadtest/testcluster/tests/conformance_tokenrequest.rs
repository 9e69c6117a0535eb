//! Conformance: the `serviceaccounts/token` subresource (TokenRequest, `authentication.k8s.io/v1`).
//!
//! Rules (pkg/registry/core/serviceaccount/storage/token.go `TokenREST.Create`,
//! pkg/apis/authentication/validation `ValidateTokenRequest`, defaults in
//! pkg/apis/authentication/v1/defaults.go): the service account must exist (404); `spec.expirationSeconds`
//! defaults to 3600 and below 600 is 422 Invalid ("may not specify a duration less than 10 minutes"); empty
//! audiences become the server's API audiences; a `boundObjectRef` must name an existing object (404); the
//! answer is 201 with `status.token` and `status.expirationTimestamp` ≈ now + expirationSeconds, and the
//! requested audiences echoed in `spec.audiences`.

mod common;

use common::{api_status, bounded, env, pod};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

fn request(expiration: Option<i64>, audiences: &[&str]) -> TokenRequest {
    TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audiences.is_empty())
                .then(|| audiences.iter().map(|a| (*a).to_owned()).collect()),
            expiration_seconds: expiration,
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    }
}

async fn service_account(env: &common::Env, name: &str) -> anyhow::Result<Api<ServiceAccount>> {
    let api: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    api.create(&PostParams::default(), &sa).await?;
    Ok(api)
}

#[tokio::test]
async fn token_request_returns_a_token_with_its_expiration() -> anyhow::Result<()> {
    bounded(async {
        let env = env("token-ok").await?;
        let api = service_account(&env, "builder").await?;
        let before = Timestamp::now();
        let answer = api
            .create_token_request(
                "builder",
                &PostParams::default(),
                &request(Some(7200), &["vault"]),
            )
            .await?;
        let status = answer.status.clone().unwrap_or_default();
        let token = status.token.unwrap_or_default();
        assert_eq!(
            token.split('.').count(),
            3,
            "a JWT has three segments: {token}"
        );
        let expires = status
            .expiration_timestamp
            .map(|t| t.0)
            .ok_or_else(|| anyhow::anyhow!("no expirationTimestamp: {answer:?}"))?;
        let lifetime = expires.as_second() - before.as_second();
        assert!(
            (7200 - 60..=7200 + 60).contains(&lifetime),
            "expires {lifetime} s after the request, want ≈ 7200"
        );
        let spec = answer.spec.clone().unwrap_or_default();
        assert_eq!(spec.audiences, Some(vec!["vault".to_owned()]));
        assert_eq!(spec.expiration_seconds, Some(7200));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn token_request_defaults_expiration_and_audiences() -> anyhow::Result<()> {
    bounded(async {
        let env = env("token-defaults").await?;
        let api = service_account(&env, "builder").await?;
        let answer = api
            .create_token_request("builder", &PostParams::default(), &request(None, &[]))
            .await?;
        let spec = answer.spec.clone().unwrap_or_default();
        assert_eq!(spec.expiration_seconds, Some(3600));
        let audiences = spec.audiences.unwrap_or_default();
        assert!(
            !audiences.is_empty(),
            "empty audiences become the server's API audiences"
        );
        let token = answer.status.and_then(|s| s.token).unwrap_or_default();
        assert!(!token.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn token_request_errors() -> anyhow::Result<()> {
    bounded(async {
        let env = env("token-errors").await?;
        let api = service_account(&env, "builder").await?;

        let missing = api
            .create_token_request("nobody", &PostParams::default(), &request(None, &[]))
            .await;
        let status = api_status(missing)?;
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));

        let short = api
            .create_token_request("builder", &PostParams::default(), &request(Some(599), &[]))
            .await;
        let status = api_status(short)?;
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        assert!(
            status.message.contains("spec.expirationSeconds"),
            "{}",
            status.message
        );

        let mut bound = request(Some(3600), &[]);
        if let Some(spec) = bound.spec.as_mut() {
            spec.bound_object_ref = Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("not-there".into()),
                uid: None,
            });
        }
        let status = api_status(
            api.create_token_request("builder", &PostParams::default(), &bound)
                .await,
        )?;
        assert_eq!(status.code, 404, "{}", status.message);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn token_request_bound_to_an_existing_pod() -> anyhow::Result<()> {
    bounded(async {
        let env = env("token-bound").await?;
        let api = service_account(&env, "builder").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let mut p = pod("p", &[("c", "registry.k8s.io/pause:3.9")]);
        if let Some(spec) = p.spec.as_mut() {
            spec.service_account_name = Some("builder".into());
        }
        let created = pods.create(&PostParams::default(), &p).await?;
        let mut bound = request(Some(3600), &[]);
        if let Some(spec) = bound.spec.as_mut() {
            spec.bound_object_ref = Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("p".into()),
                uid: created.metadata.uid.clone(),
            });
        }
        let answer = api
            .create_token_request("builder", &PostParams::default(), &bound)
            .await?;
        let token = answer.status.and_then(|s| s.token).unwrap_or_default();
        assert!(!token.is_empty());
        assert_eq!(
            answer
                .spec
                .and_then(|s| s.bound_object_ref)
                .and_then(|r| r.name)
                .as_deref(),
            Some("p")
        );
        Ok(())
    })
    .await
}
