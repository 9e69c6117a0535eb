//! `noisy-neighbor`: G greedy tenants burst pods as fast as `--concurrency` allows while L light tenants
//! create pods one at a time, each waiting for its super copy before the next. Run with the syncer's
//! fairness and again with `--no-fairness`, each on fresh clusters (embedded target; on a real super
//! cluster: fresh namespaces) and a fresh syncer data directory; the light tenants' latency and the greedy
//! throughput of both runs are compared.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde::Serialize;
use serde_json::json;

use super::phase::{PhaseResult, UpPath, analyze, down_seen, wait_synced};
use super::{Ctx, Observers, cleanup, wait_super_namespaces};
use crate::cli::NoisyArgs;
use crate::env::Env;
use crate::observe::Book;
use crate::promtext::{SyncerLag, syncer_lag};
use crate::report::{Line, Plot, Report, ms, num, times};
use crate::stats::{
    P50_P99, Summary, lag_series, percentile_points, rate_series, ratio, summarize,
};
use crate::stop::Stop;
use crate::syncer_proc::SyncerProcess;
use crate::workload::{Lane, create_pods, ensure_namespaces, plan, pod, rng, token};

/// One light pod: when its create was sent and when its super copy was seen.
#[derive(Clone, Debug)]
pub struct LightPod {
    /// Create sent.
    pub sent: Instant,
    /// Super copy first seen (`None`: not within the limit, or the create failed).
    pub seen: Option<Instant>,
    /// Whether the create succeeded.
    pub ok: bool,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NoisyRun {
    /// Whether the syncer ran with fairness.
    pub fairness: bool,
    /// Light pods created (successfully) / failed.
    pub light_written: usize,
    /// Light creates that failed.
    pub light_failed: usize,
    /// Light pods whose super copy was seen.
    pub light_observed: usize,
    /// Light latency: create sent → super copy first seen (seconds).
    pub light: Summary,
    /// Light pods sent while the greedy burst was not yet fully synced down.
    pub light_contended: usize,
    /// Latency of those.
    pub light_contended_lag: Summary,
    /// The greedy burst (down only).
    pub greedy: PhaseResult,
    /// The syncer child's command line, as the kernel reports it (`/proc/<pid>/cmdline`).
    pub syncer_cmdline: Vec<String>,
    /// Syncer start → every tenant watching (seconds).
    pub startup_seconds: Option<f64>,
    /// CPU seconds of the syncer from the first create to the end of the run.
    pub cpu_seconds: Option<f64>,
    /// Peak RSS of the syncer (bytes).
    pub rss_peak_bytes: Option<u64>,
    /// The syncer's own lag histogram, down (Pod).
    pub own_lag_down: SyncerLag,
    /// (sent, latency) of the light pods.
    #[serde(skip)]
    pub light_samples: Vec<(Instant, f64)>,
    /// The run's time origin (greedy burst start).
    #[serde(skip)]
    pub origin: Option<Instant>,
}

/// Creates `count` pods one after the other on `lane`, each once the previous one's super copy was seen
/// (waiting at most `limit` per pod).
async fn light_tenant(
    lane: Lane,
    count: usize,
    names: Vec<String>,
    run: String,
    book: Arc<Book>,
    limit: Duration,
    stop: Stop,
) -> Vec<LightPod> {
    let api = Api::<Pod>::namespaced(lane.client.clone(), &lane.namespace);
    let mut out = Vec::with_capacity(count);
    for name in names.into_iter().take(count) {
        if stop.is_stopped() {
            break;
        }
        let sent = Instant::now();
        let ok = match pod(&name, &run, false) {
            Ok(obj) => match api.create(&PostParams::default(), &obj).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "light create failed");
                    false
                }
            },
            Err(_) => false,
        };
        let mut seen = None;
        if ok {
            let deadline = sent + limit;
            loop {
                seen = down_seen(&book, &lane, &name);
                if seen.is_some()
                    || Instant::now() >= deadline
                    || !stop.sleep(Duration::from_millis(20)).await
                {
                    break;
                }
            }
        }
        out.push(LightPod { sent, seen, ok });
    }
    out
}

/// One run: fresh clusters (or namespaces) and data; the syncer with or without fairness.
async fn one_run(ctx: &Ctx, a: &NoisyArgs, fair: bool) -> Result<NoisyRun> {
    let g = &ctx.global;
    let tag = if fair { "f" } else { "u" };
    let label = if fair { "fair" } else { "no-fairness" };
    let env = Env::start(g, a.greedy + a.light, &ctx.work.join(format!("run-{tag}"))).await?;
    let ns = ctx.ns_names(tag, 1);
    let all: Vec<usize> = (0..env.tenants.len()).collect();
    let obs = Observers::start(ctx, &env, &all, HashSet::new()).await;
    let result = async {
        let mut r = NoisyRun {
            fairness: fair,
            ..NoisyRun::default()
        };
        for t in &env.tenants {
            ensure_namespaces(&t.client, &ns, &ctx.run).await?;
        }
        let lanes = Arc::new(env.tenant_lanes(&all, &ns));
        let mut launch = env.launch(
            g,
            ctx.work.join(format!("syncer-data-{tag}")),
            ctx.out.join(format!("syncer-{label}.log")),
        )?;
        launch.no_fairness = !fair;
        let mut child = SyncerProcess::start(&launch)?;
        r.startup_seconds = Some(
            child
                .wait_up(env.tenants.len(), Duration::from_secs(600), &ctx.stop)
                .await?
                .as_secs_f64(),
        );
        r.syncer_cmdline = crate::procfs::cmdline(child.pid()).unwrap_or_default();
        let super_ns: Vec<String> = lanes.iter().map(|l| l.super_namespace.clone()).collect();
        wait_super_namespaces(ctx, &env, &super_ns, g.settle_timeout).await?;
        ctx.say(&format!(
            "{label}: {} greedy tenants x {} pods, {} light tenants x {} pods one at a time",
            a.greedy, a.greedy_pods, a.light, a.light_pods
        ));
        let cpu0 = child.cpu_seconds().ok();
        let greedy_jobs = plan(a.greedy, a.greedy_pods, g.seed, 1);
        let bar = ctx.bar(
            greedy_jobs.len() as u64,
            &format!("{label}: greedy created"),
        );
        r.origin = Some(Instant::now());
        let greedy = tokio::spawn(create_pods(
            lanes.clone(),
            greedy_jobs,
            ctx.run.clone(),
            false,
            g.concurrency,
            0.0,
            Some(bar.clone()),
            ctx.stop.clone(),
        ));
        let mut names_rng = rng(g.seed, 6);
        let mut lights = Vec::new();
        for l in a.greedy..a.greedy + a.light {
            let names: Vec<String> = (0..a.light_pods)
                .map(|k| format!("l{k}-{}", token(&mut names_rng, 5)))
                .collect();
            lights.push(tokio::spawn(light_tenant(
                lanes[l].clone(),
                a.light_pods,
                names,
                ctx.run.clone(),
                obs.book.clone(),
                g.settle_timeout,
                ctx.stop.clone(),
            )));
        }
        let written = greedy.await?;
        bar.finish();
        let greedy_lanes = &lanes[..a.greedy];
        wait_synced(
            ctx,
            greedy_lanes,
            &written,
            &obs.book,
            &UpPath::None,
            g.settle_timeout,
            &format!("{label}: greedy"),
        )
        .await;
        let mut light = Vec::new();
        for h in lights {
            light.extend(h.await?);
        }
        r.greedy = analyze(greedy_lanes, &written, &obs.book, &UpPath::None);
        r.cpu_seconds = match (cpu0, child.cpu_seconds().ok()) {
            (Some(a0), Some(a1)) => Some(a1 - a0),
            _ => None,
        };
        r.rss_peak_bytes = child.peak_rss_bytes().ok();
        let greedy_done = r.greedy.down_events.iter().max().copied();
        let mut contended = Vec::new();
        for p in &light {
            if !p.ok {
                r.light_failed += 1;
                continue;
            }
            r.light_written += 1;
            if let Some(seen) = p.seen {
                let lag = seen.saturating_duration_since(p.sent).as_secs_f64();
                r.light_samples.push((p.sent, lag));
                if greedy_done.is_none_or(|d| p.sent < d) {
                    contended.push(lag);
                }
            }
        }
        r.light_observed = r.light_samples.len();
        let lags: Vec<f64> = r.light_samples.iter().map(|(_, l)| *l).collect();
        r.light = summarize(&lags);
        r.light_contended = contended.len();
        r.light_contended_lag = summarize(&contended);
        if let Ok(text) = child.scrape().await {
            r.own_lag_down = syncer_lag(&text, "down", "Pod");
        }
        child.terminate(Duration::from_secs(30)).await?;
        anyhow::Ok(r)
    }
    .await;
    obs.shutdown().await;
    cleanup(ctx, &env).await;
    env.shutdown().await;
    result
}

/// The `noisy-neighbor` scenario.
pub async fn run(ctx: &Ctx, a: &NoisyArgs, report: &mut Report) -> Result<()> {
    let mut runs = Vec::new();
    let mut failure = None;
    for fair in a.fairness.runs() {
        if ctx.stop.is_stopped() {
            break;
        }
        match one_run(ctx, a, fair).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    fill(report, &runs);
    failure.map_or(Ok(()), Err)
}

fn name(fair: bool) -> &'static str {
    if fair { "fairness" } else { "no-fairness" }
}

/// Rows, JSON and plots of the runs.
pub fn fill(report: &mut Report, runs: &[NoisyRun]) {
    for r in runs {
        let s = name(r.fairness);
        report.row(
            s,
            "light pods written / observed / failed",
            format!(
                "{} / {} / {}",
                r.light_written, r.light_observed, r.light_failed
            ),
        );
        report.row(
            s,
            "light latency p50 / p90 / p99",
            format!(
                "{} / {} / {}",
                ms(r.light.p50),
                ms(r.light.p90),
                ms(r.light.p99)
            ),
        );
        report.row(
            s,
            "light while greedy unsynced: n, p50 / p99",
            format!(
                "{}, {} / {}",
                r.light_contended,
                ms(r.light_contended_lag.p50),
                ms(r.light_contended_lag.p99)
            ),
        );
        report.row(
            s,
            "greedy pods written / synced down",
            format!("{} / {}", r.greedy.written, r.greedy.synced_down),
        );
        report.row(s, "greedy pods/s down", num(r.greedy.down_rate, 0));
        report.row(
            s,
            "greedy lag down p50 / p99",
            format!("{} / {}", ms(r.greedy.down.p50), ms(r.greedy.down.p99)),
        );
        report.row(
            s,
            "greedy first create -> all synced (s)",
            num(r.greedy.all_synced_seconds, 2),
        );
        report.row(s, "own histogram down p50 / p99", r.own_lag_down.p50_p99());
    }
    let fair = runs.iter().find(|r| r.fairness);
    let unfair = runs.iter().find(|r| !r.fairness);
    let mut ratios = serde_json::Map::new();
    if let (Some(f), Some(u)) = (fair, unfair) {
        let r = [
            ("light_p50", ratio(u.light.p50, f.light.p50)),
            ("light_p99", ratio(u.light.p99, f.light.p99)),
            (
                "greedy_down_rate",
                ratio(u.greedy.down_rate, f.greedy.down_rate),
            ),
        ];
        report.row(
            "ratio",
            "no-fairness / fairness: light p50, p99",
            format!("{} , {}", times(r[0].1), times(r[1].1)),
        );
        report.row(
            "ratio",
            "no-fairness / fairness: greedy pods/s",
            times(r[2].1),
        );
        for (k, v) in r {
            ratios.insert(k.into(), json!(v));
        }
    }
    report.results = json!({
        "fairness": fair,
        "no_fairness": unfair,
        "ratio_no_fairness_to_fairness": ratios,
    });
    report.notes.push(
        "light latency: a light tenant's create sent -> its super copy first seen by the harness's watch on \
         the super cluster; each light tenant sends its next pod once the previous copy was seen. Greedy \
         tenants create all their pods at once (--concurrency in flight). Each run starts fresh clusters \
         (embedded; fresh namespaces on a real super cluster) and a fresh syncer data directory; the \
         second run starts the syncer with --no-fairness."
            .into(),
    );
    report.notes.push(
        "\"while greedy unsynced\": light pods sent before the last greedy pod's super copy was seen, i.e. \
         the ones that competed with the burst."
            .into(),
    );
    let mut lag_lines = Vec::new();
    let mut rate_lines = Vec::new();
    for r in runs {
        let Some(o) = r.origin else { continue };
        let series = lag_series(o, &r.light_samples, 1.0);
        for (q, pick) in P50_P99 {
            lag_lines.push(Line {
                name: format!("{} light {q}", name(r.fairness)),
                points: percentile_points(&series, pick),
            });
        }
        rate_lines.push(Line {
            name: format!("{} greedy", name(r.fairness)),
            points: rate_series(o, &r.greedy.down_events, 1.0),
        });
    }
    if !lag_lines.is_empty() {
        report.plots.push(Plot {
            file: "light_lag.png".into(),
            title: "light tenants' latency per 1 s window, with and without fairness".into(),
            x_label: "seconds since the greedy burst started".into(),
            y_label: "latency (s)".into(),
            series: lag_lines,
        });
        report.plots.push(Plot {
            file: "throughput.png".into(),
            title: "greedy pods synced down per second".into(),
            x_label: "seconds since the greedy burst started".into(),
            y_label: "pods/s".into(),
            series: rate_lines,
        });
    }
}
