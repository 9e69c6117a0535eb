//! End-to-end sync benchmark (`cargo bench -p syncer --bench sync`; bounded in time).
//!
//! 100 simulated tenants × 100 pods, created as fast as the harness can, synced by the `syncer` binary
//! running as a child process (so its CPU and memory are measured alone; the simulators run in this
//! process). Reports:
//! * pods synced down per second (first create → last super copy observed),
//! * p50/p99 lag, measured from outside: tenant create returned → super copy seen by a watch on the super,
//! * the syncer's CPU seconds per 1,000 pods (`/proc/<pid>/stat` deltas),
//! * its peak RSS (`VmHWM`) and peak RSS per synced pod,
//! * restart-to-converged: `kill -9`, one more pod per tenant created while it is down, restart on the
//!   same data dir, time until every new pod has its super copy.
//!
//! Prints a table and writes the numbers as JSON to `target/sync-bench.json`.
//! Knobs (environment): `SYNC_BENCH_TENANTS` (100), `SYNC_BENCH_PODS` (100 per tenant),
//! `SYNC_BENCH_SHARDS` (the binary's `--shards` default), `SYNC_BENCH_KUBELET` (set to `1` to run the super cluster's simulated kubelet, which makes the syncer
//! also sync status up; off by default so the run measures the down direction alone),
//! `SYNC_BENCH_SYNCER_ARGS` (extra flags for the syncer, e.g. `--cache-size 16Mi`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use apisim::{KubeletConfig, SimConfig, Simulator};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use parking_lot::Mutex;
use serde_json::json;
use syncer::config::load_tenants_dir;
use syncer::naming;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after "pid (comm) ".
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    let ticks = clock_ticks();
    Ok((utime + stime) / ticks)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmHWM`, `VmRSS`), in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("{field} missing"))?;
    let kb: u64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kb * 1024)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct SyncerChild {
    child: Child,
    metrics_addr: String,
}

impl SyncerChild {
    fn start(super_kc: &Path, tenants_dir: &Path, data: &Path) -> Result<Self> {
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        let child = Command::new(env!("CARGO_BIN_EXE_syncer"))
            .arg("--super-kubeconfig")
            .arg(super_kc)
            .arg("--tenants-dir")
            .arg(tenants_dir)
            .arg("--data-dir")
            .arg(data)
            .args([
                "--metrics-addr",
                &metrics_addr,
                "--grpc-addr",
                "127.0.0.1:0",
            ])
            .args(
                std::env::var("SYNC_BENCH_SHARDS")
                    .ok()
                    .map(|n| vec!["--shards".to_string(), n])
                    .unwrap_or_default(),
            )
            .args(
                std::env::var("SYNC_BENCH_SYNCER_ARGS")
                    .ok()
                    .map(|a| a.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start syncer")?;
        Ok(Self {
            child,
            metrics_addr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn metric(&self, name: &str) -> Result<Option<f64>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.metrics_addr).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text)).await??;
        let mut sum = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(name)
                && (rest.starts_with('{') || rest.starts_with(' '))
                && let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
            {
                *sum.get_or_insert(0.0) += v;
            }
        }
        Ok(sum)
    }

    /// Waits (bounded) until every tenant's watches are up.
    async fn wait_up(&mut self, tenants: usize, secs: u64) -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..secs * 10 {
            if let Some(status) = self.child.try_wait()? {
                bail!("syncer exited: {status}");
            }
            if let Ok(Some(up)) = self.metric("vc_syncer_tenant_up").await
                && up >= tenants as f64
            {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("syncer did not bring {tenants} tenants up within {secs} s")
    }

    fn kill9(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for SyncerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// First time each super pod (namespace, name) was seen by a watch on the super cluster.
type Seen = Arc<Mutex<HashMap<(String, String), Instant>>>;

async fn watch_super(client: kube::Client, seen: Seen) -> Result<()> {
    let api = Api::<Pod>::all(client);
    let selector = format!("{}=true", naming::LABEL_CONTROLLED);
    let mut rv = "0".to_string();
    loop {
        let wp = WatchParams::default().labels(&selector).timeout(290);
        let mut stream = api.watch(&wp, &rv).await?.boxed();
        while let Some(ev) = stream.next().await {
            match ev? {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    if let Some(v) = p.metadata.resource_version.clone() {
                        rv = v;
                    }
                    let key = (
                        p.metadata.namespace.unwrap_or_default(),
                        p.metadata.name.unwrap_or_default(),
                    );
                    seen.lock().entry(key).or_insert_with(Instant::now);
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Deleted(_) => {}
                WatchEvent::Error(e) => bail!("super watch error: {e:?}"),
            }
        }
    }
}

fn pod(ns: &str, name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))?)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Waits until every key in `expected` was seen; returns when the last one was seen.
async fn wait_seen(seen: &Seen, expected: &[(String, String)], secs: u64) -> Result<Instant> {
    for _ in 0..secs * 20 {
        {
            let s = seen.lock();
            if expected.iter().all(|k| s.contains_key(k)) {
                return expected
                    .iter()
                    .filter_map(|k| s.get(k).copied())
                    .max()
                    .context("no pods");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = {
        let s = seen.lock();
        expected.iter().filter(|k| !s.contains_key(*k)).count()
    };
    bail!(
        "{missing} of {} pods not synced within {secs} s",
        expected.len()
    )
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(Path::to_path_buf).unwrap_or(tmp)
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let tenants_n = env_usize("SYNC_BENCH_TENANTS", 100);
    let pods_per = env_usize("SYNC_BENCH_PODS", 100);
    let kubelet = std::env::var("SYNC_BENCH_KUBELET").is_ok_and(|v| v == "1");
    let total = tenants_n * pods_per;
    let dir = tempfile::tempdir()?;
    let tenants_dir = dir.path().join("tenants");
    std::fs::create_dir_all(&tenants_dir)?;

    let sup = Simulator::start(SimConfig {
        kubelet: kubelet.then(|| KubeletConfig {
            nodes: 10,
            heartbeat_interval: Duration::from_secs(3600),
            ..KubeletConfig::default()
        }),
        history_window: 100_000,
        ..SimConfig::default()
    })
    .await?;
    let super_kc = dir.path().join("super.yaml");
    std::fs::write(&super_kc, sup.kubeconfig_yaml("super"))?;
    let mut sims = Vec::new();
    for i in 1..=tenants_n {
        let s = Simulator::start(SimConfig {
            history_window: 100_000,
            ..SimConfig::default()
        })
        .await?;
        std::fs::write(
            tenants_dir.join(format!("vc-{i}.yaml")),
            s.kubeconfig_yaml(&format!("vc-{i}")),
        )?;
        sims.push(s);
    }
    let specs = load_tenants_dir(&tenants_dir)?;
    let mut clients = Vec::new();
    for spec in &specs {
        clients.push(syncer::app::client_from_kubeconfig(&spec.kubeconfig).await?);
    }
    let super_client = syncer::app::client_from_kubeconfig(&super_kc).await?;
    let super_ns: Vec<String> = specs
        .iter()
        .map(|s| {
            naming::super_namespace(&naming::cluster_key(&s.namespace, &s.name, &s.uid), "bench")
        })
        .collect();
    for c in &clients {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}}))?;
        Api::<Namespace>::all(c.clone())
            .create(&PostParams::default(), &ns)
            .await?;
    }

    let data = dir.path().join("data");
    let mut syncer = SyncerChild::start(&super_kc, &tenants_dir, &data)?;
    let up_after = syncer.wait_up(tenants_n, 120).await?;
    let pid = syncer.pid();
    let rss_idle = status_bytes(pid, "VmRSS")?;
    let cpu_before = cpu_seconds(pid)?;

    let seen: Seen = Arc::default();
    let watcher = tokio::spawn(watch_super(super_client.clone(), seen.clone()));
    // Let the watch establish before the load starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The burst: every (tenant, pod) created as fast as possible, 64 requests in flight.
    let created: Arc<Mutex<HashMap<(String, String), Instant>>> = Arc::default();
    let load_start = Instant::now();
    let jobs: Vec<(usize, usize)> = (0..pods_per)
        .flat_map(|p| (0..tenants_n).map(move |t| (t, p)))
        .collect();
    let results: Vec<Result<()>> = futures::stream::iter(jobs)
        .map(|(t, p)| {
            let client = clients[t].clone();
            let key = (super_ns[t].clone(), format!("pod-{p}"));
            let created = created.clone();
            async move {
                let obj = pod("bench", &key.1)?;
                Api::<Pod>::namespaced(client, "bench")
                    .create(&PostParams::default(), &obj)
                    .await?;
                created.lock().insert(key, Instant::now());
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let load_done = load_start.elapsed();
    let expected: Vec<(String, String)> = created.lock().keys().cloned().collect();
    let last_seen = wait_seen(&seen, &expected, 600).await?;
    let elapsed = last_seen.duration_since(load_start);
    let cpu_after = cpu_seconds(pid)?;
    let rss_peak = status_bytes(pid, "VmHWM")?;

    let mut lags: Vec<f64> = {
        let s = seen.lock();
        let c = created.lock();
        c.iter()
            .filter_map(|(k, t)| {
                s.get(k)
                    .map(|seen_at| seen_at.saturating_duration_since(*t).as_secs_f64())
            })
            .collect()
    };
    lags.sort_by(f64::total_cmp);

    // Restart: kill -9, one more pod per tenant while down, restart on the same data dir.
    syncer.kill9()?;
    let mut restart_expected = Vec::new();
    for (t, c) in clients.iter().enumerate() {
        let name = "pod-after-restart";
        Api::<Pod>::namespaced(c.clone(), "bench")
            .create(&PostParams::default(), &pod("bench", name)?)
            .await?;
        restart_expected.push((super_ns[t].clone(), name.to_string()));
    }
    let restart_at = Instant::now();
    let mut syncer2 = SyncerChild::start(&super_kc, &tenants_dir, &data)?;
    let converged_at = wait_seen(&seen, &restart_expected, 300).await?;
    let restart_to_converged = converged_at.saturating_duration_since(restart_at);
    let restart_up = syncer2.wait_up(tenants_n, 60).await.ok();
    watcher.abort();

    let rate = total as f64 / elapsed.as_secs_f64();
    let cpu = cpu_after - cpu_before;
    let report = json!({
        "tenants": tenants_n,
        "pods_per_tenant": pods_per,
        "pods": total,
        "super_kubelet": kubelet,
        "shards": std::env::var("SYNC_BENCH_SHARDS").ok(),
        "create_burst_seconds": load_done.as_secs_f64(),
        "sync_seconds": elapsed.as_secs_f64(),
        "pods_synced_down_per_second": rate,
        "lag_p50_seconds": percentile(&lags, 0.50),
        "lag_p99_seconds": percentile(&lags, 0.99),
        "lag_max_seconds": lags.last().copied().unwrap_or(f64::NAN),
        "syncer_cpu_seconds": cpu,
        "syncer_cpu_seconds_per_1000_pods": cpu / (total as f64 / 1000.0),
        "syncer_rss_idle_bytes": rss_idle,
        "syncer_rss_peak_bytes": rss_peak,
        "syncer_rss_peak_bytes_per_pod": rss_peak as f64 / total as f64,
        "syncer_rss_growth_bytes_per_pod": rss_peak.saturating_sub(rss_idle) as f64 / total as f64,
        "startup_all_tenants_up_seconds": up_after.as_secs_f64(),
        "restart_to_converged_seconds": restart_to_converged.as_secs_f64(),
        "restart_all_tenants_up_seconds": restart_up.map(|d| d.as_secs_f64()),
    });
    println!();
    println!(
        "sync benchmark: {tenants_n} tenants x {pods_per} pods = {total} pods (super kubelet: {kubelet})"
    );
    println!("  {:<44} {:>12}", "metric", "value");
    let row = |k: &str, v: String| println!("  {k:<44} {v:>12}");
    row(
        "create burst (s)",
        format!("{:.2}", load_done.as_secs_f64()),
    );
    row(
        "first create -> last super copy (s)",
        format!("{:.2}", elapsed.as_secs_f64()),
    );
    row("pods synced down / s", format!("{rate:.0}"));
    row(
        "lag p50 (ms)",
        format!("{:.0}", percentile(&lags, 0.5) * 1000.0),
    );
    row(
        "lag p99 (ms)",
        format!("{:.0}", percentile(&lags, 0.99) * 1000.0),
    );
    row(
        "syncer CPU s / 1,000 pods",
        format!("{:.3}", cpu / (total as f64 / 1000.0)),
    );
    row(
        "syncer RSS idle (MiB)",
        format!("{:.1}", rss_idle as f64 / 1048576.0),
    );
    row(
        "syncer RSS peak (MiB)",
        format!("{:.1}", rss_peak as f64 / 1048576.0),
    );
    row(
        "syncer RSS peak / pod (KiB)",
        format!("{:.2}", rss_peak as f64 / total as f64 / 1024.0),
    );
    row(
        "start-up: all tenants watching (s)",
        format!("{:.2}", up_after.as_secs_f64()),
    );
    row(
        "restart (kill -9) -> converged (s)",
        format!("{:.2}", restart_to_converged.as_secs_f64()),
    );
    let out = target_dir().join("sync-bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("  written to {}", out.display());
    drop(syncer2);
    for s in sims {
        s.shutdown().await;
    }
    sup.shutdown().await;
    Ok(())
}
