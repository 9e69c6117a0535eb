//! Conformance: the kubelet-proxied pod subresources (`pods/log`, `pods/exec`) before any kubelet is dialed.
//!
//! Rules (pkg/registry/core/pod/rest/log.go `LogREST.Get`, pkg/registry/core/pod/strategy.go `LogLocation`,
//! `streamLocation`, `validateContainer`; pkg/apis/core/validation `ValidatePodLogOptions`):
//! * log options are validated first: `tailLines` < 0 is 422 Invalid (`PodLogOptions "x" is invalid`), even
//!   for a pod that does not exist;
//! * a missing pod is 404 `pods "x" not found`;
//! * without `container`, a pod with several containers is 400 `a container name must be specified for pod
//!   x, choose one of: [...]`; an unknown container is 400 `container c is not valid for pod x`;
//! * the log of a pod without a node is an empty 200 answer;
//! * exec of a pod without a node is 400 `pod x does not have a host assigned`; of a pod on a node that does
//!   not exist, 404 `nodes "n" not found`.
//!
//! What the simulator does once a kubelet is reached is tested in `loadtest/apisim/tests/podproxy.rs` (no
//! kubelet runs beside the real API server here).

mod common;

use common::{assert_status_body, bounded, env, pod, raw};
use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;

#[tokio::test]
async fn pod_subresources_resolve_pod_container_and_node_like_the_real_server() -> anyhow::Result<()>
{
    bounded(async {
        let env = env("pod-sub").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        pods.create(
            &PostParams::default(),
            &pod("single", &[("app", "busybox")]),
        )
        .await?;
        pods.create(
            &PostParams::default(),
            &pod("multi", &[("a", "busybox"), ("b", "busybox")]),
        )
        .await?;
        let mut placed = pod("placed", &[("app", "busybox")]);
        if let Some(spec) = placed.spec.as_mut() {
            spec.node_name = Some("no-such-node".into());
        }
        pods.create(&PostParams::default(), &placed).await?;
        let base = format!("/api/v1/namespaces/{}/pods", env.ns);
        let get = |path: String| {
            let client = env.client.clone();
            async move { raw(&client, Method::GET, &path, None, Vec::new()).await }
        };

        let invalid = get(format!("{base}/ghost/log?tailLines=-1")).await?;
        let body = assert_status_body(&invalid, 422, "Invalid")?;
        anyhow::ensure!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("PodLogOptions \"ghost\" is invalid")),
            "{body}"
        );
        let missing = get(format!("{base}/ghost/log")).await?;
        let body = assert_status_body(&missing, 404, "NotFound")?;
        anyhow::ensure!(body["message"] == "pods \"ghost\" not found", "{body}");

        let ambiguous = get(format!("{base}/multi/log")).await?;
        let body = assert_status_body(&ambiguous, 400, "BadRequest")?;
        anyhow::ensure!(
            body["message"]
                == "a container name must be specified for pod multi, choose one of: [a b]",
            "{body}"
        );
        let unknown = get(format!("{base}/multi/log?container=zzz")).await?;
        let body = assert_status_body(&unknown, 400, "BadRequest")?;
        anyhow::ensure!(
            body["message"] == "container zzz is not valid for pod multi",
            "{body}"
        );

        let unbound = get(format!("{base}/single/log")).await?;
        anyhow::ensure!(
            unbound.code == 200 && unbound.body.is_empty(),
            "log of an unbound pod: {} {}",
            unbound.code,
            unbound.text()
        );

        let exec = raw(
            &env.client,
            Method::POST,
            &format!("{base}/single/exec?command=ls&stdout=true"),
            None,
            Vec::new(),
        )
        .await?;
        let body = assert_status_body(&exec, 400, "BadRequest")?;
        anyhow::ensure!(
            body["message"] == "pod single does not have a host assigned",
            "{body}"
        );
        let exec = raw(
            &env.client,
            Method::POST,
            &format!("{base}/placed/exec?command=ls&stdout=true"),
            None,
            Vec::new(),
        )
        .await?;
        let body = assert_status_body(&exec, 404, "NotFound")?;
        anyhow::ensure!(
            body["message"] == "nodes \"no-such-node\" not found",
            "{body}"
        );
        Ok(())
    })
    .await
}
