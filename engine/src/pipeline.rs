//! The pipeline: wires the log (writer thread, view, compaction) to the shards and the reconciler.
//!
//! ```text
//! LogSink::append ──(tokio mpsc, bounded)──► writer thread ──(crossbeam, bounded, per shard)──► shard threads
//!                                              │ one sled batch + flush per group          │ Reconciler::reconcile
//!                                              ▼                                            ▼
//!                                      sled: log entries, view, resume points, checkpoints ◄── compaction
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::log::{
    self, Appended, Backlog, Compactor, Durability, LogError, LogSink, View, Writer, WriterConfig,
    WriterMsg, format,
};
use crate::record::WorkKey;
use crate::shard::router;
use crate::shard::scheduler::Weights;
use crate::shard::{Reconciler, ShardConfig, ShardStats, ShardWorker, TenantStats};

/// Configuration of the pipeline. See [`PipelineConfig::default`] for the defaults.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Directory of the data (sled lives in `<data_dir>/log`).
    pub data_dir: PathBuf,
    /// Number of shard threads (1..=65535). Changing it between runs re-routes unapplied entries.
    pub shards: usize,
    /// Capacity of the channel in front of each shard, in entries.
    pub shard_queue_capacity: usize,
    /// Unapplied backlog (bytes of log entries) at which appends start to wait.
    pub disk_budget_bytes: u64,
    /// Weighted fair scheduling across tenants inside a shard; `false` = one FIFO.
    pub fairness: bool,
    /// Keys a tenant of weight 1 gets per round of the fair scheduler.
    pub quantum: u32,
    /// Most keys a shard holds (queued, delayed or running) before it stops draining its channel.
    pub max_pending_keys: usize,
    /// Capacity of the writer's queue, in `append` calls.
    pub writer_queue_capacity: usize,
    /// Most records per group commit.
    pub max_group_records: usize,
    /// Most bytes of encoded records per group commit.
    pub max_group_bytes: usize,
    /// What an acknowledgement promises.
    pub durability: Durability,
    /// sled's cache, in bytes.
    pub cache_capacity_bytes: u64,
    /// Backoff after the first failure of a key; doubles per further failure.
    pub retry_base: Duration,
    /// Longest backoff.
    pub retry_max: Duration,
    /// Applied entries that trigger a compaction batch.
    pub compaction_batch: usize,
    /// Longest time between compactions of a busy shard.
    pub compaction_interval: Duration,
}

impl Default for PipelineConfig {
    /// 8 shards with 1,024-entry channels and 4,096 pending keys each, a 1 GiB disk budget, fairness on with
    /// quantum 8, groups of up to 4,096 records / 8 MiB, process-crash durability, a 64 MiB sled cache,
    /// retries from 100 ms doubling up to 30 s, compaction every 256 applied entries or 100 ms.
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            shards: 8,
            shard_queue_capacity: 1024,
            disk_budget_bytes: 1 << 30,
            fairness: true,
            quantum: 8,
            max_pending_keys: 4096,
            writer_queue_capacity: 256,
            max_group_records: 4096,
            max_group_bytes: 8 << 20,
            durability: Durability::Process,
            cache_capacity_bytes: 64 << 20,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            compaction_batch: 256,
            compaction_interval: Duration::from_millis(100),
        }
    }
}

impl PipelineConfig {
    /// The default configuration with data in `data_dir`.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}

/// Errors starting the pipeline.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The configuration is unusable.
    #[error("invalid pipeline configuration: {0}")]
    Config(String),
    /// Opening the log (or replaying it) failed.
    #[error("failed to open the log")]
    Log(#[from] LogError),
    /// A thread could not be started.
    #[error("failed to start the {0} thread")]
    Spawn(String, #[source] std::io::Error),
}

/// A snapshot of the pipeline's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineStats {
    /// Unapplied log entries.
    pub backlog_records: u64,
    /// Bytes of unapplied log entries.
    pub backlog_bytes: u64,
    /// `append` calls waiting for the backlog to fall below the disk budget.
    pub appends_waiting_for_budget: usize,
    /// `append` calls queued for the writer.
    pub writer_queue_depth: usize,
    /// Entries waiting in each shard's channel.
    pub shard_queue_depth: Vec<usize>,
    /// Keys held by each shard (queued, delayed or running).
    pub shard_pending_keys: Vec<usize>,
    /// Each shard's checkpoint (lowest unapplied seq).
    pub checkpoints: Vec<u64>,
    /// Entries applied since start.
    pub applied: u64,
    /// Age of the oldest unapplied entry over all shards, seconds (0 when none).
    pub checkpoint_age_seconds: f64,
}

/// Why a key could not be injected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InjectError {
    /// The shard's injection channel stayed full for the whole timeout (the shard is busy).
    #[error("shard {0} is busy: its injection queue stayed full")]
    Full(u16),
    /// The pipeline is shut down.
    #[error("the pipeline is shut down")]
    Closed,
}

/// Enqueues a [`WorkKey`] for reconcile without a watch record: the key goes to the shard of its (cluster,
/// namespace) like logged work, joins the key if it is already pending (a key being reconciled runs once more
/// afterwards), and otherwise queues behind the entries that shard has already taken, in its tenant's fair
/// share. Nothing is written to the log: an injected key that is lost in a crash is found again by the next
/// patrol pass. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkInjector {
    txs: Arc<Vec<Sender<WorkKey>>>,
}

impl WorkInjector {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.txs.len()
    }

    /// Enqueues `key`, waiting up to `timeout` while its shard's injection channel is full (blocking: call it
    /// off the async workers).
    pub fn inject(&self, key: WorkKey, timeout: Duration) -> Result<(), InjectError> {
        let shards = u16::try_from(self.txs.len()).unwrap_or(u16::MAX);
        let shard = router::shard_for(&key.cluster, &key.namespace, shards);
        let tx = self
            .txs
            .get(usize::from(shard))
            .ok_or(InjectError::Closed)?;
        match tx.send_timeout(key, timeout) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(InjectError::Full(shard)),
            Err(SendTimeoutError::Disconnected(_)) => Err(InjectError::Closed),
        }
    }
}

/// The running log + shards. Dropping it without [`Pipeline::shutdown`] also stops the threads.
pub struct Pipeline {
    sink: LogSink,
    view: View,
    compactor: Compactor,
    backlog: Arc<Backlog>,
    writer_tx: mpsc::Sender<WriterMsg>,
    shard_txs: Vec<Sender<Appended>>,
    injector: WorkInjector,
    shard_stats: Vec<Arc<ShardStats>>,
    weights: Weights,
    tenant_stats: TenantStats,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("shards", &self.shard_txs.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens (or creates) the log in `cfg.data_dir`, starts the writer and shard threads, and replays every
    /// unapplied entry: each key with unapplied entries is reconciled once (coalesced).
    pub fn start(
        cfg: PipelineConfig,
        reconciler: Arc<dyn Reconciler>,
    ) -> Result<Self, PipelineError> {
        let shards = u16::try_from(cfg.shards)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                PipelineError::Config(format!("shards must be 1..=65535, got {}", cfg.shards))
            })?;
        for (name, value) in [
            ("shard_queue_capacity", cfg.shard_queue_capacity),
            ("max_pending_keys", cfg.max_pending_keys),
            ("writer_queue_capacity", cfg.writer_queue_capacity),
            ("max_group_records", cfg.max_group_records),
        ] {
            if value == 0 {
                return Err(PipelineError::Config(format!("{name} must be at least 1")));
            }
        }
        let opened = log::open_store(&cfg.data_dir, cfg.cache_capacity_bytes, shards)?;
        let backlog = Arc::new(Backlog::new(
            cfg.disk_budget_bytes,
            opened.backlog_records,
            opened.backlog_bytes,
        ));
        let view_lock = Arc::new(Mutex::new(()));
        let view = View::new(sled::Tree::clone(&opened.db), Arc::clone(&view_lock));
        let compactor = Compactor::new(opened.db.clone(), Arc::clone(&backlog));
        let weights: Weights = Arc::new(RwLock::new(Default::default()));
        let tenant_stats = TenantStats::default();
        let stop = Arc::new(AtomicBool::new(false));
        let shard_config = ShardConfig {
            max_pending_keys: cfg.max_pending_keys,
            fairness: cfg.fairness,
            quantum: cfg.quantum,
            retry_base: cfg.retry_base,
            retry_max: cfg.retry_max,
            compaction_batch: cfg.compaction_batch.max(1),
            compaction_interval: cfg.compaction_interval,
        };
        let mut pipeline_threads = Vec::new();
        let mut shard_txs = Vec::with_capacity(usize::from(shards));
        let mut inject_txs = Vec::with_capacity(usize::from(shards));
        let mut shard_stats = Vec::with_capacity(usize::from(shards));
        let mut next_seqs = Vec::with_capacity(usize::from(shards));
        let replayed: usize = opened.replay.iter().map(|r| r.entries.len()).sum();
        for (id, replay) in (0..shards).zip(opened.replay) {
            let (tx, rx) = crossbeam_channel::bounded(cfg.shard_queue_capacity);
            let (inject_tx, inject_rx) = crossbeam_channel::bounded(cfg.shard_queue_capacity);
            let stats = Arc::new(ShardStats::default());
            next_seqs.push(replay.next_seq);
            let worker = ShardWorker::new(
                id,
                rx,
                inject_rx,
                replay,
                Arc::clone(&weights),
                Arc::clone(&reconciler),
                view.clone(),
                compactor.clone(),
                shard_config.clone(),
                Arc::clone(&stop),
                Arc::clone(&stats),
                tenant_stats.clone(),
            );
            let handle = spawn(format!("syncer-shard-{id}"), move || worker.run());
            match handle {
                Ok(handle) => pipeline_threads.push(handle),
                Err(error) => {
                    stop_threads(&stop, pipeline_threads);
                    return Err(error);
                }
            }
            shard_txs.push(tx);
            inject_txs.push(inject_tx);
            shard_stats.push(stats);
        }
        let (writer_tx, writer_rx) = mpsc::channel(cfg.writer_queue_capacity);
        let writer = Writer::new(
            opened.db.clone(),
            opened.db_dir,
            view_lock,
            writer_rx,
            shard_txs.clone(),
            next_seqs,
            Arc::clone(&backlog),
            Arc::clone(&stop),
            WriterConfig {
                max_group_records: cfg.max_group_records,
                max_group_bytes: cfg.max_group_bytes.max(1),
                durability: cfg.durability,
            },
        );
        match spawn("syncer-log-writer".to_owned(), move || writer.run()) {
            Ok(handle) => pipeline_threads.push(handle),
            Err(error) => {
                stop_threads(&stop, pipeline_threads);
                return Err(error);
            }
        }
        tracing::info!(
            shards,
            replayed,
            data_dir = %cfg.data_dir.display(),
            "pipeline started"
        );
        Ok(Self {
            sink: LogSink::new(writer_tx.clone(), Arc::clone(&backlog), shards),
            view,
            compactor,
            backlog,
            writer_tx,
            shard_txs,
            injector: WorkInjector {
                txs: Arc::new(inject_txs),
            },
            shard_stats,
            weights,
            tenant_stats,
            stop,
            threads: pipeline_threads,
        })
    }

    /// A handle for sources to append through.
    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// The view of the latest objects.
    pub fn view(&self) -> View {
        self.view.clone()
    }

    /// A handle that enqueues work keys without a log record (see [`WorkInjector`]).
    pub fn injector(&self) -> WorkInjector {
        self.injector.clone()
    }

    /// The persisted resume point of the (cluster, kind) watch.
    pub fn resume_point(&self, cluster: &str, kind: &str) -> Result<Option<String>, LogError> {
        let key = format::resume_key(cluster, kind);
        match self.compactor.db().get(key).map_err(LogError::Read)? {
            Some(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            None => Ok(None),
        }
    }

    /// A tenant was removed: drops its view entries and resume points (one atomic batch).
    ///
    /// Unapplied log entries of the tenant stay and are still handed to the reconciler, which should treat
    /// an unknown tenant as done.
    pub fn forget_cluster(&self, cluster: &str) -> Result<(), LogError> {
        format::check_component("cluster", cluster)?;
        let db = self.compactor.db();
        let mut batch = sled::Batch::default();
        for prefix in [
            format::view_prefix_cluster(cluster),
            format::resume_prefix_cluster(cluster),
        ] {
            for item in db.scan_prefix(prefix) {
                let (key, _) = item.map_err(LogError::Read)?;
                batch.remove(key);
            }
        }
        let _guard = self.view.write_lock().lock();
        db.apply_batch(batch).map_err(LogError::Commit)?;
        self.weights.write().remove(cluster);
        self.tenant_stats.forget(cluster);
        Ok(())
    }

    /// Per-tenant backlog and lag, kept by the shards.
    pub fn tenant_stats(&self) -> TenantStats {
        self.tenant_stats.clone()
    }

    /// Opens (or creates) a named sled tree next to the log, in the same database (for state that must
    /// survive restarts with the log, such as tenant registrations). Writes to it are not flushed by the log.
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, LogError> {
        self.compactor.db().open_tree(name).map_err(LogError::Read)
    }

    /// Sets the fair-scheduling weight of a tenant (default 1; 0 is treated as 1). Takes effect at the
    /// tenant's next turn in every shard.
    pub fn set_tenant_weight(&self, cluster: &str, weight: u32) {
        self.weights.write().insert(cluster.to_owned(), weight);
    }

    /// A snapshot of backlog, queue depths, checkpoints and applied count.
    pub fn stats(&self) -> PipelineStats {
        let oldest = self
            .shard_stats
            .iter()
            .map(|s| s.oldest_unapplied_micros.load(Ordering::Relaxed))
            .filter(|m| *m > 0)
            .min()
            .unwrap_or(0);
        PipelineStats {
            backlog_records: self.backlog.records(),
            backlog_bytes: self.backlog.bytes(),
            appends_waiting_for_budget: self.backlog.waiting(),
            writer_queue_depth: self.writer_tx.max_capacity() - self.writer_tx.capacity(),
            shard_queue_depth: self.shard_txs.iter().map(Sender::len).collect(),
            shard_pending_keys: self
                .shard_stats
                .iter()
                .map(|s| s.pending_keys.load(Ordering::Relaxed))
                .collect(),
            checkpoints: self
                .shard_stats
                .iter()
                .map(|s| s.checkpoint.load(Ordering::Relaxed))
                .collect(),
            applied: self
                .shard_stats
                .iter()
                .map(|s| s.applied.load(Ordering::Relaxed))
                .sum(),
            checkpoint_age_seconds: crate::shard::age_seconds(oldest),
        }
    }

    /// Stops the writer and shard threads (blocking until they exit) and flushes. Unapplied entries stay in
    /// the log and are replayed by the next [`Pipeline::start`]; appends still in flight fail with
    /// [`LogError::Closed`].
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.writer_tx.try_send(WriterMsg::Stop);
        self.backlog.close();
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!("a pipeline thread panicked");
            }
        }
        if let Err(error) = self.compactor.flush() {
            tracing::error!(error = %error, "final flush failed");
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_all();
        }
    }
}

fn spawn(
    name: String,
    run: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(run)
        .map_err(|error| PipelineError::Spawn(name, error))
}

fn stop_threads(stop: &AtomicBool, threads: Vec<JoinHandle<()>>) {
    stop.store(true, Ordering::Release);
    for handle in threads {
        let _ = handle.join();
    }
}
