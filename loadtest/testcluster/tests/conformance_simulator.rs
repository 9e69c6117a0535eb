//! Simulator-only features: the built-in scheduler + kubelet and fault injection. Every test is skipped
//! (with a printed note) on other backends.
//!
//! The kubelet tests assert what a real node does to a pod: the scheduler sets `spec.nodeName` to a
//! Ready node, the kubelet reports `status.phase: Running`, a `podIP` from the node's pod CIDR and a
//! `Ready` condition, and finishes a graceful delete so the pod disappears. The fault tests assert the
//! shape of the injected answers: a 500 `InternalError` Status, a 429 `TooManyRequests` Status with a
//! `Retry-After` header and `details.retryAfterSeconds` (the real priority-and-fairness filter answers
//! "Too many requests, please try again later." with `Retry-After`), a 410 `Expired` ERROR event on the
//! next watch, and watches closed after N events.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use apisim::faults::FaultConfig;
use common::{bounded, configmap, env, env_with, eventually, pod, raw, skip};
use futures::{StreamExt, TryStreamExt};
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use testcluster::ClusterOptions;

fn in_pod_cidr(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>()
        .map(|ip| u32::from(ip) & 0xFFFF_0000 == u32::from(Ipv4Addr::new(10, 244, 0, 0)))
        .unwrap_or(false)
}

#[tokio::test]
async fn kubelet_binds_runs_and_deletes_pods() -> anyhow::Result<()> {
    bounded(async {
        let env = env_with(
            "sim-kubelet",
            ClusterOptions::default().with_kubelet_nodes(2),
        )
        .await?;
        if env.cluster.simulator().is_none() {
            skip(
                "kubelet_binds_runs_and_deletes_pods",
                env.cluster.backend(),
                "built-in kubelet is simulator-only",
            );
            return Ok(());
        }
        let nodes: Api<Node> = Api::all(env.client.clone());
        let node_list = nodes.list(&ListParams::default()).await?;
        let names: Vec<String> = node_list
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        for node in &node_list.items {
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            assert!(ready, "node {:?} not Ready", node.metadata.name);
        }
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
        for name in &names {
            assert!(
                leases.get_opt(name).await?.is_some(),
                "no node Lease for {name}"
            );
        }

        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        pods.create(
            &PostParams::default(),
            &pod("runner", &[("c", "registry.k8s.io/pause:3.9")]),
        )
        .await?;
        let running = eventually("pod Running", Duration::from_secs(20), || async {
            let p = pods.get("runner").await?;
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            Ok((phase.as_deref() == Some("Running")).then_some(p))
        })
        .await?;
        let node = running
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(names.contains(&node), "bound to unknown node {node:?}");
        let status = running.status.clone().unwrap_or_default();
        let ip = status.pod_ip.clone().unwrap_or_default();
        assert!(in_pod_cidr(&ip), "podIP {ip:?} not in 10.244.0.0/16");
        assert!(
            status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            "pod not Ready"
        );
        let container = status.container_statuses.unwrap_or_default();
        assert!(
            container.iter().all(|c| c.ready),
            "containers not ready: {container:?}"
        );

        pods.delete("runner", &DeleteParams::default()).await?;
        eventually(
            "pod deleted after graceful termination",
            Duration::from_secs(45),
            || async { Ok(pods.get_opt("runner").await?.is_none().then_some(())) },
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn injected_500_and_429_have_real_shapes() -> anyhow::Result<()> {
    bounded(async {
        let env = env("sim-errors").await?;
        let Some(sim) = env.cluster.simulator() else {
            skip(
                "injected_500_and_429_have_real_shapes",
                env.cluster.backend(),
                "fault injection is simulator-only",
            );
            return Ok(());
        };
        // kube clients retry 429/503/504 by default; this test must see the raw answers.
        let mut config = env.cluster.config().await?;
        config.default_retry = false;
        let client = kube::Client::try_from(config)?;
        let path = format!("/api/v1/namespaces/{}/configmaps", env.ns);
        sim.faults().set(FaultConfig {
            error_500_fraction: 1.0,
            ..FaultConfig::default()
        })?;
        let response = raw(&client, Method::GET, &path, None, Vec::new()).await?;
        common::assert_status_body(&response, 500, "InternalError")?;

        sim.faults().set(FaultConfig {
            error_429_fraction: 1.0,
            retry_after_seconds: 2,
            ..FaultConfig::default()
        })?;
        let response = raw(&client, Method::GET, &path, None, Vec::new()).await?;
        let body = common::assert_status_body(&response, 429, "TooManyRequests")?;
        assert_eq!(body["details"]["retryAfterSeconds"], 2, "{body}");
        let retry_after = response
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        assert_eq!(retry_after, Some("2"));
        assert_eq!(
            body["message"],
            "Too many requests, please try again later."
        );

        sim.faults().set(FaultConfig::default())?;
        let response = raw(&client, Method::GET, &path, None, Vec::new()).await?;
        assert_eq!(response.code, 200, "{}", response.text());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn forced_410_hits_only_the_next_watch() -> anyhow::Result<()> {
    bounded(async {
        let env = env("sim-gone").await?;
        let Some(sim) = env.cluster.simulator() else {
            skip(
                "forced_410_hits_only_the_next_watch",
                env.cluster.backend(),
                "fault injection is simulator-only",
            );
            return Ok(());
        };
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let rv = configmaps
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        sim.faults().force_gone_next_watch();
        let mut first = configmaps
            .watch(&WatchParams::default().timeout(5), &rv)
            .await?
            .boxed();
        match tokio::time::timeout(Duration::from_secs(10), first.try_next()).await {
            Ok(Ok(Some(WatchEvent::Error(status)))) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (410, "Expired"),
                    "{status:?}"
                );
            }
            other => anyhow::bail!("expected a 410 ERROR event, got {other:?}"),
        }
        // The flag is consumed: the following watch works.
        let mut second = configmaps
            .watch(&WatchParams::default().timeout(5), &rv)
            .await?
            .boxed();
        configmaps
            .create(&PostParams::default(), &configmap("after", &[]))
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), second.try_next()).await {
                Ok(Ok(Some(WatchEvent::Added(cm)))) => {
                    assert_eq!(cm.metadata.name.as_deref(), Some("after"));
                    break;
                }
                Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {}
                other => {
                    anyhow::bail!("expected ADDED after the forced 410 was consumed, got {other:?}")
                }
            }
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn watches_are_cut_after_n_events() -> anyhow::Result<()> {
    bounded(async {
        let env = env("sim-cut").await?;
        let Some(sim) = env.cluster.simulator() else {
            skip(
                "watches_are_cut_after_n_events",
                env.cluster.backend(),
                "fault injection is simulator-only",
            );
            return Ok(());
        };
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let rv = configmaps
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        for i in 0..5 {
            configmaps
                .create(&PostParams::default(), &configmap(&format!("cm-{i}"), &[]))
                .await?;
        }
        sim.faults().set(FaultConfig {
            watch_cut_after_events: Some(2),
            ..FaultConfig::default()
        })?;
        let params = WatchParams::default().timeout(20).disable_bookmarks();
        let stream = configmaps.watch(&params, &rv).await?;
        let events = tokio::time::timeout(Duration::from_secs(10), stream.try_collect::<Vec<_>>())
            .await
            .map_err(|_| {
                anyhow::anyhow!("watch not cut: still open after 10 s of a 20 s watch")
            })??;
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events.iter().all(|e| matches!(e, WatchEvent::Added(_))),
            "{events:?}"
        );
        Ok(())
    })
    .await
}
