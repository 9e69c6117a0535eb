//! The scenarios and what they share: the run context, the observers (watches + status writer) and the
//! analysis of a phase of writes.

pub mod burst;
pub mod churn;
pub mod compare;
pub mod noisy;
pub mod phase;
pub mod restart;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use parking_lot::Mutex;

use crate::cli::{Global, StatusWriter};
use crate::env::Env;
use crate::observe::{Book, FirstSeen, SUPER, watch_pods};
use crate::report::Report;
use crate::stop::Stop;
use crate::workload::LABEL_RUN;

/// What every scenario gets.
pub struct Ctx {
    /// Global flags.
    pub global: Global,
    /// The run's stop signal.
    pub stop: Stop,
    /// Output folder.
    pub out: PathBuf,
    /// Working folder (kubeconfigs, syncer data).
    pub work: PathBuf,
    /// Run id.
    pub run: String,
    progress: MultiProgress,
}

impl Ctx {
    /// A context writing into `out` (work files in `out/work`).
    pub fn new(global: Global, stop: Stop, out: PathBuf, run: String) -> Self {
        let progress = if global.no_progress {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4))
        };
        Self {
            work: out.join("work"),
            global,
            stop,
            out,
            run,
            progress,
        }
    }

    /// A live progress bar.
    pub fn bar(&self, len: u64, msg: &str) -> ProgressBar {
        let bar = self.progress.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(msg.to_string());
        bar
    }

    /// Prints a line above the progress bars.
    pub fn say(&self, line: &str) {
        if self.progress.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.progress.println(line);
        }
    }

    /// Namespace names `lt-<run>-<tag><j>` for `j` in `0..n`.
    pub fn ns_names(&self, tag: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|j| format!("lt-{}-{tag}{j}", self.run))
            .collect()
    }

    /// The label selector of everything this run writes.
    pub fn selector(&self) -> String {
        format!("{LABEL_RUN}={}", self.run)
    }

    /// A fresh report for `scenario`.
    pub fn report(&self, scenario: &str, params: serde_json::Value) -> Report {
        Report {
            scenario: scenario.into(),
            command: std::env::args().collect(),
            target: self.global.target.to_string(),
            seed: self.global.seed,
            run_id: self.run.clone(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            wall_seconds: 0.0,
            interrupted: None,
            params,
            results: serde_json::json!({}),
            rows: Vec::new(),
            notes: Vec::new(),
            plots: Vec::new(),
        }
    }
}

/// The rows of the syncer's own lag histogram (down and up) under `section`.
pub fn own_lag_rows(
    report: &mut Report,
    section: &str,
    down: &crate::promtext::SyncerLag,
    up: &crate::promtext::SyncerLag,
) {
    report.row(section, "own histogram down p50 / p99", down.p50_p99());
    report.row(section, "own histogram up p50 / p99", up.p50_p99());
}

/// Status write times of direct pods or of super copies written by the harness.
pub type StatusTimes = Arc<Mutex<HashMap<(String, String), Instant>>>;

/// The watches of a run (super + tenants) and the harness's status writer.
pub struct Observers {
    /// What was observed.
    pub book: Arc<Book>,
    /// When the harness's status writes returned.
    pub status_written: StatusTimes,
    stop: Stop,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Observers {
    /// Watches the super cluster (pods of this run) and tenants `tenants`; writes Running status on direct
    /// pods (namespaces in `direct`) unless `--status-writer none`, and on super copies with
    /// `--status-writer harness`.
    pub async fn start(ctx: &Ctx, env: &Env, tenants: &[usize], direct: HashSet<String>) -> Self {
        let stop = Stop::new();
        {
            let run_stop = ctx.stop.clone();
            let mine = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = run_stop.stopped() => mine.fire("run stopped"),
                    _ = mine.stopped() => {}
                }
            });
        }
        let book = Arc::new(Book::default());
        let status_written: StatusTimes = Arc::default();
        let mut tasks = Vec::new();
        let writer = env.status_writer;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<FirstSeen>();
        let wants_writes = writer != StatusWriter::None;
        tasks.push(tokio::spawn(watch_pods(
            Api::<Pod>::all(env.super_client.clone()),
            SUPER,
            Some(ctx.selector()),
            book.clone(),
            wants_writes.then_some(tx),
            stop.clone(),
        )));
        if wants_writes {
            let filter = move |fs: &FirstSeen| {
                direct.contains(&fs.namespace) || writer == StatusWriter::Harness
            };
            tasks.push(tokio::spawn(crate::workload::status_writer(
                env.super_client.clone(),
                rx,
                filter,
                status_written.clone(),
                ctx.global.concurrency,
                stop.clone(),
            )));
        }
        for &t in tenants {
            let tenant = &env.tenants[t];
            tasks.push(tokio::spawn(watch_pods(
                Api::<Pod>::all(tenant.client.clone()),
                tenant.cluster,
                Some(ctx.selector()),
                book.clone(),
                None,
                stop.clone(),
            )));
        }
        Self {
            book,
            status_written,
            stop,
            tasks,
        }
    }

    /// Stops the watches and the status writer.
    pub async fn shutdown(self) {
        self.stop.fire("done");
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// Waits (bounded) until every namespace of `tenant_ns` (tenant cluster key, namespace) exists on the super
/// cluster; returns how long it took, `None` if it did not happen in time.
pub async fn wait_super_namespaces(
    ctx: &Ctx,
    env: &Env,
    expected: &[String],
    limit: Duration,
) -> Result<Option<f64>> {
    let start = Instant::now();
    let api = Api::<Namespace>::all(env.super_client.clone());
    let lp = ListParams::default().labels(&ctx.selector());
    let want: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let deadline = start + limit;
    loop {
        let list = api.list(&lp).await.context("list super namespaces")?;
        let have = list
            .items
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .filter(|n| want.contains(n))
            .count();
        if have >= want.len() {
            return Ok(Some(start.elapsed().as_secs_f64()));
        }
        if Instant::now() >= deadline || !ctx.stop.sleep(Duration::from_millis(250)).await {
            return Ok(None);
        }
    }
}

/// Deletes the namespaces this run created on the super cluster and the tenants (real clusters only; the
/// simulated ones vanish with the process).
pub async fn cleanup(ctx: &Ctx, env: &Env) {
    if env.is_embedded() || ctx.global.keep {
        return;
    }
    let lp = ListParams::default().labels(&ctx.selector());
    let mut clients = vec![env.super_client.clone()];
    clients.extend(env.tenants.iter().map(|t| t.client.clone()));
    for c in clients {
        let api = Api::<Namespace>::all(c);
        if let Err(e) = api.delete_collection(&DeleteParams::default(), &lp).await {
            tracing::warn!(error = %e, "cleanup: deleting namespaces failed");
        }
    }
}
