//! Conformance: the `pods/binding` subresource (how a scheduler — and the syncer — assign a pod).
//!
//! Rules (pkg/registry/core/pod/storage/storage.go, `BindingREST.Create` → `assignPod` →
//! `setPodHostAndAnnotations`): a Binding sets `spec.nodeName` and a `PodScheduled=True` condition and
//! answers 201 with a Success Status; a pod that already has a node is a 409 Conflict on
//! `pods/binding` ("pod <p> is already assigned to node \"<n>\""); a pod being deleted is a 409 ("pod
//! <p> is being deleted, cannot be assigned to a host"); a Binding whose `metadata.uid` differs from the
//! pod's is a 409 precondition failure; binding a missing pod is 404.

mod common;

use common::{assert_status_body, bounded, env, pod, raw};
use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

const IMAGE: &str = "registry.k8s.io/pause:3.9";

fn binding(pod: &str, node: &str, uid: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut metadata = serde_json::json!({ "name": pod });
    if let Some(uid) = uid {
        metadata["uid"] = serde_json::json!(uid);
    }
    Ok(serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": { "apiVersion": "v1", "kind": "Node", "name": node }
    }))?)
}

async fn bind(
    env: &common::Env,
    pod: &str,
    node: &str,
    uid: Option<&str>,
) -> anyhow::Result<common::Raw> {
    let path = format!("/api/v1/namespaces/{}/pods/{pod}/binding", env.ns);
    raw(
        &env.client,
        Method::POST,
        &path,
        Some("application/json"),
        binding(pod, node, uid)?,
    )
    .await
}

#[tokio::test]
async fn binding_assigns_once() -> anyhow::Result<()> {
    bounded(async {
        let env = env("bind-once").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let created = pods.create(&PostParams::default(), &pod("p", &[("c", IMAGE)])).await?;
        let uid = created.metadata.uid.clone().unwrap_or_default();

        let response = bind(&env, "p", "node-a", Some(&uid)).await?;
        assert_eq!(response.code, 201, "{}", response.text());
        let body = response.json()?;
        assert_eq!((body["kind"].as_str(), body["status"].as_str()), (Some("Status"), Some("Success")), "{body}");

        let bound = pods.get("p").await?;
        assert_eq!(bound.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("node-a"));
        let scheduled = bound
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"));
        assert!(scheduled, "no PodScheduled=True condition: {:?}", bound.status);

        let response = bind(&env, "p", "node-b", None).await?;
        let body = assert_status_body(&response, 409, "Conflict")?;
        assert_eq!(
            body["message"],
            r#"Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "node-a""#
        );
        assert_eq!(body["details"]["kind"], "pods/binding", "{body}");
        let still = pods.get("p").await?;
        assert_eq!(still.spec.and_then(|s| s.node_name).as_deref(), Some("node-a"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn binding_with_a_stale_uid_or_missing_pod_fails() -> anyhow::Result<()> {
    bounded(async {
        let env = env("bind-uid").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let created = pods
            .create(&PostParams::default(), &pod("p", &[("c", IMAGE)]))
            .await?;
        let uid = created.metadata.uid.clone().unwrap_or_default();

        let stale = "00000000-0000-0000-0000-000000000000";
        let response = bind(&env, "p", "node-a", Some(stale)).await?;
        let body = assert_status_body(&response, 409, "Conflict")?;
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!(
                "Precondition failed: UID in precondition: {stale}, UID in object meta: {uid}"
            )),
            "{message}"
        );
        let unbound = pods.get("p").await?;
        assert_eq!(unbound.spec.and_then(|s| s.node_name), None);

        let response = bind(&env, "ghost", "node-a", None).await?;
        let body = assert_status_body(&response, 404, "NotFound")?;
        assert_eq!(body["message"], r#"pods "ghost" not found"#);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn binding_a_terminating_pod_fails() -> anyhow::Result<()> {
    bounded(async {
        let env = env("bind-term").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let mut held = pod("p", &[("c", IMAGE)]);
        held.metadata.finalizers = Some(vec!["conformance.example.com/hold".to_string()]);
        pods.create(&PostParams::default(), &held).await?;
        pods.delete("p", &DeleteParams::default()).await?;

        let response = bind(&env, "p", "node-a", None).await?;
        let body = assert_status_body(&response, 409, "Conflict")?;
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("pod p is being deleted, cannot be assigned to a host"),
            "{message}"
        );

        // Let the pod go.
        pods.patch(
            "p",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await?;
        Ok(())
    })
    .await
}
