//! Backpressure: a stuck reconciler bounds memory and eventually makes appends wait; the disk budget makes
//! appends wait until entries are applied. Bounds are on counts, never on time.

mod pipeline_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pipeline_support::{Recording, config, pod, wait_drained, wait_until};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::shard::ReconcileError;

const MAX_PENDING: usize = 16;
const SHARD_QUEUE: usize = 8;
const WRITER_QUEUE: usize = 4;
const GROUP: usize = 16;
const TOTAL: usize = 1000;

/// Starts 50 appenders of 20 single-record appends each against a pipeline with small bounded stages,
/// waits until the stages are full (at least `min_pending` keys held by the shard), and checks what was
/// acknowledged.
async fn fill_until_stuck(
    rec: Arc<Recording>,
    min_pending: usize,
    dir: &std::path::Path,
) -> (Pipeline, Arc<AtomicUsize>, Vec<tokio::task::JoinHandle<()>>) {
    let cfg = PipelineConfig {
        max_pending_keys: MAX_PENDING,
        shard_queue_capacity: SHARD_QUEUE,
        writer_queue_capacity: WRITER_QUEUE,
        max_group_records: GROUP,
        retry_base: std::time::Duration::from_millis(20),
        retry_max: std::time::Duration::from_millis(100),
        ..config(dir, 1)
    };
    let pipeline = Pipeline::start(cfg, rec).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..50 {
        let sink = pipeline.sink();
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            for i in 0..TOTAL / 50 {
                sink.append(vec![pod("t1", "ns", &format!("p{t}-{i}"), 1)], None)
                    .await
                    .unwrap();
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    wait_until("every bounded stage is full", || {
        let s = pipeline.stats();
        s.shard_pending_keys[0] >= min_pending
            && s.shard_queue_depth[0] == SHARD_QUEUE
            && s.writer_queue_depth == WRITER_QUEUE
    })
    .await;
    let stats = pipeline.stats();
    let pending = stats.shard_pending_keys[0];
    assert!(pending <= MAX_PENDING);
    assert!(stats.shard_queue_depth[0] <= SHARD_QUEUE);
    // Acknowledged = held by the shard + waiting in its channel + at most one group being handed over.
    let bound = pending + SHARD_QUEUE + GROUP;
    let acked_now = acked.load(Ordering::SeqCst);
    assert!(
        acked_now <= bound,
        "{acked_now} appends acknowledged while reconciles make no progress (bound {bound})"
    );
    assert!(stats.backlog_records as usize <= bound);
    (pipeline, acked, tasks)
}

async fn finish(
    pipeline: Pipeline,
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) {
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(acked.load(Ordering::SeqCst), TOTAL);
    wait_drained(|| pipeline.stats()).await;
    assert_eq!(pipeline.stats().applied, TOTAL as u64);
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_reconciler_fills_the_channel_and_then_appends_wait() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::gated();
    // The shard thread is inside the blocked reconcile, so it stops draining and its channel fills.
    let (pipeline, acked, tasks) = fill_until_stuck(rec.clone(), 1, dir.path()).await;
    assert_eq!(rec.count(), 1, "only the first key is being reconciled");
    rec.open();
    finish(pipeline, acked, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_reconciles_fill_the_pending_set_to_its_bound_and_then_appends_wait() {
    let dir = tempfile::tempdir().unwrap();
    let broken = Arc::new(AtomicBool::new(true));
    let rec = Recording::with({
        let broken = Arc::clone(&broken);
        move |_, _| {
            if broken.load(Ordering::SeqCst) {
                Err(ReconcileError::new("api_unavailable", "down"))
            } else {
                Ok(())
            }
        }
    });
    // Failing keys stay pending (in backoff): the shard takes keys until it holds MAX_PENDING.
    let (pipeline, acked, tasks) = fill_until_stuck(rec, MAX_PENDING, dir.path()).await;
    broken.store(false, Ordering::SeqCst);
    finish(pipeline, acked, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_while_the_backlog_is_over_the_disk_budget() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::gated();
    let cfg = PipelineConfig {
        disk_budget_bytes: 4096,
        ..config(dir.path(), 1)
    };
    let pipeline = Pipeline::start(cfg, rec.clone()).unwrap();
    let sink = pipeline.sink();
    let first = (0..20)
        .map(|i| pod("t1", "ns", &format!("p{i}"), 1))
        .collect();
    // One batch larger than the whole budget still goes through when the backlog is empty.
    sink.append(first, None).await.unwrap();
    let stats = pipeline.stats();
    assert_eq!(stats.backlog_records, 20);
    assert!(stats.backlog_bytes >= 4096, "{stats:?}");
    let late = tokio::spawn({
        let sink = sink.clone();
        async move { sink.append(vec![pod("t1", "ns", "late", 1)], None).await }
    });
    wait_until("the append waits for the budget", || {
        pipeline.stats().appends_waiting_for_budget == 1
    })
    .await;
    assert!(!late.is_finished());
    assert_eq!(pipeline.stats().backlog_records, 20);
    rec.open();
    late.await.unwrap().unwrap();
    wait_drained(|| pipeline.stats()).await;
    assert_eq!(pipeline.stats().applied, 21);
    assert_eq!(pipeline.stats().appends_waiting_for_budget, 0);
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_appends_waiting_for_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Recording::with(|_, _| Err(ReconcileError::new("down", "unavailable")));
    let cfg = PipelineConfig {
        disk_budget_bytes: 1,
        ..config(dir.path(), 1)
    };
    let pipeline = Pipeline::start(cfg, failing).unwrap();
    let sink = pipeline.sink();
    sink.append(vec![pod("t1", "ns", "a", 1)], None)
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let sink = sink.clone();
        async move { sink.append(vec![pod("t1", "ns", "b", 1)], None).await }
    });
    wait_until("the append waits for the budget", || {
        pipeline.stats().appends_waiting_for_budget == 1
    })
    .await;
    pipeline.shutdown();
    let result = waiting.await.unwrap();
    assert!(result.is_err(), "{result:?}");
}
