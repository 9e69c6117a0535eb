//! Shared by the end-to-end and restart tests: simulated clusters served by the test process, the
//! `syncer` binary as a child process pointed at them, and bounded polling.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use apisim::{KubeletConfig, SimConfig, Simulator};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use syncer::config::{TenantSpec, load_tenants_dir};
use syncer::naming;
use testcluster::TestCluster;

/// One super cluster (a simulator with its built-in kubelet; node heartbeats off so that its revision
/// only moves when something writes) and some tenants, plus a tenants directory for the syncer.
pub struct Clusters {
    /// The super cluster.
    pub sup: Simulator,
    /// Its kubeconfig.
    pub super_kubeconfig: PathBuf,
    /// The tenants, in the order of `specs`.
    pub tenants: Vec<TestCluster>,
    /// The tenants as the syncer will see them (`vc-1`, `vc-2`, ...).
    pub specs: Vec<TenantSpec>,
    /// Holds the tenants directory and the data directory.
    pub dir: tempfile::TempDir,
}

impl Clusters {
    /// Starts a super cluster with `nodes` simulated nodes and `tenants` tenant clusters.
    pub async fn start(tenants: usize, nodes: usize) -> Result<Self> {
        let sup = Simulator::start(SimConfig {
            kubelet: Some(KubeletConfig {
                nodes,
                heartbeat_interval: Duration::from_secs(3600),
                ..KubeletConfig::default()
            }),
            ..SimConfig::default()
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let super_kubeconfig = dir.path().join("super.yaml");
        std::fs::write(&super_kubeconfig, sup.kubeconfig_yaml("super"))?;
        let tenants_dir = dir.path().join("tenants");
        std::fs::create_dir_all(&tenants_dir)?;
        let mut list = Vec::new();
        for i in 1..=tenants {
            let t = TestCluster::start().await?;
            std::fs::copy(
                t.kubeconfig_path(),
                tenants_dir.join(format!("vc-{i}.yaml")),
            )?;
            list.push(t);
        }
        let specs = load_tenants_dir(&tenants_dir)?;
        Ok(Self {
            sup,
            super_kubeconfig,
            tenants: list,
            specs,
            dir,
        })
    }

    /// A client of the super cluster.
    pub async fn super_client(&self) -> Result<kube::Client> {
        Ok(syncer::app::client_from_kubeconfig(&self.super_kubeconfig).await?)
    }

    /// The tenants directory given to the syncer.
    pub fn tenants_dir(&self) -> PathBuf {
        self.dir.path().join("tenants")
    }

    /// The syncer's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Cluster key of tenant `i` (0-based).
    pub fn key(&self, i: usize) -> String {
        let s = &self.specs[i];
        naming::cluster_key(&s.namespace, &s.name, &s.uid)
    }

    /// Super namespace of tenant `i`'s namespace `ns`.
    pub fn super_ns(&self, i: usize, ns: &str) -> String {
        naming::super_namespace(&self.key(i), ns)
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The `syncer` binary running as a child process. Killed on drop.
pub struct SyncerProcess {
    child: Child,
    /// Its `/metrics` address.
    pub metrics_addr: String,
    log: PathBuf,
}

impl SyncerProcess {
    /// Starts the binary against `clusters` with data in `data_dir`; stderr goes to `<data_dir>.log`.
    pub fn start(clusters: &Clusters, data_dir: &Path, extra: &[&str]) -> Result<Self> {
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let log = data_dir.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_syncer"))
            .arg("--super-kubeconfig")
            .arg(&clusters.super_kubeconfig)
            .arg("--tenants-dir")
            .arg(clusters.tenants_dir())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--shards", "2", "--metrics-addr", &metrics_addr])
            // A free port for the gRPC API unless the test picks one.
            .args(if extra.contains(&"--grpc-addr") {
                &[][..]
            } else {
                &["--grpc-addr", "127.0.0.1:0"][..]
            })
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("SYNCER_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("failed to start the syncer binary")?;
        Ok(Self {
            child,
            metrics_addr,
            log,
        })
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM (graceful), then wait at most `secs` seconds; returns whether it exited by itself.
    pub fn terminate(&mut self, secs: u64) -> Result<bool> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        for _ in 0..secs * 20 {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9()?;
        Ok(false)
    }

    /// Fails if the process has exited (with its log).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("syncer exited with {status}; log:\n{log}");
        }
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Scrapes `/metrics` (plain HTTP/1.0 GET on loopback).
    pub async fn scrape(&self) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.metrics_addr).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut body = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut body)).await??;
        Ok(body)
    }

    /// The sum of a metric's samples in a scrape (all label sets), if present.
    pub async fn metric_sum(&self, name: &str) -> Result<Option<f64>> {
        Ok(metric_sum(&self.scrape().await?, name))
    }
}

impl Drop for SyncerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of every sample of `name` (exact name, any labels) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *found.get_or_insert(0.0) += value;
    }
    found
}

/// Polls `check` every 100 ms for at most `secs` seconds until it returns `Some`.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let mut last_err = None;
    for _ in 0..secs * 10 {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match last_err {
        Some(e) => Err(e.context(format!("timed out waiting for {what}"))),
        None => bail!("timed out waiting for {what}"),
    }
}

/// Creates a namespace.
pub async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Creates a pod with the given labels and annotations.
pub async fn create_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
) -> Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?)
}

/// Every pod of a cluster.
pub async fn all_pods(client: &kube::Client) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items)
}

/// An annotation of a pod.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// A label of a pod.
pub fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Creates `obj` (JSON) in namespace `ns` of the cluster behind `client`.
pub async fn create<K>(client: &kube::Client, ns: &str, obj: serde_json::Value) -> Result<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let obj: K = serde_json::from_value(obj)?;
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await?)
}

/// Waits (60 s at most) until `name` exists in namespace `ns` and `ok` holds for it.
pub async fn wait_obj<K>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let api = Api::<K>::namespaced(client.clone(), ns);
    let ok = &ok;
    wait_for(what, 60, || {
        let api = api.clone();
        async move { Ok(api.get_opt(name).await?.filter(|o| ok(o))) }
    })
    .await
}

/// Waits (60 s at most) until `name` is gone from namespace `ns`.
pub async fn wait_gone<K>(client: &kube::Client, ns: &str, name: &str, what: &str) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let api = Api::<K>::namespaced(client.clone(), ns);
    wait_for(what, 60, || {
        let api = api.clone();
        async move { Ok(api.get_opt(name).await?.is_none().then_some(())) }
    })
    .await
}

/// An annotation of any object.
pub fn ann<K: kube::Resource>(obj: &K, key: &str) -> Option<String> {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(key).cloned())
}

/// A label of any object.
pub fn lab<K: kube::Resource>(obj: &K, key: &str) -> Option<String> {
    obj.meta().labels.as_ref().and_then(|a| a.get(key).cloned())
}

/// Prints the last lines of the log of the syncer with data directory `data` (for a step that timed out).
pub fn print_syncer_log(data: &Path) {
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(80).collect();
    eprintln!("syncer log (last lines):");
    for line in tail.into_iter().rev() {
        eprintln!("{line}");
    }
}

/// A TLS channel to the syncer with the client certificate it generated (waits for the PKI and the port).
pub async fn grpc_channel(data: &Path, addr: &str) -> Result<tonic::transport::Channel> {
    let files = tenancy_proto::pki::PkiFiles::in_dir(&data.join("grpc"));
    wait_for("the syncer's gRPC API", 60, || {
        let files = files.clone();
        async move {
            let Ok(material) = files.client_material() else {
                return Ok(None);
            };
            let channel = tenancy_proto::tls::connect(
                addr,
                Some(material.client_config(tenancy_proto::tls::DEFAULT_SERVER_NAME)),
            )
            .await?;
            tenancy_proto::v1::health_client::HealthClient::new(channel.clone())
                .check(tenancy_proto::v1::HealthCheckRequest {})
                .await?;
            Ok(Some(channel))
        }
    })
    .await
}
