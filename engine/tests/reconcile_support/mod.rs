//! Two test clusters (super and tenant), a view filled by hand from live reads, and the reconciler under test.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use syncer::log::View;
use syncer::naming::{cluster_key, super_namespace};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::reconcile::{Resources, SyncReconciler, TenantInfo, Tenants};
use syncer::record::{SUPER_CLUSTER, WorkKey};
use syncer::shard::{ReconcileError, Reconciler};
use testcluster::TestCluster;

/// A reconciler that never runs: the pipeline is only used for its view.
struct Idle;

impl Reconciler for Idle {
    fn reconcile(&self, _key: &WorkKey, _view: &syncer::log::View) -> Result<(), ReconcileError> {
        Ok(())
    }
}

/// Super + tenant clusters, a view, and a `SyncReconciler` for one tenant.
pub struct Env {
    pub super_cluster: TestCluster,
    pub tenant_cluster: TestCluster,
    pub super_client: kube::Client,
    pub tenant_client: kube::Client,
    pub info: TenantInfo,
    pub reconciler: Arc<SyncReconciler>,
    pub view: View,
    /// Requests other than GET made by the reconciler's clients (both clusters).
    pub writes: Arc<AtomicUsize>,
    pipeline: Option<Pipeline>,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take() {
            p.shutdown();
        }
    }
}

impl Env {
    /// Starts both clusters and registers the tenant.
    pub async fn start() -> Result<Env> {
        Self::start_with(|_| {}).await
    }

    /// Like [`Env::start`], with the tenant's description adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut TenantInfo)) -> Result<Env> {
        Self::start_full(adjust, &["Namespace", "Pod"]).await
    }

    /// Like [`Env::start`], with the given resources enabled (kind names; `start` enables Namespace and Pod).
    pub async fn start_with_resources(resources: &[&str]) -> Result<Env> {
        Self::start_full(|_| {}, resources).await
    }

    async fn start_full(adjust: impl FnOnce(&mut TenantInfo), resources: &[&str]) -> Result<Env> {
        let super_cluster = TestCluster::start().await.context("start super cluster")?;
        let tenant_cluster = TestCluster::start().await.context("start tenant cluster")?;
        let super_client = super_cluster.client().await?;
        let tenant_client = tenant_cluster.client().await?;
        let info = TenantInfo {
            cluster_key: cluster_key("team", "vc1", "0b6f3a0e-1f7e-4c62-9a51-0c2f3d4e5f60"),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            opaque_prefixes: vec!["opaque.example.com/".into()],
            transparent_prefixes: vec![],
            ..TenantInfo::default()
        };
        let mut info = info;
        adjust(&mut info);
        let writes = Arc::new(AtomicUsize::new(0));
        let tenants = Tenants::new();
        let counted_tenant = counting_client(tenant_cluster.kubeconfig_path(), &writes).await?;
        tenants.insert(info.clone(), counted_tenant);
        let counted_super = counting_client(super_cluster.kubeconfig_path(), &writes).await?;
        let reconciler = Arc::new(
            SyncReconciler::new(counted_super, tenants, tokio::runtime::Handle::current())
                .with_resources(Resources::from_names(resources)?),
        );
        let dir = tempfile::tempdir()?;
        let pipeline = Pipeline::start(PipelineConfig::new(dir.path()), Arc::new(Idle))?;
        let view = pipeline.view();
        Ok(Env {
            super_cluster,
            tenant_cluster,
            super_client,
            tenant_client,
            info,
            reconciler,
            view,
            writes,
            pipeline: Some(pipeline),
            _dir: dir,
        })
    }

    /// Writes (non-GET requests) the reconciler has made so far.
    pub fn write_count(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn key(&self) -> &str {
        &self.info.cluster_key
    }

    pub fn super_ns(&self, tenant_ns: &str) -> String {
        super_namespace(self.key(), tenant_ns)
    }

    pub fn tenant_pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.tenant_client.clone(), ns)
    }

    pub fn super_pods(&self, tenant_ns: &str) -> Api<Pod> {
        Api::namespaced(self.super_client.clone(), &self.super_ns(tenant_ns))
    }

    pub fn pod_key(&self, ns: &str, name: &str) -> WorkKey {
        WorkKey {
            cluster: self.key().to_owned(),
            kind: "Pod".into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    pub fn namespace_key(&self, ns: &str) -> WorkKey {
        WorkKey {
            cluster: self.key().to_owned(),
            kind: "Namespace".into(),
            namespace: ns.into(),
            name: ns.into(),
        }
    }

    /// What the sources would have put in the view by now: the live state of the tenant object of `key` and
    /// of its super counterpart (and, for a pod, its super namespace).
    pub async fn observe(&self, key: &WorkKey) -> Result<()> {
        let super_ns = self.super_ns(&key.namespace);
        match key.kind.as_str() {
            "Pod" => {
                let t = self.tenant_pods(&key.namespace).get_opt(&key.name).await?;
                record(&self.view, self.key(), "Pod", &key.namespace, &key.name, t)?;
                let s = self.super_pods(&key.namespace).get_opt(&key.name).await?;
                record(&self.view, SUPER_CLUSTER, "Pod", &super_ns, &key.name, s)?;
            }
            "Namespace" => {
                let t = Api::<Namespace>::all(self.tenant_client.clone())
                    .get_opt(&key.name)
                    .await?;
                record(&self.view, self.key(), "Namespace", "", &key.name, t)?;
            }
            other => bail!("unexpected kind {other}"),
        }
        let s = Api::<Namespace>::all(self.super_client.clone())
            .get_opt(&super_ns)
            .await?;
        record(&self.view, SUPER_CLUSTER, "Namespace", "", &super_ns, s)?;
        Ok(())
    }

    /// Observes, then runs the blocking reconcile on a blocking thread (as a shard would).
    pub async fn reconcile(&self, key: &WorkKey) -> Result<(), ReconcileError> {
        self.observe(key)
            .await
            .map_err(|e| ReconcileError::new("test_observe", format!("{e:#}")))?;
        self.reconcile_only(key).await
    }

    /// Runs the blocking reconcile without observing first (the view as it is).
    pub async fn reconcile_only(&self, key: &WorkKey) -> Result<(), ReconcileError> {
        let reconciler = Arc::clone(&self.reconciler);
        let view = self.view.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || reconciler.reconcile(&key, &view))
            .await
            .map_err(|e| ReconcileError::new("test_join", e.to_string()))?
    }

    /// Reconciles until a reconcile makes no write (at most `rounds` times).
    pub async fn settle(&self, key: &WorkKey, rounds: usize) -> Result<()> {
        for _ in 0..rounds {
            let before = self.write_count();
            self.reconcile(key).await?;
            if self.write_count() == before {
                return Ok(());
            }
        }
        bail!("{key:?} did not settle in {rounds} reconciles")
    }

    /// A fingerprint of both clusters' state: the resourceVersion of a fresh list of pods, namespaces and
    /// events in each (a list's resourceVersion is the store's current revision).
    pub async fn revisions(&self) -> Result<[String; 6]> {
        let rv = |list_rv: Option<String>| list_rv.unwrap_or_default();
        let lp = ListParams::default();
        Ok([
            rv(Api::<Pod>::all(self.super_client.clone())
                .list(&lp)
                .await?
                .metadata
                .resource_version),
            rv(Api::<Namespace>::all(self.super_client.clone())
                .list(&lp)
                .await?
                .metadata
                .resource_version),
            rv(Api::<Event>::all(self.super_client.clone())
                .list(&lp)
                .await?
                .metadata
                .resource_version),
            rv(Api::<Pod>::all(self.tenant_client.clone())
                .list(&lp)
                .await?
                .metadata
                .resource_version),
            rv(Api::<Namespace>::all(self.tenant_client.clone())
                .list(&lp)
                .await?
                .metadata
                .resource_version),
            rv(Api::<Event>::all(self.tenant_client.clone())
                .list(&lp)
                .await?
                .metadata
                .resource_version),
        ])
    }

    /// Creates a tenant namespace and syncs it down.
    pub async fn tenant_namespace(&self, name: &str) -> Result<()> {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(self.tenant_client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        self.reconcile(&self.namespace_key(name)).await?;
        Ok(())
    }

    /// Creates a tenant pod from JSON (namespace taken from the JSON).
    pub async fn create_tenant_pod(&self, pod: serde_json::Value) -> Result<Pod> {
        let pod: Pod = serde_json::from_value(pod)?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        Ok(self
            .tenant_pods(&ns)
            .create(&PostParams::default(), &pod)
            .await?)
    }

    /// Acts as the super scheduler and kubelet: binds the super pod to `node` and reports it running.
    pub async fn run_super_pod(&self, tenant_ns: &str, name: &str, node: &str) -> Result<Pod> {
        let api = self.super_pods(tenant_ns);
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
        api.create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await?;
        let mut pod = api.get(name).await?;
        pod.status = Some(serde_json::from_value(json!({
            "phase": "Running",
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}],
            "hostIP": "192.168.10.2",
            "startTime": "2026-01-01T00:00:00Z",
            "qosClass": "BestEffort",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}
            ],
            "containerStatuses": [{"name": "app", "image": "nginx:1.27", "imageID": "sha256:abc",
                "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]
        }))?);
        Ok(api
            .replace_status(name, &PostParams::default(), &pod)
            .await?)
    }

    /// Warning events in a tenant namespace about `name`.
    pub async fn tenant_events(&self, ns: &str, name: &str) -> Result<Vec<Event>> {
        let events = Api::<Event>::namespaced(self.tenant_client.clone(), ns)
            .list(&ListParams::default())
            .await?;
        Ok(events
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect())
    }
}

/// A client for the cluster of `kubeconfig` that counts every request other than GET in `writes`.
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

fn record<K: serde::Serialize>(
    view: &View,
    cluster: &str,
    kind: &str,
    ns: &str,
    name: &str,
    obj: Option<K>,
) -> Result<()> {
    let value = obj.map(serde_json::to_value).transpose()?;
    view.record_write(cluster, kind, ns, name, value.as_ref())?;
    Ok(())
}

/// Polls `f` until it returns `Some` (at most 100 × 50 ms).
pub async fn eventually<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..100 {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("condition not reached in 5 s")
}

/// A plain tenant pod.
pub fn nginx(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    })
}
