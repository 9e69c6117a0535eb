//! The embedded default: what `syncer` runs without `--super-kubeconfig`.
//!
//! It starts in-process simulated API servers (`apisim`): one super cluster with the simulator's built-in
//! scheduler + kubelet (3 nodes), and N tenant clusters. It writes their kubeconfigs to
//! `<data-dir>/kubeconfigs/` (`super.yaml`, `vc-1.yaml`, ...) so an operator can run
//! `kubectl --kubeconfig <data-dir>/kubeconfigs/vc-1.yaml get pods -A` while it runs, creates sample
//! workloads in the tenants (two namespaces with three pods each) and, while the syncer runs, keeps a
//! little churn going (one pod created and one deleted every couple of seconds) so the sync is visible.
//!
//! The simulated clusters live only as long as the process, so the embedded log does too: it lives in
//! `<data-dir>/embedded-log/` and is wiped at start (resume points of a previous run would name
//! resourceVersions of servers that no longer exist).

use std::path::{Path, PathBuf};
use std::time::Duration;

use apisim::{KubeletConfig, SimConfig, Simulator};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

use crate::config::{TenantSpec, derived_uid};
use crate::naming;

/// Errors of the embedded default.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// A simulator did not start.
    #[error("failed to start simulated cluster {name}")]
    Start {
        /// Which cluster.
        name: String,
        /// Cause.
        #[source]
        source: apisim::SimError,
    },
    /// A directory or kubeconfig could not be written.
    #[error("failed to write {path}")]
    Write {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A request to a simulated cluster failed.
    #[error("failed to {step}")]
    Api {
        /// What was being done.
        step: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// A sample object could not be built.
    #[error("failed to build a sample object")]
    Build(#[source] serde_json::Error),
}

/// Sample namespaces created in every tenant.
pub const SAMPLE_NAMESPACES: &[&str] = &["web", "batch"];
/// Sample pods per sample namespace.
pub const SAMPLE_PODS: usize = 3;

/// The simulated clusters of the embedded default.
pub struct Embedded {
    /// The super cluster (built-in kubelet on).
    pub super_cluster: Simulator,
    /// Kubeconfig of the super cluster.
    pub super_kubeconfig: PathBuf,
    /// The tenants: identity (kubeconfig path included) and server.
    pub tenants: Vec<(TenantSpec, Simulator)>,
    /// The log directory the syncer must use (wiped at start).
    pub log_dir: PathBuf,
}

impl Embedded {
    /// Starts one super cluster (3 simulated nodes) and `tenants` tenant clusters, writes their kubeconfigs
    /// under `<data_dir>/kubeconfigs/` and wipes `<data_dir>/embedded-log/`.
    pub async fn start(data_dir: &Path, tenants: usize) -> Result<Self, EmbeddedError> {
        let kube_dir = data_dir.join("kubeconfigs");
        let log_dir = data_dir.join("embedded-log");
        if log_dir.exists() {
            std::fs::remove_dir_all(&log_dir).map_err(|source| EmbeddedError::Write {
                path: log_dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(&kube_dir).map_err(|source| EmbeddedError::Write {
            path: kube_dir.clone(),
            source,
        })?;
        let super_cluster = Simulator::start(SimConfig {
            kubelet: Some(KubeletConfig {
                nodes: 3,
                ..KubeletConfig::default()
            }),
            ..SimConfig::default()
        })
        .await
        .map_err(|source| EmbeddedError::Start {
            name: "super".into(),
            source,
        })?;
        let super_kubeconfig = kube_dir.join("super.yaml");
        write(&super_kubeconfig, &super_cluster.kubeconfig_yaml("super"))?;
        let mut list = Vec::with_capacity(tenants);
        for i in 1..=tenants {
            let name = format!("vc-{i}");
            let sim = Simulator::start(SimConfig::default())
                .await
                .map_err(|source| EmbeddedError::Start {
                    name: name.clone(),
                    source,
                })?;
            let path = kube_dir.join(format!("{name}.yaml"));
            write(&path, &sim.kubeconfig_yaml(&name))?;
            let spec = TenantSpec {
                uid: derived_uid("default", &name),
                name,
                namespace: "default".into(),
                kubeconfig: path,
            };
            list.push((spec, sim));
        }
        Ok(Self {
            super_cluster,
            super_kubeconfig,
            tenants: list,
            log_dir,
        })
    }

    /// The tenant specs (for the syncer).
    pub fn specs(&self) -> Vec<TenantSpec> {
        self.tenants.iter().map(|(s, _)| s.clone()).collect()
    }

    /// Stops every simulator.
    pub async fn shutdown(self) {
        for (_, sim) in self.tenants {
            sim.shutdown().await;
        }
        self.super_cluster.shutdown().await;
    }
}

fn write(path: &Path, text: &str) -> Result<(), EmbeddedError> {
    std::fs::write(path, text).map_err(|source| EmbeddedError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn api_err(step: String) -> impl FnOnce(kube::Error) -> EmbeddedError {
    move |source| EmbeddedError::Api { step, source }
}

/// A sample pod.
pub fn sample_pod(namespace: &str, name: &str) -> Result<Pod, EmbeddedError> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": namespace}},
        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .map_err(EmbeddedError::Build)
}

/// Creates the sample namespaces and pods in one tenant. Returns the number of pods created.
pub async fn create_sample_workload(client: &kube::Client) -> Result<usize, EmbeddedError> {
    let mut pods = 0;
    for ns in SAMPLE_NAMESPACES {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))
            .map_err(EmbeddedError::Build)?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .map_err(api_err(format!("create namespace {ns}")))?;
        let api = Api::<Pod>::namespaced(client.clone(), ns);
        for i in 0..SAMPLE_PODS {
            let name = format!("{ns}-{i}");
            api.create(&PostParams::default(), &sample_pod(ns, &name)?)
                .await
                .map_err(api_err(format!("create pod {ns}/{name}")))?;
            pods += 1;
        }
    }
    Ok(pods)
}

/// Keeps a little churn going until `stop`: every `every`, in the next tenant (round robin), creates one
/// pod and deletes the oldest churn pod once three exist. Errors are logged, not fatal.
pub async fn churn(clients: Vec<kube::Client>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut n: u64 = 0;
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    while !clients.is_empty() {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() { return; }
            }
        }
        let idx = usize::try_from(n).unwrap_or(0) % clients.len();
        let api = Api::<Pod>::namespaced(clients[idx].clone(), "web");
        let round = n / clients.len() as u64;
        let name = format!("churn-{round}");
        match sample_pod("web", &name) {
            Ok(pod) => {
                if let Err(error) = api.create(&PostParams::default(), &pod).await {
                    tracing::debug!(%error, "churn create failed");
                }
            }
            Err(error) => tracing::debug!(%error, "churn pod"),
        }
        if round >= 3 {
            let old = format!("churn-{}", round - 3);
            if let Err(error) = api.delete(&old, &DeleteParams::default()).await {
                tracing::debug!(%error, "churn delete failed");
            }
        }
        n += 1;
    }
}

/// Pod counts of the embedded clusters, for the status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodCounts {
    /// Pods in all tenants.
    pub tenant_pods: usize,
    /// Tenant pods that report Running (status flowed back up).
    pub tenant_running: usize,
    /// Pods in the super cluster written by the syncer.
    pub super_pods: usize,
}

/// Counts pods on both sides (one list per cluster).
pub async fn pod_counts(
    super_client: &kube::Client,
    tenants: &[kube::Client],
) -> Result<PodCounts, EmbeddedError> {
    let mut c = PodCounts::default();
    for t in tenants {
        let pods = Api::<Pod>::all(t.clone())
            .list(&ListParams::default())
            .await
            .map_err(api_err("list tenant pods".into()))?;
        c.tenant_pods += pods.items.len();
        c.tenant_running += pods
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
    }
    let selector = format!("{}=true", naming::LABEL_CONTROLLED);
    c.super_pods = Api::<Pod>::all(super_client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_err("list super pods".into()))?
        .items
        .len();
    Ok(c)
}
