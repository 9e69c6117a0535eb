//! Rows, JSON and plots of a churn.

use serde_json::json;

use super::analyze::{ChurnPhase, observed_rates};
use super::{ChurnOutcome, kinds};
use crate::cli::ChurnArgs;
use crate::report::{Line, Plot, Report, ms, num, times};
use crate::stats::{P50_P99, Pick, WindowPoint, percentile_points, rate_series, ratio};

fn lag_row(p: &ChurnPhase, k: super::drive::OpKind) -> String {
    let f = p.kind(k);
    format!(
        "{} / {} / {}",
        ms(f.down.p50),
        ms(f.down.p90),
        ms(f.down.p99)
    )
}

fn counts_row(p: &ChurnPhase, k: super::drive::OpKind) -> String {
    let f = p.kind(k);
    format!(
        "{} / {} / {} / {} / {}",
        f.requested, f.ok, f.failed, f.observed, f.overwritten
    )
}

fn phase_rows(report: &mut Report, section: &str, p: &ChurnPhase, measure_up: bool) {
    report.row(
        section,
        "ops sent / ok / failed / skipped / converted",
        format!(
            "{} / {} / {} / {} / {}",
            p.ops_sent, p.ops_ok, p.ops_failed, p.skipped, p.converted
        ),
    );
    report.row(section, "ops/s (ok)", num(p.ops_per_second, 1));
    for (k, name) in kinds() {
        report.row(
            section,
            &format!("{name}: requested / ok / failed / observed / overwritten"),
            counts_row(p, k),
        );
        report.row(
            section,
            &format!("{name} lag down p50 / p90 / p99"),
            lag_row(p, k),
        );
    }
    if measure_up {
        report.row(
            section,
            "create lag up p50 / p90 / p99",
            format!("{} / {} / {}", ms(p.up.p50), ms(p.up.p90), ms(p.up.p99)),
        );
    }
    report.row(
        section,
        "send lateness p99 / max",
        format!("{} / {}", ms(p.send_lateness.p99), ms(p.send_lateness.max)),
    );
    report.row(section, "live pods at the end", p.live_at_end.to_string());
    for u in &p.unobserved {
        report.notes.push(format!("{section}: not observed: {u}"));
    }
}

fn series_line(name: String, series: &[WindowPoint], pick: Pick) -> Line {
    Line {
        name,
        points: percentile_points(series, pick),
    }
}

/// Fills `report` from the churn's outcome.
pub fn fill(report: &mut Report, a: &ChurnArgs, o: &ChurnOutcome, measure_up: bool) {
    let window = a.window.as_secs_f64();
    if let Some(s) = &o.synced {
        phase_rows(report, "syncer", s, measure_up);
        let u = &o.usage;
        let mib = |b: Option<u64>| num(b.map(|v| v as f64 / 1048576.0), 1);
        crate::scenarios::own_lag_rows(report, "syncer", &u.own_lag_down, &u.own_lag_up);
        report.row(
            "syncer",
            "CPU cores avg / s per 1,000 ops",
            format!(
                "{} / {}",
                num(u.cpu_cores_avg, 2),
                num(u.cpu_seconds_per_1000_ops, 3)
            ),
        );
        report.row(
            "syncer",
            "RSS idle / peak (MiB)",
            format!("{} / {}", mib(u.rss_idle_bytes), mib(u.rss_peak_bytes)),
        );
    }
    if let Some(c) = &o.comparison {
        report.row(
            "compare",
            "tenant pods / super copies",
            format!("{} / {}", c.tenant_pods, c.super_pods),
        );
        report.row(
            "compare",
            "lost / duplicated / stale",
            format!("{} / {} / {}", c.lost, c.duplicated, c.stale),
        );
        report.row(
            "compare",
            "end of churn -> converged (s)",
            num(o.converged_after, 2),
        );
    }
    if let Some(b) = &o.baseline {
        phase_rows(report, "baseline", b, measure_up);
    }
    let mut ratios = serde_json::Map::new();
    if let (Some(s), Some(b)) = (&o.synced, &o.baseline) {
        for (k, name) in kinds() {
            let (sf, bf) = (s.kind(k), b.kind(k));
            let p50 = ratio(sf.down.p50, bf.down.p50);
            let p99 = ratio(sf.down.p99, bf.down.p99);
            report.row(
                "ratio",
                &format!("syncer / direct: {name} lag p50, p99"),
                format!("{} , {}", times(p50), times(p99)),
            );
            ratios.insert(format!("{name}_p50"), json!(p50));
            ratios.insert(format!("{name}_p99"), json!(p99));
        }
        let ops = ratio(s.ops_per_second, b.ops_per_second);
        report.row("ratio", "syncer / direct: ops/s", times(ops));
        ratios.insert("ops_per_second".into(), json!(ops));
    }
    report.results = json!({
        "syncer": o.synced,
        "syncer_process": o.synced.as_ref().map(|_| &o.usage),
        "baseline": o.baseline,
        "comparison": o.comparison,
        "converged_after_seconds": o.converged_after,
        "ratio_syncer_to_direct": ratios,
    });
    report.notes.push(
        "down lag, sent -> observed on the super cluster by the harness's watch: create = super copy first \
         seen; update (the label loadtest.x-k8s.io/gen set to the pod's update count) = super copy first \
         seen carrying that value; delete = super copy seen deleted. Overwritten: an update seen on the pod it \
         was written to and then replaced there by another value before reaching the super cluster (someone \
         else wrote the pod; not a lag sample). Up lag (creates): super pod first seen \
         Running -> tenant pod first seen Running. Baseline: the same schedule written directly to the super \
         cluster (status by the harness)."
            .into(),
    );
    report.notes.push(
        "the schedule (times and requested kinds) comes from the seed; updates and deletes pick a random \
         live pod whose last write was already observed on the super cluster; a create over --max-pods \
         becomes a delete and an update/delete with no such pod becomes a create (converted), or is \
         skipped when neither is possible. Windows group operations by send time."
            .into(),
    );
    report.notes.push(
        "the syncer's own histogram (vc_syncer_sync_lag_seconds, Pod, scraped at the end) measures oldest \
         unapplied event -> successful reconcile inside the syncer; the harness's figures add watch delivery \
         both ways."
            .into(),
    );
    plots(report, o, window);
}

fn plots(report: &mut Report, o: &ChurnOutcome, window: f64) {
    let mut lines = [Vec::new(), Vec::new()];
    for (i, (q, pick)) in P50_P99.into_iter().enumerate() {
        if let Some(s) = &o.synced {
            for (k, name) in kinds() {
                if !s.kind(k).series.is_empty() {
                    lines[i].push(series_line(
                        format!("{name} down {q}"),
                        &s.kind(k).series,
                        pick,
                    ));
                }
            }
            if !s.up_series.is_empty() {
                lines[i].push(series_line(format!("create up {q}"), &s.up_series, pick));
            }
        }
        if let Some(b) = &o.baseline
            && !b.create.series.is_empty()
        {
            lines[i].push(series_line(
                format!("direct create {q}"),
                &b.create.series,
                pick,
            ));
        }
    }
    let [p50, p99] = lines;
    for (file, q, series) in [("lag_p50.png", "p50", p50), ("lag_p99.png", "p99", p99)] {
        if !series.is_empty() {
            report.plots.push(Plot {
                file: file.into(),
                title: format!("lag {q} per {window} s window, by operation"),
                x_label: "seconds since the churn started (send time)".into(),
                y_label: "lag (s)".into(),
                series,
            });
        }
    }
    let mut rate_lines = Vec::new();
    if let Some(s) = &o.synced {
        for (k, points) in observed_rates(s, window) {
            rate_lines.push(Line {
                name: format!("{} observed", k.name()),
                points,
            });
        }
        if let Some(origin) = s.origin {
            rate_lines.push(Line {
                name: "ops sent".into(),
                points: rate_series(origin, &s.sent_events, window),
            });
        }
    }
    if let Some(b) = &o.baseline
        && let Some(origin) = b.origin
    {
        let mut all: Vec<_> = Vec::new();
        for (k, _) in kinds() {
            all.extend(b.kind(k).events.iter().copied());
        }
        rate_lines.push(Line {
            name: "direct observed".into(),
            points: rate_series(origin, &all, window),
        });
    }
    if !rate_lines.is_empty() {
        report.plots.push(Plot {
            file: "throughput.png".into(),
            title: format!("operations per second per {window} s window"),
            x_label: "seconds since the churn started".into(),
            y_label: "ops/s".into(),
            series: rate_lines,
        });
    }
}
