//! Log and pipeline throughput: `cargo bench -p syncer --bench log_append`.
//!
//! 1. Append rate of ~1 KB records with group commit (many concurrent appenders, one writer) versus a
//!    flush per record (`max_group_records = 1`), and with power-loss durability (fsync per group).
//! 2. Append → reconcile throughput through 1, 4 and 8 shards with a no-op reconciler: time until every
//!    record is applied.
//!
//! Prints one line per case. Plain `main` (no harness): run it in release on an otherwise idle machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use syncer::log::{Durability, View};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::record::{EventType, Record, WorkKey};
use syncer::shard::{ReconcileError, Reconciler};

struct NoOp;

impl Reconciler for NoOp {
    fn reconcile(&self, _key: &WorkKey, _view: &View) -> Result<(), ReconcileError> {
        Ok(())
    }
}

/// A ~1 KB Pod record; `i` spreads records over 100 tenants × 10 namespaces.
fn record(i: u64) -> Record {
    let (cluster, ns, name) = (
        format!("t{}", i % 100),
        format!("ns{}", (i / 100) % 10),
        format!("p{i}"),
    );
    Record {
        cluster: cluster.clone(),
        kind: "Pod".into(),
        namespace: ns.clone(),
        name: name.clone(),
        uid: format!("uid-{i}"),
        resource_version: i.to_string(),
        event: EventType::Added,
        object: json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": i.to_string(), "uid": format!("uid-{i}"),
                         "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "registry.example/app:1.0"}],
                     "padding": "x".repeat(700)},
        }),
        seen_at_micros: 1,
        work: WorkKey {
            cluster,
            kind: "Pod".into(),
            namespace: ns,
            name,
        },
    }
}

fn config(dir: &std::path::Path, shards: usize) -> PipelineConfig {
    PipelineConfig {
        shards,
        disk_budget_bytes: 4 << 30,
        max_pending_keys: 1 << 20,
        shard_queue_capacity: 1 << 16,
        ..PipelineConfig::new(dir)
    }
}

/// Appends `total` records from `appenders` concurrent tasks in batches of `batch`; returns the elapsed time
/// until every append was acknowledged and until every record was applied.
fn run(cfg: PipelineConfig, total: u64, appenders: u64, batch: u64) -> (Duration, Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pipeline = Pipeline::start(cfg, Arc::new(NoOp)).expect("pipeline start");
    let started = Instant::now();
    runtime.block_on(async {
        let per_task = total / appenders;
        let mut tasks = Vec::new();
        for t in 0..appenders {
            let sink = pipeline.sink();
            tasks.push(tokio::spawn(async move {
                let mut i = t * per_task;
                let end = i + per_task;
                while i < end {
                    let records = (i..(i + batch).min(end)).map(record).collect();
                    sink.append(records, None).await.expect("append");
                    i += batch;
                }
            }));
        }
        for task in tasks {
            task.await.expect("appender");
        }
    });
    let acked = started.elapsed();
    let expected = (total / appenders) * appenders;
    for _ in 0..600_000 {
        if pipeline.stats().applied >= expected {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let applied = started.elapsed();
    pipeline.shutdown();
    (acked, applied)
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// One measured configuration.
struct Case {
    name: &'static str,
    total: u64,
    appenders: u64,
    batch: u64,
    config: fn(&std::path::Path) -> PipelineConfig,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let cases = [
        Case {
            name: "group commit, 64 appenders x 1 record",
            total: 100_000,
            appenders: 64,
            batch: 1,
            config: |d| config(d, 4),
        },
        Case {
            name: "group commit, 8 appenders x 100 records",
            total: 200_000,
            appenders: 8,
            batch: 100,
            config: |d| config(d, 4),
        },
        Case {
            name: "flush every record, 64 appenders x 1 record",
            total: 5_000,
            appenders: 64,
            batch: 1,
            config: |d| PipelineConfig {
                max_group_records: 1,
                ..config(d, 4)
            },
        },
        Case {
            name: "group commit + fsync (power loss), 64 x 1",
            total: 50_000,
            appenders: 64,
            batch: 1,
            config: |d| PipelineConfig {
                durability: Durability::PowerLoss,
                ..config(d, 4)
            },
        },
        Case {
            name: "append->reconcile, 1 shard, 8 x 100",
            total: 200_000,
            appenders: 8,
            batch: 100,
            config: |d| config(d, 1),
        },
        Case {
            name: "append->reconcile, 4 shards, 8 x 100",
            total: 200_000,
            appenders: 8,
            batch: 100,
            config: |d| config(d, 4),
        },
        Case {
            name: "append->reconcile, 8 shards, 8 x 100",
            total: 200_000,
            appenders: 8,
            batch: 100,
            config: |d| config(d, 8),
        },
    ];
    println!(
        "case                                              records   ack rec/s   applied rec/s"
    );
    for case in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let (acked, applied) = run(
            (case.config)(dir.path()),
            case.total,
            case.appenders,
            case.batch,
        );
        println!(
            "{:<48} {:>9} {:>11.0} {:>15.0}",
            case.name,
            case.total,
            rate(case.total, acked),
            rate(case.total, applied)
        );
    }
}
