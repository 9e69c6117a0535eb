//! Conformance: CustomResourceDefinitions.
//!
//! Rules ("Extend the Kubernetes API with CustomResourceDefinitions"): a created CRD reaches the
//! `NamesAccepted` and `Established` conditions, after which its resources are served under
//! `/apis/<group>/<version>` and listed in discovery (with `<plural>/status` when the status
//! subresource is enabled); fields not in the structural schema are pruned (always, for
//! apiextensions.k8s.io/v1 CRDs: "Field pruning"); values violating the schema
//! are 422 Invalid; with the status subresource, `generation` is bumped by changes outside `metadata`
//! and `status` only (apiextensions-apiserver pkg/registry/customresource/strategy.go). Deleting the CRD
//! deletes all its custom resources (finalizer `customresourcecleanup.apiextensions.k8s.io`) and then
//! the group version disappears from discovery.

mod common;

use std::time::Duration;

use common::{api_status, bounded, env, eventually, raw};
use http::Method;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};

const LIMIT: Duration = Duration::from_secs(30);

fn crd(group: &str) -> anyhow::Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{group}") },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": {
                            "size": { "type": "integer", "minimum": 1 },
                            "color": { "type": "string" }
                        }},
                        "status": { "type": "object", "properties": { "ready": { "type": "boolean" } } }
                    }
                }}
            }]
        }
    }))?)
}

/// Creates the CRD and waits until it is Established and its resource is served.
async fn install(client: &kube::Client, group: &str) -> anyhow::Result<Api<DynamicObject>> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd(group)?).await?;
    let name = format!("widgets.{group}");
    eventually("CRD Established", LIMIT, || async {
        let current = crds.get(&name).await?;
        let conditions = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        let established = conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        let accepted = conditions
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True");
        Ok((established && accepted).then_some(()))
    })
    .await?;
    let path = format!("/apis/{group}/v1");
    eventually("group version served", LIMIT, || async {
        let response = raw(client, Method::GET, &path, None, Vec::new()).await?;
        Ok((response.code == 200).then_some(()))
    })
    .await?;
    Ok(Api::all_with(client.clone(), &resource(group)))
}

fn resource(group: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), "widgets")
}

fn widget(group: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
    DynamicObject::new(name, &resource(group)).data(serde_json::json!({ "spec": spec }))
}

#[tokio::test]
async fn crd_resources_are_served_and_discoverable() -> anyhow::Result<()> {
    bounded(async {
        let env = env("crd-serve").await?;
        let group = format!("{}.conformance.example.com", env.ns);
        install(&env.client, &group).await?;
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.ns, &resource(&group));

        let discovery = common::get_json(&env.client, &format!("/apis/{group}/v1")).await?;
        let entries = discovery["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let main = entries
            .iter()
            .find(|r| r["name"] == "widgets")
            .ok_or_else(|| anyhow::anyhow!("{discovery}"))?;
        assert_eq!(main["kind"], "Widget");
        assert_eq!(main["namespaced"], true);
        assert!(
            entries.iter().any(|r| r["name"] == "widgets/status"),
            "{discovery}"
        );
        let groups = common::get_json(&env.client, "/apis").await?;
        assert!(
            groups["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["name"] == group.as_str())),
            "{group} missing from /apis"
        );

        let created = widgets
            .create(
                &PostParams::default(),
                &widget(&group, "w1", serde_json::json!({"size": 3})),
            )
            .await?;
        assert_eq!(created.metadata.generation, Some(1));
        let listed = widgets.list(&ListParams::default()).await?;
        assert_eq!(listed.items.len(), 1);

        // Generation: spec changes bump it, metadata and status changes do not.
        let pp = PatchParams::default();
        let annotated = widgets
            .patch(
                "w1",
                &pp,
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"a": "1"}}})),
            )
            .await?;
        assert_eq!(
            annotated.metadata.generation,
            Some(1),
            "metadata change bumped generation"
        );
        let status_patched = widgets
            .patch_status(
                "w1",
                &pp,
                &Patch::Merge(serde_json::json!({"status": {"ready": true}, "spec": {"size": 9}})),
            )
            .await?;
        assert_eq!(
            status_patched.metadata.generation,
            Some(1),
            "status change bumped generation"
        );
        assert_eq!(status_patched.data["status"]["ready"], true);
        assert_eq!(
            status_patched.data["spec"]["size"], 3,
            "/status changed spec"
        );
        let spec_patched = widgets
            .patch(
                "w1",
                &pp,
                &Patch::Merge(
                    serde_json::json!({"spec": {"color": "red"}, "status": {"ready": false}}),
                ),
            )
            .await?;
        assert_eq!(
            spec_patched.metadata.generation,
            Some(2),
            "spec change did not bump generation"
        );
        assert_eq!(
            spec_patched.data["status"]["ready"], true,
            "main resource update changed status"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn schema_violations_are_422_invalid() -> anyhow::Result<()> {
    bounded(async {
        let env = env("crd-schema").await?;
        let group = format!("{}.conformance.example.com", env.ns);
        install(&env.client, &group).await?;
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.ns, &resource(&group));
        let status = api_status(
            widgets
                .create(
                    &PostParams::default(),
                    &widget(&group, "w2", serde_json::json!({"size": 0})),
                )
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (422, "Invalid"),
            "{status:?}"
        );
        let status = api_status(
            widgets
                .create(
                    &PostParams::default(),
                    &widget(&group, "w3", serde_json::json!({"size": "big"})),
                )
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (422, "Invalid"),
            "{status:?}"
        );

        let status = api_status(
            widgets
                .create(
                    &PostParams::default(),
                    &widget(&group, "w4", serde_json::json!({"color": 7})),
                )
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (422, "Invalid"),
            "{status:?}"
        );
        assert!(
            widgets.list(&ListParams::default()).await?.items.is_empty(),
            "an invalid object was stored"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_fields_are_pruned() -> anyhow::Result<()> {
    bounded(async {
        let env = env("crd-prune").await?;
        let group = format!("{}.conformance.example.com", env.ns);
        install(&env.client, &group).await?;
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.ns, &resource(&group));
        let created = widgets
            .create(
                &PostParams::default(),
                &widget(
                    &group,
                    "w",
                    serde_json::json!({"size": 3, "bogus": "x", "nested": {"deep": 1}}),
                ),
            )
            .await?;
        assert_eq!(
            created.data["spec"],
            serde_json::json!({"size": 3}),
            "unknown fields not pruned on create"
        );
        let stored = widgets.get("w").await?;
        assert_eq!(
            stored.data["spec"],
            serde_json::json!({"size": 3}),
            "unknown fields stored"
        );
        let patched = widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"extra": true}})),
            )
            .await?;
        assert_eq!(
            patched.data["spec"],
            serde_json::json!({"size": 3}),
            "unknown fields not pruned on patch"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn crd_deletion_removes_its_resources() -> anyhow::Result<()> {
    bounded(async {
        let env = env("crd-delete").await?;
        let group = format!("{}.conformance.example.com", env.ns);
        install(&env.client, &group).await?;
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.ns, &resource(&group));
        for name in ["a", "b"] {
            widgets
                .create(
                    &PostParams::default(),
                    &widget(&group, name, serde_json::json!({"size": 1})),
                )
                .await?;
        }

        let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
        let name = format!("widgets.{group}");
        crds.delete(&name, &DeleteParams::default()).await?;
        eventually("CRD gone", LIMIT, || async {
            Ok(crds.get_opt(&name).await?.is_none().then_some(()))
        })
        .await?;
        let path = format!("/apis/{group}/v1");
        eventually("group version no longer served", LIMIT, || async {
            let response = raw(&env.client, Method::GET, &path, None, Vec::new()).await?;
            Ok((response.code == 404).then_some(()))
        })
        .await?;

        // Re-creating the CRD shows that the old custom resources were deleted with it.
        install(&env.client, &group).await?;
        let left = widgets.list(&ListParams::default()).await?;
        assert!(
            left.items.is_empty(),
            "custom resources survived their CRD: {}",
            left.items.len()
        );
        crds.delete(&name, &DeleteParams::default()).await?;
        Ok(())
    })
    .await
}

/// Rule: strategic merge patch needs Go struct tags, which custom resources do not have, so it is 415
/// `UnsupportedMediaType` on them; the accepted types are JSON patch, merge patch and apply
/// ("the body of the request was in an unknown format - accepted media types include:
/// application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml").
#[tokio::test]
async fn strategic_merge_patch_on_a_custom_resource_is_415() -> anyhow::Result<()> {
    bounded(async {
        let env = env("crd-smp").await?;
        let group = format!("{}.conformance.example.com", env.ns);
        install(&env.client, &group).await?;
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(env.client.clone(), &env.ns, &resource(&group));
        widgets
            .create(
                &PostParams::default(),
                &widget(&group, "w", serde_json::json!({"size": 1})),
            )
            .await?;
        let status = api_status(
            widgets
                .patch(
                    "w",
                    &PatchParams::default(),
                    &Patch::Strategic(serde_json::json!({"spec": {"size": 2}})),
                )
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (415, "UnsupportedMediaType"),
            "{status:?}"
        );
        assert!(
            status.message.starts_with(
                "the body of the request was in an unknown format - accepted media types include:"
            ),
            "{}",
            status.message
        );
        assert!(
            !status.message.contains("strategic-merge-patch"),
            "{}",
            status.message
        );
        assert_eq!(
            widgets.get("w").await?.data["spec"]["size"],
            1,
            "the patch was applied"
        );
        Ok(())
    })
    .await
}
