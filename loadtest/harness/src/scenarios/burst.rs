//! `burst` (and `baseline`): N VCs × M namespaces × K pods created as fast as allowed, once directly on the
//! super cluster (the baseline) and once through the syncer, in the same run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::phase::{PhaseResult, UpPath, analyze, wait_synced};
use super::{Ctx, Observers, cleanup, wait_super_namespaces};
use crate::cli::{Shape, StatusWriter};
use crate::env::Env;
use crate::promtext::{SyncerLag, syncer_lag};
use crate::report::{Line, Plot, Report, ms, num, times};
use crate::stats::{lag_series, rate_series, ratio};
use crate::syncer_proc::SyncerProcess;
use crate::workload::{Lane, create_pods, ensure_namespaces, plan};

/// Resource use of the syncer child during a phase.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncerUse {
    /// Start → every tenant watching (seconds).
    pub startup_seconds: Option<f64>,
    /// CPU seconds used from the first create to the end of the phase.
    pub cpu_seconds: Option<f64>,
    /// CPU seconds per 1,000 pods synced.
    pub cpu_seconds_per_1000_pods: Option<f64>,
    /// RSS once every tenant was watching (bytes).
    pub rss_idle_bytes: Option<u64>,
    /// Peak RSS over the process's life (`VmHWM`, bytes).
    pub rss_peak_bytes: Option<u64>,
    /// The syncer's own lag histogram, down.
    pub own_lag_down: SyncerLag,
    /// The syncer's own lag histogram, up.
    pub own_lag_up: SyncerLag,
}

/// Runs a phase: creates `jobs` on `lanes`, waits for them, analyzes.
#[allow(clippy::too_many_arguments)]
pub async fn run_phase(
    ctx: &Ctx,
    lanes: &Arc<Vec<Lane>>,
    jobs: Vec<(usize, String)>,
    direct: bool,
    rate: f64,
    obs: &Observers,
    up: &UpPath,
    label: &str,
) -> PhaseResult {
    let bar = ctx.bar(jobs.len() as u64, &format!("{label}: created"));
    let written = create_pods(
        lanes.clone(),
        jobs,
        ctx.run.clone(),
        direct,
        ctx.global.concurrency,
        rate,
        Some(bar.clone()),
        ctx.stop.clone(),
    )
    .await;
    bar.finish();
    wait_synced(
        ctx,
        lanes,
        &written,
        &obs.book,
        up,
        ctx.global.settle_timeout,
        label,
    )
    .await;
    analyze(lanes, &written, &obs.book, up)
}

/// `burst` (`baseline_only = false`) or `baseline` (`true`).
pub async fn run(ctx: &Ctx, shape: &Shape, baseline_only: bool, report: &mut Report) -> Result<()> {
    let g = &ctx.global;
    let env = Env::start(g, shape.vcs, &ctx.work).await?;
    let total = shape.vcs * shape.namespaces * shape.pods;
    ctx.say(&format!(
        "{}: {} VCs x {} namespaces x {} pods = {total} pods on {}",
        report.scenario, shape.vcs, shape.namespaces, shape.pods, env.target
    ));
    let ns = ctx.ns_names("n", shape.namespaces);
    let direct_ns: Vec<String> = (0..shape.vcs)
        .flat_map(|t| ctx.ns_names(&format!("d{t}-"), shape.namespaces))
        .collect();
    let all: Vec<usize> = (0..env.tenants.len()).collect();
    let obs = Observers::start(
        ctx,
        &env,
        if baseline_only { &[] } else { &all },
        direct_ns.iter().cloned().collect::<HashSet<_>>(),
    )
    .await;
    let measure_up = env.status_writer != StatusWriter::None;
    let result = async {
        let mut baseline: Option<PhaseResult> = None;
        if baseline_only || !g.no_baseline {
            ensure_namespaces(&env.super_client, &direct_ns, &ctx.run).await?;
            let lanes = Arc::new(env.direct_lanes(&direct_ns));
            let up = if measure_up {
                UpPath::Direct(obs.status_written.clone())
            } else {
                UpPath::None
            };
            let jobs = plan(lanes.len(), shape.pods, g.seed, 1);
            baseline =
                Some(run_phase(ctx, &lanes, jobs, true, shape.rate, &obs, &up, "baseline").await);
        }
        let mut synced: Option<(PhaseResult, SyncerUse)> = None;
        if !baseline_only && !ctx.stop.is_stopped() {
            for t in &env.tenants {
                ensure_namespaces(&t.client, &ns, &ctx.run).await?;
            }
            let lanes = Arc::new(env.tenant_lanes(&all, &ns));
            let launch = env.launch(g, ctx.work.join("syncer-data"), ctx.out.join("syncer.log"))?;
            let mut child = SyncerProcess::start(&launch)?;
            let mut usage = SyncerUse::default();
            let startup = child
                .wait_up(env.tenants.len(), Duration::from_secs(600), &ctx.stop)
                .await?;
            usage.startup_seconds = Some(startup.as_secs_f64());
            usage.rss_idle_bytes = child.rss_bytes().ok();
            let super_ns: Vec<String> = lanes.iter().map(|l| l.super_namespace.clone()).collect();
            let ns_secs = wait_super_namespaces(ctx, &env, &super_ns, g.settle_timeout).await?;
            report.notes.push(format!(
                "{} tenant namespaces synced before the pod burst in {}",
                super_ns.len(),
                ns_secs.map_or("- (not all)".into(), |s| format!("{s:.2} s"))
            ));
            let cpu0 = child.cpu_seconds().ok();
            let up = if measure_up {
                UpPath::Tenant
            } else {
                UpPath::None
            };
            let jobs = plan(lanes.len(), shape.pods, g.seed, 1);
            let res = run_phase(ctx, &lanes, jobs, false, shape.rate, &obs, &up, "syncer").await;
            let cpu1 = child.cpu_seconds().ok();
            usage.rss_peak_bytes = child.peak_rss_bytes().ok();
            if let (Some(a), Some(b)) = (cpu0, cpu1) {
                usage.cpu_seconds = Some(b - a);
                if res.synced_down > 0 {
                    usage.cpu_seconds_per_1000_pods =
                        Some((b - a) / (res.synced_down as f64 / 1000.0));
                }
            }
            if let Ok(text) = child.scrape().await {
                usage.own_lag_down = syncer_lag(&text, "down", "Pod");
                usage.own_lag_up = syncer_lag(&text, "up", "Pod");
            }
            child.terminate(Duration::from_secs(30)).await?;
            synced = Some((res, usage));
        }
        anyhow::Ok((baseline, synced))
    }
    .await;
    obs.shutdown().await;
    cleanup(ctx, &env).await;
    env.shutdown().await;
    let (baseline, synced) = result?;
    fill_report(
        report,
        total,
        baseline.as_ref(),
        synced.as_ref(),
        measure_up,
    );
    Ok(())
}

/// Rows, JSON and plots of a burst.
pub fn fill_report(
    report: &mut Report,
    total: usize,
    baseline: Option<&PhaseResult>,
    synced: Option<&(PhaseResult, SyncerUse)>,
    measure_up: bool,
) {
    let mib = |b: Option<u64>| num(b.map(|v| v as f64 / 1048576.0), 1);
    if let Some((s, u)) = synced {
        report.row(
            "syncer",
            "pods written / synced down / synced up",
            format!(
                "{} / {} / {}",
                s.written,
                s.synced_down,
                if measure_up {
                    s.synced_up.to_string()
                } else {
                    "-".into()
                }
            ),
        );
        report.row("syncer", "create burst (s)", num(s.create_seconds, 2));
        report.row(
            "syncer",
            "first create -> all synced (s)",
            num(s.all_synced_seconds, 2),
        );
        report.row("syncer", "pods/s down", num(s.down_rate, 0));
        report.row("syncer", "pods/s up", num(s.up_rate, 0));
        report.row(
            "syncer",
            "lag down p50 / p99",
            format!("{} / {}", ms(s.down.p50), ms(s.down.p99)),
        );
        report.row(
            "syncer",
            "lag up p50 / p99",
            format!("{} / {}", ms(s.up.p50), ms(s.up.p99)),
        );
        crate::scenarios::own_lag_rows(report, "syncer", &u.own_lag_down, &u.own_lag_up);
        report.row(
            "syncer",
            "CPU s / 1,000 pods",
            num(u.cpu_seconds_per_1000_pods, 3),
        );
        report.row(
            "syncer",
            "RSS idle / peak (MiB)",
            format!("{} / {}", mib(u.rss_idle_bytes), mib(u.rss_peak_bytes)),
        );
        report.row(
            "syncer",
            "start-up: all tenants watching (s)",
            num(u.startup_seconds, 2),
        );
    }
    if let Some(b) = baseline {
        report.row(
            "baseline",
            "pods written / seen / status seen",
            format!(
                "{} / {} / {}",
                b.written,
                b.synced_down,
                if measure_up {
                    b.synced_up.to_string()
                } else {
                    "-".into()
                }
            ),
        );
        report.row(
            "baseline",
            "pods/s (direct create -> seen)",
            num(b.down_rate, 0),
        );
        report.row("baseline", "status writes/s seen", num(b.up_rate, 0));
        report.row(
            "baseline",
            "lag create p50 / p99",
            format!("{} / {}", ms(b.down.p50), ms(b.down.p99)),
        );
        report.row(
            "baseline",
            "lag status p50 / p99",
            format!("{} / {}", ms(b.up.p50), ms(b.up.p99)),
        );
    }
    let mut ratios = serde_json::Map::new();
    if let (Some((s, _)), Some(b)) = (synced, baseline) {
        let r = [
            ("down_rate", ratio(s.down_rate, b.down_rate)),
            ("up_rate", ratio(s.up_rate, b.up_rate)),
            ("down_p50", ratio(s.down.p50, b.down.p50)),
            ("down_p99", ratio(s.down.p99, b.down.p99)),
            ("up_p50", ratio(s.up.p50, b.up.p50)),
            ("up_p99", ratio(s.up.p99, b.up.p99)),
        ];
        report.row(
            "ratio",
            "syncer / direct: pods/s down, up",
            format!("{} , {}", times(r[0].1), times(r[1].1)),
        );
        report.row(
            "ratio",
            "syncer / direct: lag down p50, p99",
            format!("{} , {}", times(r[2].1), times(r[3].1)),
        );
        report.row(
            "ratio",
            "syncer / direct: lag up p50, p99",
            format!("{} , {}", times(r[4].1), times(r[5].1)),
        );
        for (k, v) in r {
            ratios.insert(k.into(), json!(v));
        }
    }
    report.results = json!({
        "pods": total,
        "syncer": synced.map(|(s, _)| s),
        "syncer_process": synced.map(|(_, u)| u),
        "baseline": baseline,
        "ratio_syncer_to_direct": ratios,
    });
    report.notes.push(
        "down lag: tenant create sent -> super copy first seen by the harness's watch on the super cluster; \
         up lag: super pod first seen Running -> tenant pod first seen Running (both by the harness's watches). \
         Baseline: the same pods created directly on the super cluster (create sent -> seen), and their \
         status written directly by the harness (write sent -> seen)."
            .into(),
    );
    report.notes.push(
        "the syncer's own histogram (vc_syncer_sync_lag_seconds, scraped at the end) measures oldest unapplied \
         event -> successful reconcile inside the syncer; the harness's figures add watch delivery both ways."
            .into(),
    );
    // Plots.
    let mut lag_lines = Vec::new();
    let mut rate_lines = Vec::new();
    let window = 1.0;
    if let Some((s, _)) = synced
        && let Some(o) = s.origin
    {
        for (name, samples) in [
            ("syncer down", &s.down_samples),
            ("syncer up", &s.up_samples),
        ] {
            if samples.is_empty() {
                continue;
            }
            let series = lag_series(o, samples, window);
            lag_lines.push(Line {
                name: format!("{name} p50"),
                points: series
                    .iter()
                    .filter_map(|p| p.p50.map(|v| (p.t, v)))
                    .collect(),
            });
            lag_lines.push(Line {
                name: format!("{name} p99"),
                points: series
                    .iter()
                    .filter_map(|p| p.p99.map(|v| (p.t, v)))
                    .collect(),
            });
        }
        rate_lines.push(Line {
            name: "syncer down".into(),
            points: rate_series(o, &s.down_events, window),
        });
        if !s.up_events.is_empty() {
            rate_lines.push(Line {
                name: "syncer up".into(),
                points: rate_series(o, &s.up_events, window),
            });
        }
    }
    if let Some(b) = baseline
        && let Some(o) = b.origin
    {
        let series = lag_series(o, &b.down_samples, window);
        lag_lines.push(Line {
            name: "direct p99".into(),
            points: series
                .iter()
                .filter_map(|p| p.p99.map(|v| (p.t, v)))
                .collect(),
        });
        rate_lines.push(Line {
            name: "direct create".into(),
            points: rate_series(o, &b.down_events, window),
        });
    }
    if !lag_lines.is_empty() {
        report.plots.push(Plot {
            file: "lag.png".into(),
            title: "lag percentiles per 1 s window (by write time)".into(),
            x_label: "seconds since the phase's first create".into(),
            y_label: "lag (s)".into(),
            series: lag_lines,
        });
    }
    if !rate_lines.is_empty() {
        report.plots.push(Plot {
            file: "throughput.png".into(),
            title: "pods observed per second".into(),
            x_label: "seconds since the phase's first create".into(),
            y_label: "pods/s".into(),
            series: rate_lines,
        });
    }
}
