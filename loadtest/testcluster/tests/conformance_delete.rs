//! Conformance: what DELETE answers and when the object is really gone.
//!
//! Rules (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go `finalizeDelete`): an
//! immediate delete answers a `Status` with `status: Success` and `details` {name, kind = resource,
//! uid}, except for stores with `ReturnDeletedObject: true` — pods among them
//! (pkg/registry/core/pod/storage) — which answer the deleted object. Pods are deleted gracefully
//! (pkg/registry/core/pod/strategy.go `CheckGracefulDelete`): the grace period defaults to
//! `terminationGracePeriodSeconds` (30), but a pod that is not scheduled (no `spec.nodeName`) is deleted
//! at once; a scheduled pod keeps existing with `deletionTimestamp` and `deletionGracePeriodSeconds`
//! until its kubelet confirms, or until a delete with `gracePeriodSeconds=0`.

mod common;

use std::time::Duration;

use common::{bounded, configmap, env, eventually, pod, raw};
use http::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

const IMAGE: &str = "registry.k8s.io/pause:3.9";

#[tokio::test]
async fn deleting_a_configmap_answers_a_success_status() -> anyhow::Result<()> {
    bounded(async {
        let env = env("del-cm").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let created = configmaps
            .create(&PostParams::default(), &configmap("gone", &[]))
            .await?;
        let path = format!("/api/v1/namespaces/{}/configmaps/gone", env.ns);
        let response = raw(&env.client, Method::DELETE, &path, None, Vec::new()).await?;
        assert_eq!(response.code, 200, "{}", response.text());
        let body = response.json()?;
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["status"], "Success", "{body}");
        assert_eq!(body["details"]["name"], "gone", "{body}");
        assert_eq!(body["details"]["kind"], "configmaps", "{body}");
        assert_eq!(
            body["details"]["uid"].as_str(),
            created.metadata.uid.as_deref(),
            "{body}"
        );
        assert!(configmaps.get_opt("gone").await?.is_none());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unscheduled_pod_is_deleted_at_once_and_answered_as_a_pod() -> anyhow::Result<()> {
    bounded(async {
        let env = env("del-pod").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        pods.create(&PostParams::default(), &pod("p", &[("c", IMAGE)]))
            .await?;
        let path = format!("/api/v1/namespaces/{}/pods/p", env.ns);
        let response = raw(&env.client, Method::DELETE, &path, None, Vec::new()).await?;
        assert_eq!(response.code, 200, "{}", response.text());
        let body = response.json()?;
        assert_eq!(
            body["kind"], "Pod",
            "pods answer the deleted object: {body}"
        );
        assert_eq!(body["metadata"]["name"], "p");
        assert!(
            pods.get_opt("p").await?.is_none(),
            "an unscheduled pod must be deleted at once"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_scheduled_pod_waits_for_its_grace_period() -> anyhow::Result<()> {
    bounded(async {
        let env = env("del-grace").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let mut scheduled = pod("p", &[("c", IMAGE)]);
        if let Some(spec) = scheduled.spec.as_mut() {
            // A node without a kubelet: nothing will confirm the deletion.
            spec.node_name = Some("node-without-kubelet".to_string());
        }
        let created = pods.create(&PostParams::default(), &scheduled).await?;
        assert_eq!(
            created
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds),
            Some(30),
            "terminationGracePeriodSeconds default"
        );

        let answer = pods.delete("p", &DeleteParams::default()).await?;
        let terminating = answer
            .left()
            .ok_or_else(|| anyhow::anyhow!("graceful pod delete answered a Status, not the pod"))?;
        assert!(terminating.metadata.deletion_timestamp.is_some());
        assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
        let still = pods
            .get_opt("p")
            .await?
            .ok_or_else(|| anyhow::anyhow!("a scheduled pod vanished before its grace period"))?;
        assert!(still.metadata.deletion_timestamp.is_some());

        pods.delete("p", &DeleteParams::default().grace_period(0))
            .await?;
        eventually(
            "pod gone after gracePeriodSeconds=0",
            Duration::from_secs(10),
            || async { Ok(pods.get_opt("p").await?.is_none().then_some(())) },
        )
        .await?;
        Ok(())
    })
    .await
}
