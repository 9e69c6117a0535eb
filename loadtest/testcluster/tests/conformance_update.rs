//! Conformance: the status subresource and the three patch types.
//!
//! Rules: with a status subresource, an update of the main resource keeps the stored status and an
//! update of `/status` keeps the stored spec — for Deployments also the labels
//! (pkg/registry/apps/deployment/strategy.go: `PrepareForUpdate` sets `newDeployment.Status =
//! oldDeployment.Status`; the status strategy sets `Spec` and `Labels` from the old object). JSON merge
//! patch (RFC 7386) replaces lists and deletes keys set to null; strategic merge patch merges lists
//! that have a patch merge key — pod containers by `name`; JSON patch (RFC 6902) applies operations in
//! order, a failing operation (e.g. `test`) is 422 and a body that is not a patch is 400
//! (endpoints/handlers/patch.go `applyJSPatch`). Pod spec updates may only change images and a few
//! other fields (pkg/apis/core/validation `ValidatePodUpdate`: "pod updates may not change fields other
//! than ...").

mod common;

use common::{api_status, bounded, deployment, env, pod};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

fn images(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Sends a JSON patch (RFC 6902) to `path`.
async fn json_patch(
    client: &kube::Client,
    path: &str,
    ops: &serde_json::Value,
) -> anyhow::Result<common::Raw> {
    common::raw(
        client,
        http::Method::PATCH,
        path,
        Some("application/json-patch+json"),
        serde_json::to_vec(ops)?,
    )
    .await
}

fn pair(name: &str, image: &str) -> (String, String) {
    (name.to_string(), image.to_string())
}

#[tokio::test]
async fn status_subresource_and_main_resource_ignore_each_other() -> anyhow::Result<()> {
    bounded(async {
        let env = env("upd-status").await?;
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
        let mut created = deployments
            .create(&PostParams::default(), &deployment("d", 1)?)
            .await?;
        assert!(
            created
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .is_none(),
            "status set on create"
        );

        // PUT /status with a new status, a new spec and a new label: only the status lands.
        // Unconditional updates (no resourceVersion; Deployments allow them): a deployment controller,
        // when one runs, writes status concurrently and would make a conditional PUT conflict.
        let mut via_status = created.clone();
        via_status.metadata.resource_version = None;
        via_status
            .status
            .get_or_insert_with(Default::default)
            .collision_count = Some(7);
        via_status.spec.replicas = Some(5);
        via_status.metadata.labels = Some(
            [("via".to_string(), "status".to_string())]
                .into_iter()
                .collect(),
        );
        let after_status = deployments
            .replace_status("d", &PostParams::default(), &via_status)
            .await?;
        assert_eq!(
            after_status.status.as_ref().and_then(|s| s.collision_count),
            Some(7)
        );
        assert_eq!(after_status.spec.replicas, Some(1), "/status changed spec");
        assert_eq!(
            after_status.metadata.labels, created.metadata.labels,
            "/status changed labels"
        );

        // PUT on the main resource with a new spec and a new status: only the spec lands.
        created = after_status;
        let mut via_main = created.clone();
        via_main.metadata.resource_version = None;
        via_main
            .status
            .get_or_insert_with(Default::default)
            .collision_count = Some(9);
        via_main.spec.replicas = Some(3);
        let after_main = deployments
            .replace("d", &PostParams::default(), &via_main)
            .await?;
        assert_eq!(after_main.spec.replicas, Some(3));
        assert_eq!(
            after_main.status.as_ref().and_then(|s| s.collision_count),
            Some(7),
            "main resource update changed status"
        );

        // Patches follow the same split.
        let patched = deployments
            .patch_status(
                "d",
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"spec": {"replicas": 8}, "status": {"collisionCount": 8}}),
                ),
            )
            .await?;
        assert_eq!(patched.spec.replicas, Some(3));
        assert_eq!(
            patched.status.as_ref().and_then(|s| s.collision_count),
            Some(8)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn json_merge_patch_sets_and_deletes_keys_and_replaces_lists() -> anyhow::Result<()> {
    bounded(async {
        let env = env("upd-merge").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let mut p = pod("p", &[("a", "img-a:1"), ("b", "img-b:1")]);
        p.metadata.labels = Some([("x", "1"), ("y", "2")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        pods.create(&PostParams::default(), &p).await?;

        let patched = pods
            .patch(
                "p",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {"x": null, "z": "3"}}})),
            )
            .await?;
        let labels = patched.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("x"), None, "null did not delete the key");
        assert_eq!(labels.get("y").map(String::as_str), Some("2"));
        assert_eq!(labels.get("z").map(String::as_str), Some("3"));

        // A merge patch replaces the whole containers list, which drops container `a`: pod validation
        // forbids that.
        let status = api_status(
            pods.patch(
                "p",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"containers": [{"name": "b", "image": "img-b:2"}]}})),
            )
            .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        assert!(status.message.contains("pod updates may not change fields other than"), "{}", status.message);
        assert_eq!(images(&pods.get("p").await?), [pair("a", "img-a:1"), pair("b", "img-b:1")]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() -> anyhow::Result<()> {
    bounded(async {
        let env = env("upd-smp").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        pods.create(
            &PostParams::default(),
            &pod("p", &[("a", "img-a:1"), ("b", "img-b:1")]),
        )
        .await?;
        let patched = pods
            .patch(
                "p",
                &PatchParams::default(),
                &Patch::Strategic(serde_json::json!({
                    "metadata": {"labels": {"new": "yes"}},
                    "spec": {"containers": [{"name": "b", "image": "img-b:2"}]}
                })),
            )
            .await?;
        assert_eq!(
            images(&patched),
            [pair("a", "img-a:1"), pair("b", "img-b:2")]
        );
        assert_eq!(
            patched
                .metadata
                .labels
                .unwrap_or_default()
                .get("new")
                .map(String::as_str),
            Some("yes")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn json_patch_applies_operations_in_order_and_fails_whole() -> anyhow::Result<()> {
    bounded(async {
        let env = env("upd-jsonpatch").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let mut p = pod("p", &[("a", "img-a:1")]);
        p.metadata.labels = Some(
            [
                ("keep".to_string(), "1".to_string()),
                ("drop".to_string(), "1".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        let created = pods.create(&PostParams::default(), &p).await?;

        let path = format!("/api/v1/namespaces/{}/pods/p", env.ns);
        let ops = serde_json::json!([
            {"op": "test", "path": "/metadata/labels/keep", "value": "1"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "img-a:2"},
            {"op": "add", "path": "/metadata/labels/added", "value": "yes"},
            {"op": "remove", "path": "/metadata/labels/drop"}
        ]);
        let response = json_patch(&env.client, &path, &ops).await?;
        anyhow::ensure!(
            response.code == 200,
            "JSON patch answered {}: {}",
            response.code,
            response.text()
        );
        let patched: Pod = serde_json::from_slice(&response.body)?;
        assert_eq!(images(&patched), [pair("a", "img-a:2")]);
        let labels = patched.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("added").map(String::as_str), Some("yes"));
        assert!(!labels.contains_key("drop"));

        // A failing `test` makes the whole patch fail: the earlier operations are not applied.
        let failing = serde_json::json!([
            {"op": "add", "path": "/metadata/labels/partial", "value": "yes"},
            {"op": "test", "path": "/metadata/labels/keep", "value": "not-the-value"}
        ]);
        let response = json_patch(&env.client, &path, &failing).await?;
        common::assert_status_body(&response, 422, "Invalid")?;
        let current = pods.get("p").await?;
        assert!(
            !current
                .metadata
                .labels
                .unwrap_or_default()
                .contains_key("partial")
        );
        assert_eq!(
            current.metadata.resource_version,
            patched.metadata.resource_version
        );
        assert_ne!(
            created.metadata.resource_version,
            patched.metadata.resource_version
        );

        // A body that is not a JSON patch document is a bad request.
        let response = common::raw(
            &env.client,
            http::Method::PATCH,
            &path,
            Some("application/json-patch+json"),
            br#"{"op":"add"}"#.to_vec(),
        )
        .await?;
        common::assert_status_body(&response, 400, "BadRequest")?;
        Ok(())
    })
    .await
}
