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
use syncer::reconcile::{Resources, SyncReconciler, TenantInfo, Tenants};
use syncer::record::SUPER_CLUSTER;
use syncer::source::{self, ClusterRole, PipelineLog, ServedTenants, SourceConfig, WatchTarget};
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

/// The two clusters and the tenant's identity.
struct Clusters {
    super_cluster: TestCluster,
    tenant_cluster: TestCluster,
    key: String,
}

impl Clusters {
    async fn start() -> Result<Clusters> {
        let super_cluster =
            TestCluster::start_with(ClusterOptions::default().with_kubelet_nodes(2))
                .await
                .context("super cluster")?;
        let tenant_cluster = TestCluster::start().await.context("tenant cluster")?;
        let key = cluster_key("team", "vc1", "6d1c1c52-5d0c-4f6e-b3b0-7f0d1d2e3f40");
        Ok(Clusters {
            super_cluster,
            tenant_cluster,
            key,
        })
    }
}

/// A running syncer (pipeline with the `SyncReconciler`, and sources) with its data in `data_dir`; its
/// clients count the write requests they send in `writes`.
struct Running {
    pipeline: Pipeline,
    sources: source::Sources,
    stop: watch::Sender<bool>,
}

impl Running {
    async fn start(c: &Clusters, data_dir: &Path, writes: &Arc<AtomicUsize>) -> Result<Running> {
        let info = TenantInfo {
            cluster_key: c.key.clone(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        };
        let tenants = Tenants::new();
        tenants.insert(
            info,
            counting_client(c.tenant_cluster.kubeconfig_path(), writes).await?,
        );
        // Namespaces and pods only: the write counts below are about them.
        let resources = Resources::from_names(&["Namespace", "Pod"])?;
        let reconciler = SyncReconciler::new(
            counting_client(c.super_cluster.kubeconfig_path(), writes).await?,
            tenants,
            tokio::runtime::Handle::current(),
        )
        .with_resources(resources.clone());
        let cfg = PipelineConfig {
            shards: 2,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(500),
            ..PipelineConfig::new(data_dir)
        };
        let pipeline = Pipeline::start(cfg, Arc::new(reconciler))?;
        let kinds = resources.kinds();
        let kind_names: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
        let clusters = vec![SUPER_CLUSTER.to_owned(), c.key.clone()];
        let log = PipelineLog::new(&pipeline, &clusters, &kind_names)?;
        let targets = vec![
            WatchTarget {
                role: ClusterRole::Super {
                    tenants: ServedTenants::new([c.key.clone()]),
                },
                client: c.super_cluster.client().await?,
                vc_label: None,
            },
            WatchTarget {
                role: ClusterRole::Tenant {
                    cluster_key: c.key.clone(),
                },
                client: c.tenant_cluster.client().await?,
                vc_label: Some("vc1".into()),
            },
        ];
        let (stop, stop_rx) = watch::channel(false);
        let sources = source::spawn(targets, &kinds, log, SourceConfig::default(), stop_rx);
        Ok(Running {
            pipeline,
            sources,
            stop,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.sources.join().await;
        self.pipeline.shutdown();
    }
}

/// Waits until `writes` stops moving (1.5 s without a write), for at most 20 s; returns the count.
async fn quiet(writes: &Arc<AtomicUsize>) -> Result<usize> {
    within(20, "writes settle", || async {
        let before = writes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok((writes.load(Ordering::SeqCst) == before).then_some(before))
    })
    .await
}

/// Creates tenant namespace `web` with `n` pods and waits until all are bound and Running in the tenant.
async fn run_pods(c: &Clusters, n: usize) -> Result<()> {
    let tenant = c.tenant_cluster.client().await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "web"}}))?;
    Api::<Namespace>::all(tenant.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let tenant_pods: Api<Pod> = Api::namespaced(tenant, "web");
    for i in 0..n {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("app-{i}"), "labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
        }))?;
        tenant_pods.create(&PostParams::default(), &pod).await?;
    }
    within(30, "tenant pods running", || async {
        let pods = tenant_pods.list(&Default::default()).await?;
        let running = pods.items.iter().filter(|p| {
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            bound && phase == Some("Running")
        });
        Ok((running.count() == n).then_some(()))
    })
    .await
}

/// (name, uid, resourceVersion) of every pod in `api`, sorted.
async fn pod_versions(api: &Api<Pod>) -> Result<Vec<(String, String, String)>> {
    let mut out: Vec<_> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|p| {
            let m = p.metadata;
            (
                m.name.unwrap_or_default(),
                m.uid.unwrap_or_default(),
                m.resource_version.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_go_down_run_report_back_and_go_away() -> Result<()> {
    let c = Clusters::start().await?;
    let dir = tempfile::tempdir()?;
    let writes = Arc::new(AtomicUsize::new(0));
    let running = Running::start(&c, dir.path(), &writes).await?;
    run_pods(&c, 5).await?;
    let key = c.key.clone();
    let tenant = c.tenant_cluster.client().await?;
    let super_client = c.super_cluster.client().await?;
    let tenant_pods: Api<Pod> = Api::namespaced(tenant.clone(), "web");
    let super_pods: Api<Pod> = Api::namespaced(super_client.clone(), &super_namespace(&key, "web"));
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
    let settled = quiet(&writes).await?;
    // Namespace create, then per pod: create, bind, the metadata update after the bind, and one status copy
    // per super status change observed (how many of those the simulator's kubelet makes visible depends on
    // timing: 31 or 32 in total were both seen).
    assert!(
        settled <= 1 + 5 * 7,
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

    // The tenant deletes the namespace: the super namespace goes as well.
    let namespaces: Api<Namespace> = Api::all(super_client.clone());
    let super_ns = super_namespace(&key, "web");
    assert!(namespaces.get_opt(&super_ns).await?.is_some());
    Api::<Namespace>::all(tenant.clone())
        .delete("web", &DeleteParams::default())
        .await?;
    within(30, "super namespace gone", || async {
        Ok(namespaces.get_opt(&super_ns).await?.is_none().then_some(()))
    })
    .await?;

    running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_restart_changes_nothing_and_deletes_nothing() -> Result<()> {
    let c = Clusters::start().await?;
    let writes = Arc::new(AtomicUsize::new(0));
    let first_dir = tempfile::tempdir()?;
    let first = Running::start(&c, first_dir.path(), &writes).await?;
    run_pods(&c, 5).await?;
    quiet(&writes).await?;
    first.stop().await;

    let tenant_pods: Api<Pod> = Api::namespaced(c.tenant_cluster.client().await?, "web");
    let super_pods: Api<Pod> = Api::namespaced(
        c.super_cluster.client().await?,
        &super_namespace(&c.key, "web"),
    );
    let before = (
        pod_versions(&tenant_pods).await?,
        pod_versions(&super_pods).await?,
    );

    // A new syncer with an empty data directory: its view fills from relists in whatever order the two
    // clusters answer, so tenant pods are seen before their super pods and the other way round.
    let fresh_dir = tempfile::tempdir()?;
    let writes_after = Arc::new(AtomicUsize::new(0));
    let second = Running::start(&c, fresh_dir.path(), &writes_after).await?;
    // Every listed object (namespace + 5 pods on each side) has been through a reconcile.
    within(20, "relisted objects reconciled", || async {
        let stats = second.pipeline.stats();
        Ok((stats.applied >= 12 && stats.backlog_records == 0).then_some(()))
    })
    .await?;
    let sent = quiet(&writes_after).await?;
    second.stop().await;

    let after = (
        pod_versions(&tenant_pods).await?,
        pod_versions(&super_pods).await?,
    );
    assert_eq!(
        after, before,
        "no object was changed, deleted or re-created"
    );
    // At most one refused create per object whose super copy the new view had not seen yet.
    assert!(sent <= 1 + 5, "{sent} write requests after a cold restart");
    Ok(())
}
