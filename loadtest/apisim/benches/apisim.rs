//! Benchmark of the simulated API server (`cargo bench -p apisim`).
//!
//! Measures, for one instance: pod creates per second through `kube::Client` with a few concurrent
//! writers; watch events delivered per second to 10 watchers (replaying history, and live while pods are
//! created); memory per 10,000 stored pods (RSS delta). For 500 idle instances in one process: total RSS and
//! the CPU they burn while idle. Memory figures are taken in fresh child processes (this binary re-run with
//! `APISIM_BENCH_PART`), so earlier parts do not pollute them. Prints a table and writes
//! `target/apisim-bench.json`. Every part is bounded in count and time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apisim::{SimConfig, Simulator};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

/// Pods created in the create-throughput part.
const CREATE_COUNT: usize = 5_000;
/// Concurrent writers.
const WRITERS: usize = 4;
/// Watchers in the fan-out parts.
const WATCHERS: usize = 10;
/// Pods created while watchers are live.
const LIVE_COUNT: usize = 2_000;
/// Pods stored in the memory part.
const MEM_PODS: usize = 10_000;
/// Idle instances in one process.
const IDLE_INSTANCES: usize = 500;
/// Upper bound for any one part.
const PART_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    match std::env::var("APISIM_BENCH_PART").ok().as_deref() {
        Some("memory") => {
            let result = runtime.block_on(bounded(memory_part()))?;
            println!("RESULT {result}");
            Ok(())
        }
        Some("idle") => {
            let result = runtime.block_on(bounded(idle_part()))?;
            println!("RESULT {result}");
            Ok(())
        }
        Some(other) => bail!("unknown APISIM_BENCH_PART {other:?}"),
        None => runtime.block_on(orchestrate()),
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(PART_TIMEOUT, f)
        .await
        .context("benchmark part timed out")?
}

async fn orchestrate() -> anyhow::Result<()> {
    eprintln!("apisim benchmark: throughput parts in-process, memory parts in child processes");
    let throughput = bounded(throughput_part()).await?;
    let memory = run_child("memory")?;
    let idle = run_child("idle")?;
    let report = json!({
        "throughput": throughput,
        "memory": memory,
        "idle": idle,
    });
    print_table(&report);
    let path = target_dir().join("apisim-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("failed to write {}", path.display()))?;
    println!("\nJSON written to {}", path.display());
    Ok(())
}

/// Re-runs this binary for one part and parses its `RESULT {json}` line.
fn run_child(part: &str) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("no current executable")?;
    let out = std::process::Command::new(exe)
        .env("APISIM_BENCH_PART", part)
        .output()
        .with_context(|| format!("failed to run the {part} part"))?;
    if !out.status.success() {
        bail!(
            "{part} part failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("{part} part printed no result"))?;
    serde_json::from_str(line).with_context(|| format!("{part} part printed bad JSON"))
}

/// `target/` of this build: the ancestor of the executable named `target` (or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|p| p.file_name().is_some_and(|n| n == "target"))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

async fn client_for(sim: &Simulator) -> anyhow::Result<kube::Client> {
    let url = sim.url().parse().context("bad simulator URL")?;
    let mut config = kube::Config::new(url);
    config.default_namespace = "default".to_string();
    config.read_timeout = Some(Duration::from_secs(150));
    kube::Client::try_from(config).context("failed to build a kube client")
}

/// A pod like a small real workload pod (labels, one container with ports, env, resources).
fn pod(name: &str) -> anyhow::Result<Pod> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"},
                     "annotations": {"bench.example.com/owner": "apisim-bench"}},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.example.com/team/app:1.2.3",
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "bench"}, {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}}
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30
        }
    }))
    .context("bench pod does not deserialize")
}

/// Time taken by a batch of creates and the latency of each request.
struct CreateRun {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl CreateRun {
    /// The `q` quantile (0..=1) of request latency, in milliseconds.
    fn latency_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let Some(last) = sorted.len().checked_sub(1) else {
            return 0.0;
        };
        let idx = ((last as f64) * q).round() as usize;
        sorted[idx.min(last)].as_secs_f64() * 1000.0
    }
}

/// Creates `count` pods named `{prefix}-{i}` with `writers` concurrent writers.
async fn create_pods(
    api: &Api<Pod>,
    prefix: &str,
    count: usize,
    writers: usize,
) -> anyhow::Result<CreateRun> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let api = api.clone();
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<Vec<Duration>, anyhow::Error>(latencies);
                }
                let body = pod(&format!("{prefix}-{i}"))?;
                let sent = Instant::now();
                api.create(&PostParams::default(), &body)
                    .await
                    .with_context(|| format!("create {prefix}-{i}"))?;
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for t in tasks {
        latencies.extend(t.await.context("writer task panicked")??);
    }
    Ok(CreateRun {
        elapsed: start.elapsed(),
        latencies,
    })
}

async fn current_rv(api: &Api<Pod>) -> anyhow::Result<String> {
    let list = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .context("list for resourceVersion")?;
    list.metadata
        .resource_version
        .context("list without resourceVersion")
}

/// Spawns `WATCHERS` watchers from `rv`, each counting ADDED events until `expect`; returns their tasks.
fn spawn_watchers(
    api: &Api<Pod>,
    rv: &str,
    expect: usize,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Instant>>> {
    (0..WATCHERS)
        .map(|_| {
            let api = api.clone();
            let rv = rv.to_string();
            tokio::spawn(async move {
                let params = WatchParams::default().timeout(120);
                let mut stream = api
                    .watch(&params, &rv)
                    .await
                    .context("start watch")?
                    .boxed();
                let mut seen = 0usize;
                while let Some(event) = stream.try_next().await.context("watch stream")? {
                    match event {
                        WatchEvent::Added(_) => {
                            seen += 1;
                            if seen >= expect {
                                return Ok(Instant::now());
                            }
                        }
                        WatchEvent::Error(e) => bail!("watch error: {e:?}"),
                        _ => {}
                    }
                }
                bail!("watch ended after {seen} of {expect} events")
            })
        })
        .collect()
}

async fn throughput_part() -> anyhow::Result<Value> {
    let sim = Simulator::start(SimConfig {
        history_window: 20_000,
        ..SimConfig::default()
    })
    .await
    .context("start simulator")?;
    let client = client_for(&sim).await?;
    let api: Api<Pod> = Api::namespaced(client, "default");
    // Warm up connections and code paths.
    create_pods(&api, "warm", 50, WRITERS).await?;

    let rv_before = current_rv(&api).await?;
    let create_run = create_pods(&api, "bench", CREATE_COUNT, WRITERS).await?;
    let create_elapsed = create_run.elapsed;
    let creates_per_s = CREATE_COUNT as f64 / create_elapsed.as_secs_f64();
    eprintln!("creates: {CREATE_COUNT} in {create_elapsed:?}");

    // Replay: 10 watchers from before the creates read the history concurrently.
    let start = Instant::now();
    let watchers = spawn_watchers(&api, &rv_before, CREATE_COUNT);
    let mut last = start;
    for w in watchers {
        last = last.max(w.await.context("watcher panicked")??);
    }
    let replay_elapsed = last - start;
    let replay_per_s = (WATCHERS * CREATE_COUNT) as f64 / replay_elapsed.as_secs_f64();
    eprintln!(
        "replay: {} events in {replay_elapsed:?}",
        WATCHERS * CREATE_COUNT
    );

    // Live: 10 watchers established first, then pods created.
    let rv_live = current_rv(&api).await?;
    let watchers = spawn_watchers(&api, &rv_live, LIVE_COUNT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    create_pods(&api, "live", LIVE_COUNT, WRITERS).await?;
    let mut last = start;
    for w in watchers {
        last = last.max(w.await.context("watcher panicked")??);
    }
    let live_elapsed = last - start;
    let live_per_s = (WATCHERS * LIVE_COUNT) as f64 / live_elapsed.as_secs_f64();
    eprintln!("live: {} events in {live_elapsed:?}", WATCHERS * LIVE_COUNT);

    let objects = sim.object_count();
    sim.shutdown().await;
    Ok(json!({
        "writers": WRITERS,
        "creates": CREATE_COUNT,
        "create_seconds": create_elapsed.as_secs_f64(),
        "creates_per_second": creates_per_s,
        "create_latency_p50_ms": create_run.latency_ms(0.5),
        "create_latency_p99_ms": create_run.latency_ms(0.99),
        "watchers": WATCHERS,
        "replay_events_delivered": WATCHERS * CREATE_COUNT,
        "replay_seconds": replay_elapsed.as_secs_f64(),
        "replay_events_per_second": replay_per_s,
        "live_pods_created": LIVE_COUNT,
        "live_events_delivered": WATCHERS * LIVE_COUNT,
        "live_seconds": live_elapsed.as_secs_f64(),
        "live_events_per_second": live_per_s,
        "objects_stored_at_end": objects,
    }))
}

/// Resident set size of this process in bytes (`VmRSS` of /proc/self/status).
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// User + system CPU time of this process (from /proc/self/stat, in clock ticks of 1/100 s).
fn cpu_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 (1-based) of the whole line.
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("bad /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields
        .get(11)
        .and_then(|v| v.parse().ok())
        .context("no utime")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|v| v.parse().ok())
        .context("no stime")?;
    Ok(utime + stime)
}

async fn memory_part() -> anyhow::Result<Value> {
    let sim = Simulator::start(SimConfig::default())
        .await
        .context("start simulator")?;
    let client = client_for(&sim).await?;
    let api: Api<Pod> = Api::namespaced(client, "default");
    create_pods(&api, "warm", 50, WRITERS).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes()?;
    let elapsed = create_pods(&api, "mem", MEM_PODS, WRITERS).await?.elapsed;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes()?;
    let sample = api.get("mem-0").await.context("get a stored pod")?;
    let stored_json_bytes = serde_json::to_vec(&sample).map(|v| v.len()).unwrap_or(0);
    let delta = after.saturating_sub(before);
    let objects = sim.object_count();
    sim.shutdown().await;
    Ok(json!({
        "pods": MEM_PODS,
        "create_seconds": elapsed.as_secs_f64(),
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "rss_delta_bytes": delta,
        "rss_delta_bytes_per_pod": delta as f64 / MEM_PODS as f64,
        "pod_json_bytes": stored_json_bytes,
        "objects_stored": objects,
        "note": "RSS delta includes the watch history ring (history_window 10,000 events) and allocator slack",
    }))
}

async fn idle_part() -> anyhow::Result<Value> {
    let before = rss_bytes()?;
    let start = Instant::now();
    let mut sims = Vec::with_capacity(IDLE_INSTANCES);
    for i in 0..IDLE_INSTANCES {
        sims.push(
            Simulator::start(SimConfig::default())
                .await
                .with_context(|| format!("start instance {i}"))?,
        );
    }
    let start_elapsed = start.elapsed();
    // All of them answer.
    for sim in [&sims[0], &sims[IDLE_INSTANCES - 1]] {
        let api: Api<Pod> = Api::namespaced(client_for(sim).await?, "default");
        api.list_metadata(&ListParams::default())
            .await
            .context("list on an idle instance")?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes()?;
    let cpu_start = cpu_ticks()?;
    let idle_window = Duration::from_secs(5);
    tokio::time::sleep(idle_window).await;
    let cpu_used = cpu_ticks()?.saturating_sub(cpu_start);
    let objects: usize = sims.iter().map(Simulator::object_count).sum();
    for sim in sims {
        sim.shutdown().await;
    }
    Ok(json!({
        "instances": IDLE_INSTANCES,
        "start_seconds": start_elapsed.as_secs_f64(),
        "rss_before_bytes": before,
        "rss_total_bytes": after,
        "rss_delta_bytes": after.saturating_sub(before),
        "rss_per_instance_bytes": after.saturating_sub(before) as f64 / IDLE_INSTANCES as f64,
        "objects_stored": objects,
        "idle_cpu_percent_of_one_core": cpu_used as f64 / idle_window.as_secs_f64(),
    }))
}

fn mib(v: &Value) -> String {
    v.as_f64()
        .map(|b| format!("{:.1} MiB", b / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".to_string())
}

fn num(v: &Value, decimals: usize) -> String {
    v.as_f64()
        .map(|f| format!("{f:.decimals$}"))
        .unwrap_or_else(|| "?".to_string())
}

fn print_table(r: &Value) {
    let t = &r["throughput"];
    let m = &r["memory"];
    let i = &r["idle"];
    let rows = [
        (
            format!("pod creates/s ({} writers, kube::Client)", t["writers"]),
            num(&t["creates_per_second"], 0),
        ),
        (
            "pod create latency p50 / p99 (ms)".to_string(),
            format!(
                "{} / {}",
                num(&t["create_latency_p50_ms"], 2),
                num(&t["create_latency_p99_ms"], 2)
            ),
        ),
        (
            format!("watch events/s to {} watchers, replay", t["watchers"]),
            num(&t["replay_events_per_second"], 0),
        ),
        (
            format!("watch events/s to {} watchers, live", t["watchers"]),
            num(&t["live_events_per_second"], 0),
        ),
        (
            format!("RSS delta for {} stored pods", m["pods"]),
            mib(&m["rss_delta_bytes"]),
        ),
        (
            "RSS per stored pod".to_string(),
            format!("{} B", num(&m["rss_delta_bytes_per_pod"], 0)),
        ),
        (
            "stored pod JSON size".to_string(),
            format!("{} B", m["pod_json_bytes"]),
        ),
        (
            format!("RSS total, {} idle instances", i["instances"]),
            mib(&i["rss_total_bytes"]),
        ),
        (
            "RSS per idle instance".to_string(),
            format!(
                "{} KiB",
                num(
                    &(i["rss_per_instance_bytes"].as_f64().unwrap_or(0.0) / 1024.0).into(),
                    1
                )
            ),
        ),
        (
            "idle CPU, all instances (% of one core)".to_string(),
            num(&i["idle_cpu_percent_of_one_core"], 1),
        ),
        (
            format!("start {} instances (s)", i["instances"]),
            num(&i["start_seconds"], 2),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(10);
    println!("\n{:width$}  value", "apisim benchmark");
    println!("{}", "-".repeat(width + 14));
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
}
