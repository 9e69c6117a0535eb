//! End to end: the `syncer` binary against a simulated super cluster (with its built-in kubelet) and
//! simulated tenants. Tenant namespaces and pods appear in the super cluster under the translated names,
//! super status flows back, deletes propagate, forged reserved marks are not honoured, and `/metrics`
//! serves the lag histogram as a real Prometheus histogram.

mod e2e_support;

use anyhow::{Context, Result};
use e2e_support::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams};
use serde_json::json;
use syncer::naming::{ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_workload_syncs_down_status_flows_up_and_deletes_propagate() -> Result<()> {
    let clusters = Clusters::start(2, 2).await?;
    let sup = clusters.super_client().await?;
    let t1 = clusters.tenants[0].client().await?;
    let t2 = clusters.tenants[1].client().await?;

    // Workload before the syncer starts (initial list) ...
    create_namespace(&t1, "team").await?;
    create_pod(&t1, "team", "web-0", json!({"app": "web"}), json!({})).await?;
    // ... one pod with forged reserved marks ...
    create_pod(
        &t1,
        "team",
        "forger",
        json!({"tenancy.x-k8s.io/vcname": "someone-else", "app": "x"}),
        json!({ANNOTATION_UID: "forged-uid", ANNOTATION_CLUSTER: "forged-cluster",
               ANNOTATION_NAMESPACE: "kube-system"}),
    )
    .await?;
    // ... and the same namespace name in another tenant.
    create_namespace(&t2, "team").await?;
    create_pod(&t2, "team", "web-0", json!({}), json!({})).await?;

    let mut syncer = SyncerProcess::start(&clusters, &clusters.data_dir(), &[])?;

    // Live events after start.
    create_pod(&t1, "team", "web-1", json!({"app": "web"}), json!({})).await?;

    let ns1 = clusters.super_ns(0, "team");
    let ns2 = clusters.super_ns(1, "team");
    assert_ne!(ns1, ns2, "two tenants' namespaces must not collide");
    let super_ns: Namespace = wait_for("super namespace of tenant 1", 30, || {
        let sup = sup.clone();
        let ns1 = ns1.clone();
        async move { Ok(Api::<Namespace>::all(sup).get_opt(&ns1).await?) }
    })
    .await?;
    assert_eq!(
        super_ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_CLUSTER)),
        Some(&clusters.key(0))
    );

    // Every tenant pod gets exactly one super pod, in the translated namespace, owned by its uid.
    let tenant_pods = all_pods(&t1).await?;
    wait_for(
        "3 super pods in tenant 1's namespace and 1 in tenant 2's",
        60,
        || {
            let sup = sup.clone();
            let (ns1, ns2) = (ns1.clone(), ns2.clone());
            async move {
                let p1 = Api::<Pod>::namespaced(sup.clone(), &ns1)
                    .list(&Default::default())
                    .await?;
                let p2 = Api::<Pod>::namespaced(sup, &ns2)
                    .list(&Default::default())
                    .await?;
                Ok((p1.items.len() == 3 && p2.items.len() == 1).then_some(()))
            }
        },
    )
    .await?;
    syncer.check_alive()?;
    let super_pods = Api::<Pod>::namespaced(sup.clone(), &ns1)
        .list(&Default::default())
        .await?
        .items;
    for tp in &tenant_pods {
        let name = tp.metadata.name.as_deref().context("name")?;
        let sp = super_pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .with_context(|| format!("super pod for {name}"))?;
        assert_eq!(
            annotation(sp, ANNOTATION_UID),
            tp.metadata.uid.as_deref(),
            "{name}"
        );
        assert_eq!(
            annotation(sp, ANNOTATION_CLUSTER),
            Some(clusters.key(0).as_str())
        );
        assert_eq!(annotation(sp, ANNOTATION_NAMESPACE), Some("team"));
        assert_eq!(label(sp, "tenancy.x-k8s.io/vcname"), Some("vc-1"));
        assert_eq!(label(sp, "tenancy.x-k8s.io/controlled"), Some("true"));
    }
    // The forged marks were replaced by the real ones (checked above for every pod, including "forger");
    // the tenant's own non-reserved label survived.
    let forger = super_pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("forger"))
        .context("forger")?;
    assert_eq!(label(forger, "app"), Some("x"));
    assert_ne!(annotation(forger, ANNOTATION_UID), Some("forged-uid"));

    // Status flows up: the super kubelet runs the pod; the tenant pod reports Running with the super
    // pod's IP and node.
    let (tenant_web, super_web) = wait_for(
        "web-0 Running in tenant 1 with the super pod's IP",
        60,
        || {
            let (sup, t1, ns1) = (sup.clone(), t1.clone(), ns1.clone());
            async move {
                let tp = Api::<Pod>::namespaced(t1, "team").get("web-0").await?;
                let sp = Api::<Pod>::namespaced(sup, &ns1).get("web-0").await?;
                let running =
                    |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let ip = |p: &Pod| p.status.as_ref().and_then(|s| s.pod_ip.clone());
                // Status is written before the binding (one reconcile, two requests): wait for both.
                let bound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
                Ok((running(&tp)
                    && running(&sp)
                    && ip(&tp).is_some()
                    && ip(&tp) == ip(&sp)
                    && bound(&tp).is_some())
                .then_some((tp, sp)))
            }
        },
    )
    .await?;
    let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
    assert!(node(&super_web).is_some());
    assert_eq!(node(&tenant_web), node(&super_web), "node binding flows up");

    // A tenant delete removes the super pod.
    Api::<Pod>::namespaced(t1.clone(), "team")
        .delete("web-1", &DeleteParams::default().grace_period(0))
        .await?;
    wait_for("super web-1 gone", 60, || {
        let (sup, ns1) = (sup.clone(), ns1.clone());
        async move {
            Ok(Api::<Pod>::namespaced(sup, &ns1)
                .get_opt("web-1")
                .await?
                .is_none()
                .then_some(()))
        }
    })
    .await?;
    let left = Api::<Pod>::namespaced(sup.clone(), &ns1)
        .list(&Default::default())
        .await?;
    assert_eq!(left.items.len(), 2, "only web-1 was removed");

    // /metrics: the lag histogram is a real Prometheus histogram, source counters are there.
    let text = syncer.scrape().await?;
    assert!(
        text.contains("vc_syncer_sync_lag_seconds_bucket{"),
        "lag histogram buckets missing:\n{text}"
    );
    assert!(text.contains("le=\"+Inf\""));
    assert!(text.contains("# HELP vc_syncer_watch_events_total"));
    let events = metric_sum(&text, "vc_syncer_watch_events_total").unwrap_or(0.0);
    assert!(events >= 4.0, "watch events counted: {events}");
    assert_eq!(
        metric_sum(&text, "vc_syncer_tenant_up"),
        Some(2.0),
        "both VCs up"
    );

    // Graceful stop on SIGTERM.
    assert!(syncer.terminate(30)?, "syncer did not stop on SIGTERM");
    Ok(())
}
