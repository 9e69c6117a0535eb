//! Conformance: error answers carry the real codes, reasons and `Status` bodies.
//!
//! Rules: failures answer a `Status` object (`kind: Status`, `apiVersion: v1`, `status: Failure`, `code`
//! equal to the HTTP code, a `reason` and `details`) — staging/src/k8s.io/apimachinery/pkg/api/errors.
//! `NewAlreadyExists`/`NewNotFound`/`NewConflict` put the *resource* (`configmaps`) and group into
//! `details.kind`/`details.group` and format `<resource>[.<group>] "<name>" ...`; `NewInvalid` puts the
//! *kind* (`ConfigMap`) there with one `cause` per field error. Decode failures are 400 BadRequest from
//! `transformDecodeError` (endpoints/handlers/rest.go): `<Kind> in version "<v>" cannot be handled as a
//! <Kind>` when the body names a kind, `the object provided is unrecognized (must be of type <Kind>)`
//! otherwise. Bodies over `MaxRequestBodyBytes` (3 MiB) get 413 `RequestEntityTooLarge` ("limit is
//! 3145728", `limitedReadBody`). A missing namespace is 404 from the NamespaceLifecycle admission plugin.
//! Delete preconditions that do not match are 409 Conflict ("Precondition failed: UID in precondition").

mod common;

use common::{
    api_status, assert_status_body, bounded, configmap, deployment, env, raw, status_details,
};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

#[tokio::test]
async fn create_existing_is_409_already_exists_with_details() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-exists").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("dup", &[]))
            .await?;
        let status = api_status(
            configmaps
                .create(&PostParams::default(), &configmap("dup", &[]))
                .await,
        )?;
        assert_eq!(status.code, 409);
        assert_eq!(status.reason, "AlreadyExists");
        assert_eq!(status.message, r#"configmaps "dup" already exists"#);
        let details = status_details(&status)?;
        assert_eq!(
            (details.name.as_str(), details.kind.as_str()),
            ("dup", "configmaps")
        );
        assert_eq!(details.group, "");

        // A grouped resource names its group in the message and details.
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
        deployments
            .create(&PostParams::default(), &deployment("dup", 0)?)
            .await?;
        let status = api_status(
            deployments
                .create(&PostParams::default(), &deployment("dup", 0)?)
                .await,
        )?;
        assert_eq!(status.message, r#"deployments.apps "dup" already exists"#);
        let details = status_details(&status)?;
        assert_eq!(
            (details.group.as_str(), details.kind.as_str()),
            ("apps", "deployments")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn stale_update_is_409_conflict_and_unconditional_update_is_allowed() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-conflict").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let first = configmaps.create(&PostParams::default(), &configmap("c", &[])).await?;
        let mut newer = first.clone();
        newer.data = Some([("k".to_string(), "newer".to_string())].into_iter().collect());
        configmaps.replace("c", &PostParams::default(), &newer).await?;

        let mut stale = first.clone();
        stale.data = Some([("k".to_string(), "stale".to_string())].into_iter().collect());
        let status = api_status(configmaps.replace("c", &PostParams::default(), &stale).await)?;
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            status.message,
            r#"Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again"#
        );
        let details = status_details(&status)?;
        assert_eq!((details.name.as_str(), details.kind.as_str()), ("c", "configmaps"));
        let current = configmaps.get("c").await?;
        assert_eq!(current.data, newer.data, "the stale write must not have landed");

        // ConfigMaps allow unconditional updates: no resourceVersion means "overwrite".
        let mut blind = configmap("c", &[]);
        blind.data = Some([("k".to_string(), "blind".to_string())].into_iter().collect());
        let written = configmaps.replace("c", &PostParams::default(), &blind).await?;
        assert_eq!(written.data, blind.data);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn missing_objects_and_namespaces_are_404() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-404").await?;
        let missing_ns = format!("{}-absent", env.ns);
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &missing_ns);
        let status = api_status(
            configmaps
                .create(&PostParams::default(), &configmap("x", &[]))
                .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        assert_eq!(
            status.message,
            format!(r#"namespaces "{missing_ns}" not found"#)
        );
        let details = status_details(&status)?;
        assert_eq!(
            (details.name.as_str(), details.kind.as_str()),
            (missing_ns.as_str(), "namespaces")
        );

        let path = format!("/api/v1/namespaces/{}/configmaps/missing", env.ns);
        let response = raw(&env.client, Method::GET, &path, None, Vec::new()).await?;
        let body = assert_status_body(&response, 404, "NotFound")?;
        assert_eq!(body["message"], r#"configmaps "missing" not found"#);
        assert_eq!(body["details"]["name"], "missing");
        assert_eq!(body["details"]["kind"], "configmaps");

        // Updating an object that does not exist does not create it (configmaps disallow create-on-update).
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let status = api_status(
            configmaps
                .replace("ghost", &PostParams::default(), &configmap("ghost", &[]))
                .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn malformed_json_is_400_bad_request() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-json").await?;
        let path = format!("/api/v1/namespaces/{}/configmaps", env.ns);
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"#.to_vec();
        let response = raw(
            &env.client,
            Method::POST,
            &path,
            Some("application/json"),
            body,
        )
        .await?;
        let status = assert_status_body(&response, 400, "BadRequest")?;
        assert!(
            status["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{status}"
        );

        // Syntactically valid JSON that is not an object of any kind.
        let response = raw(
            &env.client,
            Method::POST,
            &path,
            Some("application/json"),
            b"[1,2]".to_vec(),
        )
        .await?;
        assert_status_body(&response, 400, "BadRequest")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn wrong_kind_for_the_url_is_400_bad_request() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-kind").await?;
        let path = format!("/api/v1/namespaces/{}/pods", env.ns);
        let body = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": "not-a-pod" },
            "data": { "k": "v" }
        }))?;
        let response = raw(
            &env.client,
            Method::POST,
            &path,
            Some("application/json"),
            body,
        )
        .await?;
        let status = assert_status_body(&response, 400, "BadRequest")?;
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(r#"ConfigMap in version "v1" cannot be handled as a Pod"#),
            "{message}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn name_mismatch_between_body_and_url_is_400() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-name").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("a", &[]))
            .await?;
        let path = format!("/api/v1/namespaces/{}/configmaps/a", env.ns);
        let body = serde_json::to_vec(&configmap("b", &[]))?;
        let response = raw(
            &env.client,
            Method::PUT,
            &path,
            Some("application/json"),
            body,
        )
        .await?;
        let status = assert_status_body(&response, 400, "BadRequest")?;
        assert_eq!(
            status["message"],
            "the name of the object (b) does not match the name on the URL (a)"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn invalid_name_is_422_invalid_with_field_cause() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-invalid").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let status = api_status(configmaps.create(&PostParams::default(), &configmap("Bad_Name", &[])).await)?;
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        assert!(
            status.message.starts_with(
                r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#
            ),
            "{}",
            status.message
        );
        let details = status_details(&status)?;
        assert_eq!((details.name.as_str(), details.kind.as_str()), ("Bad_Name", "ConfigMap"));
        let cause = details.causes.first().cloned().ok_or_else(|| anyhow::anyhow!("no causes"))?;
        assert_eq!(cause.field, "metadata.name");
        assert_eq!(cause.reason, "FieldValueInvalid");
        let list = configmaps.list(&Default::default()).await?;
        // Controllers may add objects of their own (kube-root-ca.crt); none may carry the invalid name.
        assert!(
            list.items.iter().all(|cm| cm.metadata.name.as_deref() != Some("Bad_Name")),
            "an invalid object was stored"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn body_over_3_mib_is_413() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-413").await?;
        let mut big = configmap("big", &[]);
        big.data = Some(
            [("blob".to_string(), "x".repeat(3 * 1024 * 1024 + 1024))]
                .into_iter()
                .collect(),
        );
        let path = format!("/api/v1/namespaces/{}/configmaps", env.ns);
        let response = raw(
            &env.client,
            Method::POST,
            &path,
            Some("application/json"),
            serde_json::to_vec(&big)?,
        )
        .await?;
        let status = assert_status_body(&response, 413, "RequestEntityTooLarge")?;
        assert_eq!(
            status["message"],
            "Request entity too large: limit is 3145728"
        );
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        assert!(configmaps.get_opt("big").await?.is_none());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn delete_preconditions_that_do_not_match_are_409() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-precond").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let created = configmaps.create(&PostParams::default(), &configmap("p", &[])).await?;
        let uid = created.metadata.uid.clone().unwrap_or_default();
        let rv = created.metadata.resource_version.clone().unwrap_or_default();

        let wrong_uid = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some("00000000-0000-0000-0000-000000000000".to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let status = api_status(configmaps.delete("p", &wrong_uid).await)?;
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert!(
            status.message.contains(&format!(
                "Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, UID in object meta: {uid}"
            )),
            "{}",
            status.message
        );

        let wrong_rv = DeleteParams {
            preconditions: Some(Preconditions {
                uid: None,
                resource_version: Some("1".to_string()),
            }),
            ..Default::default()
        };
        let status = api_status(configmaps.delete("p", &wrong_rv).await)?;
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert!(
            status.message.contains(&format!(
                "Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}"
            )),
            "{}",
            status.message
        );
        assert!(configmaps.get_opt("p").await?.is_some(), "a failed precondition deleted the object");

        let right = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: Some(rv),
            }),
            ..Default::default()
        };
        configmaps.delete("p", &right).await?;
        assert!(configmaps.get_opt("p").await?.is_none());
        Ok(())
    })
    .await
}

/// Rule (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/negotiation `NewUnsupportedMediaTypeError`):
/// a PATCH whose content type is not a patch type is 415 `UnsupportedMediaType`, "the body of the
/// request was in an unknown format - accepted media types include: ...".
#[tokio::test]
async fn unknown_patch_content_type_is_415() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-415").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("p", &[]))
            .await?;
        let path = format!("/api/v1/namespaces/{}/configmaps/p", env.ns);
        let response = raw(
            &env.client,
            Method::PATCH,
            &path,
            Some("text/plain"),
            br#"{"data":{"k":"x"}}"#.to_vec(),
        )
        .await?;
        let status = assert_status_body(&response, 415, "UnsupportedMediaType")?;
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(
                "the body of the request was in an unknown format - accepted media types include:"
            ),
            "{message}"
        );
        assert!(
            message.contains("application/strategic-merge-patch+json"),
            "{message}"
        );
        assert_eq!(
            configmaps.get("p").await?.data,
            configmap("p", &[]).data,
            "the patch was applied"
        );
        Ok(())
    })
    .await
}

/// Rule: a verb the resource does not serve at that URL is 405 `MethodNotAllowed`, "the server does not
/// allow this method on the requested resource" (a PUT on a collection, for example).
#[tokio::test]
async fn unsupported_method_is_405() -> anyhow::Result<()> {
    bounded(async {
        let env = env("err-405").await?;
        let path = format!("/api/v1/namespaces/{}/configmaps", env.ns);
        let body = serde_json::to_vec(&configmap("x", &[]))?;
        let response = raw(
            &env.client,
            Method::PUT,
            &path,
            Some("application/json"),
            body,
        )
        .await?;
        let status = assert_status_body(&response, 405, "MethodNotAllowed")?;
        assert_eq!(
            status["message"],
            "the server does not allow this method on the requested resource"
        );
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        assert!(configmaps.get_opt("x").await?.is_none());
        Ok(())
    })
    .await
}
