//! `loadtest`: the load-test harness of the syncer.
//!
//! It drives tenant API servers with scenarios (burst, churn, noisy-neighbor, restart, baseline), runs the
//! `syncer` binary as a child process (so `kill -9` and `/proc` CPU/RSS figures are honest), and measures
//! sync lag end to end from outside it: writes to a tenant → super copies seen by a watch on the super
//! cluster; status on the super cluster → seen by a watch on the tenant. Every run also writes the same
//! pods directly to the super cluster, so the syncer's figures are quoted as ratios to the direct path.
//!
//! Modules: `cli` (flags), `env` (clusters of a run), `syncer_proc` (the child), `observe` (watches),
//! `workload` (what is written), `scenarios` (the scenarios), `stats`, `promtext` (the syncer's metrics),
//! `report` (table, JSON, Markdown, PNG plots), `procfs`, `stop` (Ctrl-C and timeouts).

pub mod cli;
pub mod env;
pub mod observe;
pub mod procfs;
pub mod promtext;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod stop;
pub mod syncer_proc;
pub mod workload;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::cli::{Cli, Scenario};
use crate::scenarios::Ctx;
use crate::stop::Stop;

/// Runs the scenario named on the command line; writes the outputs even when the run is interrupted or
/// fails part-way. Returns the output folder and whether the run completed.
pub async fn run(cli: Cli) -> Result<(PathBuf, bool)> {
    procfs::raise_nofile_limit();
    let g = cli.global.clone();
    let name = match &cli.scenario {
        Scenario::Burst(_) => "burst",
        Scenario::Churn(_) => "churn",
        Scenario::NoisyNeighbor(_) => "noisy-neighbor",
        Scenario::Restart(_) => "restart",
        Scenario::Baseline(_) => "baseline",
    };
    let out = g.out.clone().unwrap_or_else(|| {
        PathBuf::from("loadtest-results").join(format!(
            "{name}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    std::fs::create_dir_all(&out)?;
    let run_id = g.run_id.clone().unwrap_or_else(|| format!("s{}", g.seed));
    let stop = Stop::new();
    stop.arm(g.timeout);
    let ctx = Ctx::new(g, stop.clone(), out.clone(), run_id);
    let params = serde_json::to_value(format!("{:?}", cli.scenario))?;
    let mut report = ctx.report(name, params);
    let started = Instant::now();
    let outcome = match &cli.scenario {
        Scenario::Burst(s) => scenarios::burst::run(&ctx, s, false, &mut report).await,
        Scenario::Baseline(s) => scenarios::burst::run(&ctx, s, true, &mut report).await,
        Scenario::Restart(a) => scenarios::restart::run(&ctx, a, &mut report).await,
        Scenario::Churn(a) => scenarios::churn::run(&ctx, a, &mut report).await,
        Scenario::NoisyNeighbor(a) => scenarios::noisy::run(&ctx, a, &mut report).await,
    };
    report.wall_seconds = started.elapsed().as_secs_f64();
    if let Err(e) = &outcome {
        stop.fire(&format!("failed: {e:#}"));
    }
    report.interrupted = stop.reason();
    let table = report::write(&report, &out)?;
    println!("{table}");
    println!("outputs in {}", out.display());
    outcome.map(|()| (out, report.interrupted.is_none()))
}
