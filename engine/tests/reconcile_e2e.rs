//! The whole loop: sources (super + tenant) → log → shards → `SyncReconciler`, against two API servers, the
//! super one with a scheduler and kubelet. Pods go down, run, report back up, and go away; once everything is
//! in sync the syncer stops writing (its own writes' watch events cause no further writes).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use syncer::naming::{cluster_key, super_namespace};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::reconcile::{SyncReconciler, TenantInfo, Tenants};
use syncer::record::SUPER_CLUSTER;
use syncer::source::{self, ClusterRole, PipelineLog, SourceConfig, WatchTarget};
use testcluster::{ClusterOptions, TestCluster};
use tokio::sync::watch;

/// A client that counts every request other than GET (and watch/list, which are GETs).
async fn counting_client(kubeconfig: &Path, writes: &Arc<AtomicUsize>) -> Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await?;
    let writes = Arc::clone(writes);
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        if req.method() != http::Method::GET {
            writes.fetch_add(1, Ordering::SeqCst);
        }
        req
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
async fn within<T, F, Fut>(secs: u64, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..secs * 20 {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what}: not reached in {secs} s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_go_down_run_report_back_and_go_away() -> Result<()> {
    let super_cluster = TestCluster::start_with(ClusterOptions::default().with_kubelet_nodes(2))
        .await
        .context("super cluster")?;
    let tenant_cluster = TestCluster::start().await.context("tenant cluster")?;
    let key = cluster_key("team", "vc1", "6d1c1c52-5d0c-4f6e-b3b0-7f0d1d2e3f40");
    let info = TenantInfo {
        cluster_key: key.clone(),
        vc_name: "vc1".into(),
        vc_namespace: "team".into(),
        ..TenantInfo::default()
    };

    let writes = Arc::new(AtomicUsize::new(0));
    let tenants = Tenants::new();
    tenants.insert(
        info,
        counting_client(tenant_cluster.kubeconfig_path(), &writes).await?,
    );
    let reconciler = SyncReconciler::new(
        counting_client(super_cluster.kubeconfig_path(), &writes).await?,
        tenants,
        tokio::runtime::Handle::current(),
    );
    let dir = tempfile::tempdir()?;
    let cfg = PipelineConfig {
        shards: 2,
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        ..PipelineConfig::new(dir.path())
    };
    let pipeline = Pipeline::start(cfg, Arc::new(reconciler))?;

    let kinds = source::synced_kinds();
    let kind_names: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
    let clusters = vec![SUPER_CLUSTER.to_owned(), key.clone()];
    let log = PipelineLog::new(&pipeline, &clusters, &kind_names)?;
    let targets = vec![
        WatchTarget {
            role: ClusterRole::Super {
                tenants: Arc::new([key.clone()].into_iter().collect()),
            },
            client: super_cluster.client().await?,
            vc_label: None,
        },
        WatchTarget {
            role: ClusterRole::Tenant {
                cluster_key: key.clone(),
            },
            client: tenant_cluster.client().await?,
            vc_label: Some("vc1".into()),
        },
    ];
    let (stop, stop_rx) = watch::channel(false);
    let sources = source::spawn(targets, &kinds, log, SourceConfig::default(), stop_rx);

    let tenant = tenant_cluster.client().await?;
    let super_client = super_cluster.client().await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "web"}}))?;
    Api::<Namespace>::all(tenant.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let tenant_pods: Api<Pod> = Api::namespaced(tenant.clone(), "web");
    let super_pods: Api<Pod> = Api::namespaced(super_client.clone(), &super_namespace(&key, "web"));
    for i in 0..5 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("app-{i}"), "labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
        }))?;
        tenant_pods.create(&PostParams::default(), &pod).await?;
    }

    // Down, run by the super kubelet, and back up: every tenant pod bound and Running.
    within(30, "tenant pods running", || async {
        let pods = tenant_pods.list(&Default::default()).await?;
        let running = pods.items.iter().filter(|p| {
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            bound && phase == Some("Running")
        });
        Ok((running.count() == 5).then_some(()))
    })
    .await?;
    for i in 0..5 {
        let name = format!("app-{i}");
        let s = super_pods.get(&name).await?;
        let t = tenant_pods.get(&name).await?;
        assert_eq!(
            s.spec.as_ref().and_then(|s| s.node_name.clone()),
            t.spec.as_ref().and_then(|s| s.node_name.clone())
        );
        assert_eq!(
            s.status.as_ref().and_then(|s| s.pod_ip.clone()),
            t.status.as_ref().and_then(|s| s.pod_ip.clone())
        );
    }

    // Quiet: no write for a while once in sync (no update loop on our own writes' events).
    let settled = within(20, "writes settle", || async {
        let before = writes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok((writes.load(Ordering::SeqCst) == before).then_some(before))
    })
    .await?;
    // Namespace create, then per pod: create, bind, and one status copy per super status change (a few).
    assert!(
        settled <= 1 + 5 * 6,
        "{settled} writes to sync 1 namespace and 5 pods"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        writes.load(Ordering::SeqCst),
        settled,
        "an in-sync system keeps writing"
    );

    // The tenant deletes its pods: super pods go, then the tenant pods finish.
    for i in 0..5 {
        tenant_pods
            .delete(&format!("app-{i}"), &DeleteParams::default())
            .await?;
    }
    within(30, "pods gone on both sides", || async {
        let t = tenant_pods.list(&Default::default()).await?.items.len();
        let s = super_pods.list(&Default::default()).await?.items.len();
        Ok((t == 0 && s == 0).then_some(()))
    })
    .await?;

    let _ = stop.send(true);
    sources.join().await;
    pipeline.shutdown();
    Ok(())
}
