//! `churn`: a steady mix of pod creates, updates (a label carrying the update count) and deletes at
//! `--rate` operations per second for `--duration`, over N VCs × M namespaces with a bounded live
//! population; once directly on the super cluster (the baseline) and once through the syncer, in the same
//! run. Lag per operation kind over time and overall, throughput, the syncer's CPU and memory and its own
//! histogram; at the end every tenant pod is compared with its super copy.

pub mod analyze;
pub mod drive;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde::Serialize;

use self::analyze::{ChurnPhase, analyze, wait_observed};
use self::drive::{DriveConfig, OpKind, drive, schedule};
use super::compare::{Comparison, compare};
use super::phase::UpPath;
use super::{Ctx, Observers, cleanup, wait_super_namespaces};
use crate::cli::{ChurnArgs, StatusWriter};
use crate::env::Env;
use crate::promtext::{SyncerLag, syncer_lag};
use crate::report::Report;
use crate::stop::Stop;
use crate::syncer_proc::SyncerProcess;
use crate::workload::{LABEL_GEN, Lane, ensure_namespaces};

mod output;

/// One sample of the syncer's resource use.
#[derive(Clone, Debug, Serialize)]
pub struct UsageSample {
    /// Seconds since the churn started.
    pub t: f64,
    /// CPU seconds used since the churn started.
    pub cpu_seconds: f64,
    /// Resident memory (bytes).
    pub rss_bytes: u64,
}

/// The syncer child's resource use during the churn.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChurnSyncer {
    /// Start → every tenant watching (seconds).
    pub startup_seconds: Option<f64>,
    /// CPU seconds from the churn's start to the end of the phase (observations included).
    pub cpu_seconds: Option<f64>,
    /// Average cores used over that time.
    pub cpu_cores_avg: Option<f64>,
    /// CPU seconds per 1,000 successful operations.
    pub cpu_seconds_per_1000_ops: Option<f64>,
    /// RSS once every tenant was watching (bytes).
    pub rss_idle_bytes: Option<u64>,
    /// Peak RSS over the process's life (`VmHWM`, bytes).
    pub rss_peak_bytes: Option<u64>,
    /// CPU and RSS sampled every second.
    pub samples: Vec<UsageSample>,
    /// The syncer's own lag histogram, down (Pod).
    pub own_lag_down: SyncerLag,
    /// The syncer's own lag histogram, up (Pod).
    pub own_lag_up: SyncerLag,
}

/// Samples the CPU and RSS of `pid` every second until `stop` fires (at most `limit` samples).
fn sample_usage(pid: u32, stop: Stop, limit: usize) -> tokio::task::JoinHandle<Vec<UsageSample>> {
    tokio::spawn(async move {
        let start = Instant::now();
        let cpu0 = crate::procfs::cpu_seconds(pid).unwrap_or(0.0);
        let mut out = Vec::new();
        while out.len() < limit {
            let (Ok(cpu), Ok(rss)) = (
                crate::procfs::cpu_seconds(pid),
                crate::procfs::status_bytes(pid, "VmRSS"),
            ) else {
                break;
            };
            out.push(UsageSample {
                t: start.elapsed().as_secs_f64(),
                cpu_seconds: cpu - cpu0,
                rss_bytes: rss,
            });
            if !stop.sleep(Duration::from_secs(1)).await {
                break;
            }
        }
        out
    })
}

/// Drives one phase over `lanes`, waits for it to be observed, analyzes it.
async fn phase(
    ctx: &Ctx,
    a: &ChurnArgs,
    lanes: &Arc<Vec<Lane>>,
    obs: &Observers,
    up: &UpPath,
    direct: bool,
    super_client: &kube::Client,
) -> ChurnPhase {
    let label = if direct { "baseline" } else { "syncer" };
    let plan = schedule(a.rate, a.duration, a.mix, ctx.global.seed);
    let max_pods = a.max_pods.unwrap_or(lanes.len() * 20).max(1);
    let d = drive(
        ctx,
        lanes.clone(),
        obs.book.clone(),
        &plan,
        DriveConfig {
            direct,
            max_pods,
            concurrency: ctx.global.concurrency,
            stream: if direct { 4 } else { 5 },
            label: label.into(),
        },
    )
    .await;
    wait_observed(
        ctx,
        lanes,
        &d,
        &obs.book,
        up,
        ctx.global.settle_timeout,
        label,
    )
    .await;
    let mut res = analyze(lanes, &d, &obs.book, up, a.window.as_secs_f64());
    // What the super cluster holds now for what the watch did not see: tells a missed watch event from a
    // write the syncer did not make.
    for (i, (lane, name)) in res.unobserved_pods.iter().enumerate() {
        let l = &lanes[*lane];
        let mut now = Vec::new();
        for (side, client, ns) in [
            ("super copy", super_client, &l.super_namespace),
            ("pod", &l.client, &l.namespace),
        ] {
            let api = Api::<Pod>::namespaced(client.clone(), ns);
            now.push(match api.get_opt(name).await {
                Ok(Some(p)) => format!(
                    "{side}: gen {:?} (resourceVersion {:?})",
                    p.metadata.labels.as_ref().and_then(|l| l.get(LABEL_GEN)),
                    p.metadata.resource_version
                ),
                Ok(None) => format!("{side}: absent"),
                Err(e) => format!("{side}: unknown ({e})"),
            });
        }
        if let Some(u) = res.unobserved.get_mut(i) {
            u.push_str(&format!("; live read now: {}", now.join(", ")));
        }
    }
    res
}

/// Polls the comparison of tenant pods and super copies until it converges (bounded by `limit`).
async fn final_compare(
    ctx: &Ctx,
    env: &Env,
    direct_ns: &HashSet<String>,
    limit: Duration,
) -> Result<(Comparison, Option<f64>)> {
    let all: Vec<usize> = (0..env.tenants.len()).collect();
    let start = Instant::now();
    loop {
        let c = compare(ctx, env, &all, direct_ns).await?;
        if c.converged() {
            return Ok((c, Some(start.elapsed().as_secs_f64())));
        }
        if start.elapsed() >= limit || !ctx.stop.sleep(Duration::from_millis(250)).await {
            return Ok((c, None));
        }
    }
}

/// What the churn measured.
pub struct ChurnOutcome {
    /// The direct phase.
    pub baseline: Option<ChurnPhase>,
    /// The phase through the syncer.
    pub synced: Option<ChurnPhase>,
    /// The syncer's resource use.
    pub usage: ChurnSyncer,
    /// Tenant pods compared with their super copies at the end.
    pub comparison: Option<Comparison>,
    /// End of the churn → comparison converged (seconds).
    pub converged_after: Option<f64>,
}

/// The `churn` scenario.
pub async fn run(ctx: &Ctx, a: &ChurnArgs, report: &mut Report) -> Result<()> {
    let g = &ctx.global;
    let env = Env::start(g, a.vcs, &ctx.work).await?;
    ctx.say(&format!(
        "churn: {} VCs x {} namespaces, {} ops/s for {} s, mix {}:{}:{} on {}",
        a.vcs,
        a.namespaces,
        a.rate,
        a.duration.as_secs_f64(),
        a.mix.0,
        a.mix.1,
        a.mix.2,
        env.target
    ));
    let ns = ctx.ns_names("n", a.namespaces);
    let direct_ns: Vec<String> = (0..a.vcs)
        .flat_map(|t| ctx.ns_names(&format!("d{t}-"), a.namespaces))
        .collect();
    let direct_set: HashSet<String> = direct_ns.iter().cloned().collect();
    let all: Vec<usize> = (0..env.tenants.len()).collect();
    let obs = Observers::start(ctx, &env, &all, direct_set.clone()).await;
    let measure_up = env.status_writer != StatusWriter::None;
    let result = async {
        let mut out = ChurnOutcome {
            baseline: None,
            synced: None,
            usage: ChurnSyncer::default(),
            comparison: None,
            converged_after: None,
        };
        if !g.no_baseline {
            ensure_namespaces(&env.super_client, &direct_ns, &ctx.run).await?;
            let lanes = Arc::new(env.direct_lanes(&direct_ns));
            let up = if measure_up {
                UpPath::Direct(obs.status_written.clone())
            } else {
                UpPath::None
            };
            out.baseline = Some(phase(ctx, a, &lanes, &obs, &up, true, &env.super_client).await);
        }
        if ctx.stop.is_stopped() {
            return anyhow::Ok(out);
        }
        for t in &env.tenants {
            ensure_namespaces(&t.client, &ns, &ctx.run).await?;
        }
        let lanes = Arc::new(env.tenant_lanes(&all, &ns));
        let launch = env.launch(g, ctx.work.join("syncer-data"), ctx.out.join("syncer.log"))?;
        let mut child = SyncerProcess::start(&launch)?;
        let startup = child
            .wait_up(env.tenants.len(), Duration::from_secs(600), &ctx.stop)
            .await?;
        out.usage.startup_seconds = Some(startup.as_secs_f64());
        out.usage.rss_idle_bytes = child.rss_bytes().ok();
        let super_ns: Vec<String> = lanes.iter().map(|l| l.super_namespace.clone()).collect();
        wait_super_namespaces(ctx, &env, &super_ns, g.settle_timeout).await?;
        let sampler_stop = Stop::new();
        let sampler = sample_usage(child.pid(), sampler_stop.clone(), 100_000);
        let cpu0 = child.cpu_seconds().ok();
        let started = Instant::now();
        let up = if measure_up {
            UpPath::Tenant
        } else {
            UpPath::None
        };
        let res = phase(ctx, a, &lanes, &obs, &up, false, &env.super_client).await;
        let cpu1 = child.cpu_seconds().ok();
        let elapsed = started.elapsed().as_secs_f64();
        sampler_stop.fire("done");
        out.usage.samples = sampler.await.unwrap_or_default();
        out.usage.rss_peak_bytes = child.peak_rss_bytes().ok();
        if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
            let cpu = c1 - c0;
            out.usage.cpu_seconds = Some(cpu);
            out.usage.cpu_cores_avg = (elapsed > 0.0).then(|| cpu / elapsed);
            out.usage.cpu_seconds_per_1000_ops =
                (res.ops_ok > 0).then(|| cpu / (res.ops_ok as f64 / 1000.0));
        }
        if !ctx.stop.is_stopped() {
            let (c, after) = final_compare(ctx, &env, &direct_set, g.settle_timeout).await?;
            out.comparison = Some(c);
            out.converged_after = after;
        }
        if let Ok(text) = child.scrape().await {
            out.usage.own_lag_down = syncer_lag(&text, "down", "Pod");
            out.usage.own_lag_up = syncer_lag(&text, "up", "Pod");
        }
        child.terminate(Duration::from_secs(30)).await?;
        out.synced = Some(res);
        anyhow::Ok(out)
    }
    .await;
    obs.shutdown().await;
    cleanup(ctx, &env).await;
    env.shutdown().await;
    let outcome = result?;
    output::fill(report, a, &outcome, measure_up);
    Ok(())
}

/// Kinds in report order with their names (for rows and plots).
pub fn kinds() -> [(OpKind, &'static str); 3] {
    OpKind::ALL.map(|k| (k, k.name()))
}
