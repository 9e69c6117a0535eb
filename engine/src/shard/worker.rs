//! The shard thread: drain the channel (while there is room), reconcile the next key, record the outcome,
//! compact applied entries.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, TryRecvError};

use super::checkpoint::Checkpoints;
use super::scheduler::{Outcome, Scheduler, Taken, Weights};
use super::tenant_stats::TenantStats;
use super::{Reconciler, ShardConfig, backoff};
use crate::log::{Appended, Compactor, ShardReplay, View};
use crate::record::WorkKey;

/// Longest wait for new work before the thread checks for shutdown and compacts.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Counters of one shard, read by `Pipeline::stats`.
#[derive(Debug, Default)]
pub(crate) struct ShardStats {
    pub(crate) pending_keys: AtomicUsize,
    pub(crate) applied: AtomicU64,
    pub(crate) checkpoint: AtomicU64,
    /// seen_at (µs) of the oldest unapplied entry, 0 if none.
    pub(crate) oldest_unapplied_micros: AtomicU64,
}

/// One shard's thread state.
pub(crate) struct ShardWorker {
    id: u16,
    rx: Receiver<Appended>,
    /// Keys injected without a log entry (the patroller's repairs).
    inject_rx: Receiver<WorkKey>,
    scheduler: Scheduler,
    checkpoints: Checkpoints,
    reconciler: Arc<dyn Reconciler>,
    view: View,
    compactor: Compactor,
    config: ShardConfig,
    stop: Arc<AtomicBool>,
    stats: Arc<ShardStats>,
    tenant_stats: TenantStats,
    last_compaction: Instant,
    gauges: Gauges,
}

struct Gauges {
    queue_depth: metrics::Gauge,
    pending_keys: metrics::Gauge,
    checkpoint_age: metrics::Gauge,
}

impl ShardWorker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u16,
        rx: Receiver<Appended>,
        inject_rx: Receiver<WorkKey>,
        replay: ShardReplay,
        weights: Weights,
        reconciler: Arc<dyn Reconciler>,
        view: View,
        compactor: Compactor,
        config: ShardConfig,
        stop: Arc<AtomicBool>,
        stats: Arc<ShardStats>,
        tenant_stats: TenantStats,
    ) -> Self {
        let mut scheduler = Scheduler::new(config.fairness, config.quantum, weights);
        let mut checkpoints = Checkpoints::new(replay.checkpoint, replay.next_seq);
        // Replay: every unapplied entry's key is queued again, coalesced per key (the pending set may exceed
        // `max_pending_keys` here; it is bounded by the disk budget that bounded the log).
        for entry in &replay.entries {
            checkpoints.accept(entry.seq, entry.bytes, entry.seen_at_micros);
            tenant_stats.accepted(&entry.key.cluster, 1);
            scheduler.push(entry);
        }
        let label = id.to_string();
        let gauges = Gauges {
            queue_depth: metrics::gauge!("vc_syncer_shard_queue_depth", "shard" => label.clone()),
            pending_keys: metrics::gauge!("vc_syncer_shard_pending_keys", "shard" => label.clone()),
            checkpoint_age: metrics::gauge!("vc_syncer_checkpoint_age_seconds", "shard" => label),
        };
        let worker = Self {
            id,
            rx,
            inject_rx,
            scheduler,
            checkpoints,
            reconciler,
            view,
            compactor,
            config,
            stop,
            stats,
            tenant_stats,
            last_compaction: Instant::now(),
            gauges,
        };
        worker.publish();
        worker
    }

    /// Runs until shutdown.
    pub(crate) fn run(mut self) {
        let mut connected = true;
        while !self.stop.load(Ordering::Acquire) {
            if connected {
                connected = self.drain();
                self.publish();
            }
            let now = Instant::now();
            if let Some(taken) = self.scheduler.next(now) {
                self.reconcile(taken);
                self.maybe_compact(false);
                self.publish();
                continue;
            }
            self.maybe_compact(true);
            self.publish();
            let wait = self
                .scheduler
                .next_due()
                .map_or(IDLE_WAIT, |due| due.saturating_duration_since(now))
                .min(IDLE_WAIT);
            if connected && self.has_room() {
                crossbeam_channel::select! {
                    recv(self.rx) -> entry => match entry {
                        Ok(entry) => self.accept(entry),
                        Err(_) => connected = false,
                    },
                    recv(self.inject_rx) -> key => match key {
                        Ok(key) => self.inject(key),
                        Err(_) => connected = false,
                    },
                    default(wait) => {}
                }
            } else {
                std::thread::sleep(wait);
            }
        }
        self.maybe_compact(true);
        if let Err(error) = self.compactor.flush() {
            tracing::error!(shard = self.id, error = %error, "final flush failed");
        }
        tracing::debug!(shard = self.id, "shard stopped");
    }

    fn has_room(&self) -> bool {
        self.scheduler.len() < self.config.max_pending_keys
    }

    /// Takes entries from the channel while the pending set has room. Returns false once disconnected.
    ///
    /// This is the backpressure point: when the pending set is full the channel is left to fill up.
    fn drain(&mut self) -> bool {
        while self.has_room() {
            match self.rx.try_recv() {
                Ok(entry) => self.accept(entry),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        // Injected keys after the entries already waiting, so they queue behind them.
        while self.has_room() {
            match self.inject_rx.try_recv() {
                Ok(key) => self.inject(key),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn inject(&mut self, key: WorkKey) {
        if self.scheduler.inject(key) {
            metrics::counter!("vc_syncer_coalesced_total").increment(1);
        }
    }

    fn accept(&mut self, entry: Appended) {
        debug_assert_eq!(entry.shard, self.id, "entry routed to the wrong shard");
        self.checkpoints
            .accept(entry.seq, entry.bytes, entry.seen_at_micros);
        self.tenant_stats.accepted(&entry.key.cluster, 1);
        if self.scheduler.push(&entry) {
            metrics::counter!("vc_syncer_coalesced_total").increment(1);
        }
    }

    fn reconcile(&mut self, taken: Taken) {
        let reconciler = &self.reconciler;
        let view = &self.view;
        let key = &taken.key;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| reconciler.reconcile(key, view)))
            .unwrap_or_else(|_| {
                Err(super::ReconcileError::new(
                    "panic",
                    "the reconciler panicked",
                ))
            });
        let now = Instant::now();
        match result {
            Ok(()) => {
                metrics::counter!("vc_syncer_reconcile_total", "code" => "ok").increment(1);
                record_lag(&taken);
                let lags: Vec<f64> = [taken.oldest_down, taken.oldest_up]
                    .into_iter()
                    .flatten()
                    .map(age_seconds)
                    .collect();
                let cluster = taken.key.cluster.clone();
                let applied = self.scheduler.complete(taken, Outcome::Done, now);
                self.tenant_stats
                    .applied(&cluster, applied.len() as u64, &lags);
                self.stats
                    .applied
                    .fetch_add(applied.len() as u64, Ordering::Relaxed);
                self.checkpoints.applied(&applied);
            }
            Err(error) => {
                metrics::counter!("vc_syncer_reconcile_total", "code" => error.code).increment(1);
                metrics::counter!("vc_syncer_retries_total").increment(1);
                let delay = backoff(
                    taken.attempts.saturating_add(1),
                    self.config.retry_base,
                    self.config.retry_max,
                );
                tracing::debug!(
                    shard = self.id,
                    cluster = %taken.key.cluster,
                    kind = %taken.key.kind,
                    namespace = %taken.key.namespace,
                    name = %taken.key.name,
                    attempts = taken.attempts + 1,
                    error = %error,
                    "reconcile failed, retrying after backoff"
                );
                self.scheduler
                    .complete(taken, Outcome::Retry { backoff: delay }, now);
            }
        }
    }

    fn maybe_compact(&mut self, idle: bool) {
        let due = self.checkpoints.applied_count() >= self.config.compaction_batch
            || self.last_compaction.elapsed() >= self.config.compaction_interval
            || idle;
        if !due {
            return;
        }
        let Some(compaction) = self.checkpoints.take_compaction() else {
            return;
        };
        self.last_compaction = Instant::now();
        match self.compactor.compact(
            self.id,
            &compaction.applied,
            compaction.bytes,
            compaction.checkpoint,
        ) {
            Ok(()) => self.checkpoints.persisted(&compaction),
            Err(error) => {
                tracing::error!(shard = self.id, error = %error, "compaction failed, will retry");
                self.checkpoints.restore(compaction);
            }
        }
    }

    fn publish(&self) {
        let pending = self.scheduler.len();
        self.stats.pending_keys.store(pending, Ordering::Relaxed);
        self.stats
            .checkpoint
            .store(self.checkpoints.checkpoint(), Ordering::Relaxed);
        let oldest = self.checkpoints.oldest_unapplied_seen_at().unwrap_or(0);
        self.stats
            .oldest_unapplied_micros
            .store(oldest, Ordering::Relaxed);
        self.gauges.queue_depth.set(self.rx.len() as f64);
        self.gauges.pending_keys.set(pending as f64);
        self.gauges.checkpoint_age.set(age_seconds(oldest));
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since `seen_at_micros` (0 for 0 = nothing).
pub(crate) fn age_seconds(seen_at_micros: u64) -> f64 {
    if seen_at_micros == 0 {
        return 0.0;
    }
    now_micros().saturating_sub(seen_at_micros) as f64 / 1e6
}

fn record_lag(taken: &Taken) {
    for (direction, oldest) in [("down", taken.oldest_down), ("up", taken.oldest_up)] {
        if let Some(seen) = oldest {
            metrics::histogram!(
                "vc_syncer_sync_lag_seconds",
                "direction" => direction,
                "kind" => taken.key.kind.clone()
            )
            .record(age_seconds(seen));
        }
    }
}
