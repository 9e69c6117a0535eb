//! Cluster-wide upward sync end to end: a super cluster with the simulator's scheduler and kubelet, two
//! tenants, sources → log → shards → `SyncReconciler` with the default resources, and the virtual-node
//! lifecycle task (short period and grace). Virtual nodes and leases, events, public objects and PVs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, PersistentVolume, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use syncer::naming::{cluster_key, super_namespace};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::reconcile::{Resources, SyncReconciler, TenantInfo, Tenants};
use syncer::record::SUPER_CLUSTER;
use syncer::source::{self, ClusterRole, PipelineLog, ServedTenants, SourceConfig, WatchTarget};
use syncer::upward::lifecycle::{self, LifecycleConfig};
use testcluster::{ClusterOptions, TestCluster};
use tokio::sync::watch;

/// The vn-agent port the syncer is configured with (not the default, so the configuration is what is seen).
const VN_AGENT_PORT: i32 = 10777;

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs` seconds.
async fn within<T, F, Fut>(secs: u64, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..secs * 10 {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not reached in {secs} s")
}

struct Tenant {
    cluster: TestCluster,
    key: String,
}

/// A super cluster (2 simulated nodes), two tenants, and a running syncer.
struct World {
    sup: TestCluster,
    tenants: Vec<Tenant>,
    pipeline: Option<Pipeline>,
    sources: Option<source::Sources>,
    _lifecycle: lifecycle::Lifecycle,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start(grace: Duration) -> Result<World> {
        let sup = TestCluster::start_with(ClusterOptions::default().with_kubelet_nodes(2))
            .await
            .context("super cluster")?;
        let mut tenants = Vec::new();
        for (i, uid) in [
            "2b1c1c52-5d0c-4f6e-b3b0-7f0d1d2e3f41",
            "2b1c1c52-5d0c-4f6e-b3b0-7f0d1d2e3f42",
        ]
        .into_iter()
        .enumerate()
        {
            tenants.push(Tenant {
                cluster: TestCluster::start().await.context("tenant cluster")?,
                key: cluster_key("team", &format!("vc{i}"), uid),
            });
        }
        let registry = Tenants::new();
        for (i, t) in tenants.iter().enumerate() {
            registry.insert(
                TenantInfo {
                    cluster_key: t.key.clone(),
                    vc_name: format!("vc{i}"),
                    vc_namespace: "team".into(),
                    ..TenantInfo::default()
                },
                t.cluster.client().await?,
            );
        }
        let resources = Resources::defaults().with_vn_agent_port(VN_AGENT_PORT);
        let reconciler = SyncReconciler::new(
            sup.client().await?,
            registry.clone(),
            tokio::runtime::Handle::current(),
        )
        .with_resources(resources.clone());
        let dir = tempfile::tempdir()?;
        let cfg = PipelineConfig {
            shards: 2,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(500),
            ..PipelineConfig::new(dir.path())
        };
        let pipeline = Pipeline::start(cfg, Arc::new(reconciler))?;
        let kinds = resources.kinds();
        let kind_names: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
        let mut clusters = vec![SUPER_CLUSTER.to_owned()];
        clusters.extend(tenants.iter().map(|t| t.key.clone()));
        let log = PipelineLog::new(&pipeline, &clusters, &kind_names)?;
        let mut targets = vec![WatchTarget {
            role: ClusterRole::Super {
                tenants: ServedTenants::new(tenants.iter().map(|t| t.key.clone())),
            },
            client: sup.client().await?,
            vc_label: None,
        }];
        for t in &tenants {
            targets.push(WatchTarget {
                role: ClusterRole::Tenant {
                    cluster_key: t.key.clone(),
                },
                client: t.cluster.client().await?,
                vc_label: Some(t.key.clone()),
            });
        }
        let (stop, stop_rx) = watch::channel(false);
        let sources = source::spawn(
            targets,
            &kinds,
            log,
            SourceConfig::default().kinds(kinds.clone()),
            stop_rx.clone(),
        );
        let lifecycle = lifecycle::spawn(
            LifecycleConfig {
                period: Duration::from_millis(300),
                gc_grace: grace,
            },
            pipeline.view(),
            registry,
            stop_rx,
        );
        Ok(World {
            sup,
            tenants,
            pipeline: Some(pipeline),
            sources: Some(sources),
            _lifecycle: lifecycle,
            stop,
            _dir: dir,
        })
    }

    async fn tenant_client(&self, i: usize) -> Result<kube::Client> {
        Ok(self.tenants[i].cluster.client().await?)
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(s) = self.sources.take() {
            s.join().await;
        }
        if let Some(p) = self.pipeline.take() {
            let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
        }
    }
}

/// Creates namespace `ns` and pod `name` in tenant `client`; waits until the pod is bound and Running.
async fn run_pod(client: &kube::Client, ns: &str, name: &str) -> Result<Pod> {
    let nss: Api<Namespace> = Api::all(client.clone());
    if nss.get_opt(ns).await?.is_none() {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    within(60, "tenant pod running", || async {
        let p = pods.get(name).await?;
        let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        Ok((bound && running).then_some(p))
    })
    .await
}

fn renew_time(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_nodes_leases_events_and_collection() -> Result<()> {
    let w = World::start(Duration::from_secs(2)).await?;
    let a = w.tenant_client(0).await?;
    let b = w.tenant_client(1).await?;

    // A tenant pod runs: its tenant gets a virtual node for the super node, with a lease being renewed.
    let pod = run_pod(&a, "web", "app-0").await?;
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .context("bound")?;
    let nodes_a: Api<Node> = Api::all(a.clone());
    let vn = within(60, "virtual node", || async {
        Ok(nodes_a.get_opt(&node_name).await?)
    })
    .await?;
    let labels = vn.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("tenancy.x-k8s.io/virtualnode")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&node_name));
    let spec = vn.spec.clone().unwrap_or_default();
    assert_eq!(spec.unschedulable, Some(true));
    assert!(
        spec.taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unschedulable" && t.effect == "NoSchedule")
    );
    let status = vn.status.clone().unwrap_or_default();
    assert_eq!(
        status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|k| k.port),
        Some(VN_AGENT_PORT)
    );
    assert!(status.capacity.is_some_and(|c| c.contains_key("cpu")));
    assert!(
        status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    // Tenant B runs nothing: no virtual node.
    assert!(
        Api::<Node>::all(b.clone())
            .list(&Default::default())
            .await?
            .items
            .is_empty()
    );

    let leases: Api<Lease> = Api::namespaced(a.clone(), "kube-node-lease");
    let first = within(60, "node lease", || async {
        Ok(leases.get_opt(&node_name).await?)
    })
    .await?;
    assert_eq!(
        first
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some(node_name.as_str())
    );
    let t0 = renew_time(&first).context("renewTime")?;
    within(60, "lease renewed", || async {
        let l = leases.get(&node_name).await?;
        Ok((renew_time(&l).as_deref() != Some(t0.as_str())).then_some(()))
    })
    .await?;

    // An event about the super pod shows up in the tenant namespace, about the tenant pod.
    let key_a = &w.tenants[0].key;
    let super_ns = super_namespace(key_a, "web");
    let sup = w.sup.client().await?;
    let super_pod = Api::<Pod>::namespaced(sup.clone(), &super_ns)
        .get("app-0")
        .await?;
    let super_events: Api<Event> = Api::namespaced(sup.clone(), &super_ns);
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "app-0.1800a1b2c3d4e5f6"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": super_ns, "name": "app-0",
                           "uid": super_pod.metadata.uid},
        "reason": "Pulled", "message": format!("Pulled image for {super_ns}/app-0"), "type": "Normal",
        "count": 1, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "kubelet", "host": node_name}
    }))?;
    super_events.create(&PostParams::default(), &ev).await?;
    let tenant_events: Api<Event> = Api::namespaced(a.clone(), "web");
    let copy = within(60, "tenant event", || async {
        Ok(tenant_events.get_opt("app-0.1800a1b2c3d4e5f6").await?)
    })
    .await?;
    assert_eq!(copy.involved_object.uid, pod.metadata.uid);
    assert_eq!(copy.involved_object.namespace.as_deref(), Some("web"));
    assert_eq!(copy.message.as_deref(), Some("Pulled image for web/app-0"));
    // A repeat updates the count of the same tenant event.
    super_events
        .patch(
            "app-0.1800a1b2c3d4e5f6",
            &PatchParams::default(),
            &Patch::Merge(json!({"count": 3, "lastTimestamp": "2026-01-01T00:05:00Z"})),
        )
        .await?;
    within(60, "tenant event count", || async {
        let e = tenant_events.get("app-0.1800a1b2c3d4e5f6").await?;
        Ok((e.count == Some(3)).then_some(()))
    })
    .await?;
    let pulled = tenant_events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Pulled"))
        .count();
    assert_eq!(pulled, 1, "repeats are not duplicated");
    // An event in a namespace that is no tenant's is not copied anywhere.
    let stray: Event = serde_json::from_value(json!({
        "metadata": {"name": "stray.1"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "app-0"},
        "reason": "Stray", "message": "x", "type": "Normal"
    }))?;
    Api::<Event>::namespaced(sup.clone(), "default")
        .create(&PostParams::default(), &stray)
        .await?;

    // The pod goes: after the grace period the virtual node and its lease go too.
    Api::<Pod>::namespaced(a.clone(), "web")
        .delete("app-0", &DeleteParams::default().grace_period(0))
        .await?;
    within(60, "virtual node collected", || async {
        Ok(nodes_a.get_opt(&node_name).await?.is_none().then_some(()))
    })
    .await?;
    within(60, "lease collected", || async {
        Ok(leases.get_opt(&node_name).await?.is_none().then_some(()))
    })
    .await?;
    for client in [&a, &b] {
        let all: Api<Event> = Api::all(client.clone());
        assert!(
            all.list(&Default::default())
                .await?
                .items
                .iter()
                .all(|e| e.reason.as_deref() != Some("Stray"))
        );
    }
    w.stop().await;
    Ok(())
}

async fn storage_class(
    api: &Api<StorageClass>,
    name: &str,
    public: bool,
    provisioner: &str,
) -> Result<()> {
    let mut labels = serde_json::Map::new();
    if public {
        labels.insert("tenancy.x-k8s.io/super.public".into(), json!("true"));
    }
    let sc: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "provisioner": provisioner, "reclaimPolicy": "Delete"
    }))?;
    api.create(&PostParams::default(), &sc).await?;
    Ok(())
}

fn marked(sc: &StorageClass) -> bool {
    sc.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("tenancy.x-k8s.io/super.uid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_objects_reach_every_tenant_and_leave_when_unlabelled() -> Result<()> {
    let w = World::start(Duration::from_secs(120)).await?;
    let sup = w.sup.client().await?;
    let super_sc: Api<StorageClass> = Api::all(sup.clone());
    let tenant_sc: Vec<Api<StorageClass>> = vec![
        Api::all(w.tenant_client(0).await?),
        Api::all(w.tenant_client(1).await?),
    ];
    // Tenant 1 has its own "shared" class: it must be left alone.
    storage_class(&tenant_sc[1], "shared", false, "tenant.example.com").await?;
    storage_class(&super_sc, "fast", true, "ebs.csi.aws.com").await?;
    storage_class(&super_sc, "shared", true, "super.example.com").await?;
    storage_class(&super_sc, "private", false, "ebs.csi.aws.com").await?;

    for api in &tenant_sc {
        let sc = within(60, "public class in tenant", || async {
            Ok(api.get_opt("fast").await?)
        })
        .await?;
        assert_eq!(sc.provisioner, "ebs.csi.aws.com");
        assert!(marked(&sc));
    }
    let shared0 = within(60, "shared class in tenant 0", || async {
        Ok(tenant_sc[0].get_opt("shared").await?)
    })
    .await?;
    assert!(marked(&shared0));
    let own = tenant_sc[1].get("shared").await?;
    assert_eq!(own.provisioner, "tenant.example.com");
    assert!(!marked(&own));

    // The label goes: the copies go; the tenant's own object stays.
    super_sc
        .patch(
            "fast",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tenancy.x-k8s.io/super.public": null}}})),
        )
        .await?;
    super_sc.delete("shared", &DeleteParams::default()).await?;
    for api in &tenant_sc {
        within(60, "public class withdrawn", || async {
            Ok(api.get_opt("fast").await?.is_none().then_some(()))
        })
        .await?;
    }
    within(60, "shared copy deleted", || async {
        Ok(tenant_sc[0]
            .get_opt("shared")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    assert_eq!(
        tenant_sc[1].get("shared").await?.provisioner,
        "tenant.example.com"
    );
    for api in &tenant_sc {
        assert!(api.get_opt("private").await?.is_none());
    }
    w.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_volumes_appear_in_their_tenant_only() -> Result<()> {
    let w = World::start(Duration::from_secs(120)).await?;
    let a = w.tenant_client(0).await?;
    let b = w.tenant_client(1).await?;
    // The tenant namespace (and so its super namespace) exists.
    Api::<Namespace>::all(a.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "db"}}))?,
        )
        .await?;
    let super_ns = super_namespace(&w.tenants[0].key, "db");
    let sup = w.sup.client().await?;
    within(60, "super namespace", || async {
        Ok(Api::<Namespace>::all(sup.clone())
            .get_opt(&super_ns)
            .await?)
    })
    .await?;
    let pvs: Api<PersistentVolume> = Api::all(sup.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "pv-data"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": "/tmp/x"},
                 "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": super_ns,
                              "name": "data", "uid": "super-claim"}}
    }))?;
    pvs.create(&PostParams::default(), &pv).await?;
    let tenant_pvs: Api<PersistentVolume> = Api::all(a.clone());
    let copy = within(60, "tenant PV", || async {
        Ok(tenant_pvs.get_opt("pv-data").await?)
    })
    .await?;
    let claim = copy
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.clone())
        .context("claimRef")?;
    assert_eq!(claim.namespace.as_deref(), Some("db"));
    assert_eq!(claim.name.as_deref(), Some("data"));
    assert_eq!(
        copy.spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref()),
        Some("Retain")
    );
    assert!(
        Api::<PersistentVolume>::all(b.clone())
            .get_opt("pv-data")
            .await?
            .is_none()
    );

    pvs.delete("pv-data", &DeleteParams::default()).await?;
    within(60, "tenant PV removed", || async {
        Ok(tenant_pvs.get_opt("pv-data").await?.is_none().then_some(()))
    })
    .await?;
    w.stop().await;
    Ok(())
}
