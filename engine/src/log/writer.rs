//! The log writer: one thread that group-commits appends.
//!
//! It takes one request from its bounded queue, then whatever else is already queued (up to
//! `max_group_records` / `max_group_bytes`), writes all of it (log entries, view entries, resume points) as one
//! `sled::Batch`, flushes once, acknowledges every request of the group, and finally hands the entries'
//! identities to their shards. Handing over blocks while a shard's channel is full: then this thread stops
//! taking requests, its queue fills, and [`super::LogSink::append`] awaits (backpressure up to the sources).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::format;
use super::{Appended, Backlog, Direction, Durability, LogError, ResumePoint};
use crate::record::WorkKey;

/// A message to the writer thread.
pub(crate) enum WriterMsg {
    /// Records to append.
    Append(AppendRequest),
    /// Finish the current group and exit.
    Stop,
}

/// One call of `LogSink::append`, already encoded by the caller.
pub(crate) struct AppendRequest {
    pub(crate) entries: Vec<EncodedRecord>,
    pub(crate) resume: Option<ResumePoint>,
    pub(crate) ack: oneshot::Sender<Result<(), LogError>>,
}

/// One record, encoded on the caller's task so that serialization does not serialize on the writer.
pub(crate) struct EncodedRecord {
    pub(crate) shard: u16,
    pub(crate) entry: Vec<u8>,
    pub(crate) view_key: Vec<u8>,
    pub(crate) view: ViewChange,
    pub(crate) key: WorkKey,
    pub(crate) seen_at_micros: u64,
    pub(crate) direction: Direction,
}

/// What a record does to its view entry.
pub(crate) enum ViewChange {
    /// Store this encoded object unless the stored one is newer.
    Put {
        resource_version: String,
        value: Vec<u8>,
    },
    /// Remove the entry unless the stored one is newer than the deletion.
    Delete { resource_version: String },
}

/// Tuning of the writer.
#[derive(Clone, Debug)]
pub(crate) struct WriterConfig {
    pub(crate) max_group_records: usize,
    pub(crate) max_group_bytes: usize,
    pub(crate) durability: Durability,
}

/// The writer thread's state.
pub(crate) struct Writer {
    db: sled::Db,
    view_lock: Arc<Mutex<()>>,
    rx: mpsc::Receiver<WriterMsg>,
    shards: Vec<Sender<Appended>>,
    next_seq: Vec<u64>,
    backlog: Arc<Backlog>,
    stop: Arc<AtomicBool>,
    config: WriterConfig,
    syncer: Option<FileSyncer>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: sled::Db,
        db_dir: PathBuf,
        view_lock: Arc<Mutex<()>>,
        rx: mpsc::Receiver<WriterMsg>,
        shards: Vec<Sender<Appended>>,
        next_seq: Vec<u64>,
        backlog: Arc<Backlog>,
        stop: Arc<AtomicBool>,
        config: WriterConfig,
    ) -> Self {
        let syncer = (config.durability == Durability::PowerLoss).then(|| FileSyncer::new(db_dir));
        Self {
            db,
            view_lock,
            rx,
            shards,
            next_seq,
            backlog,
            stop,
            config,
            syncer,
        }
    }

    /// Runs until told to stop, until every sink is dropped, or until a shard is gone.
    pub(crate) fn run(mut self) {
        let mut stop = false;
        while !stop {
            let Some(first) = self.rx.blocking_recv() else {
                break;
            };
            let mut group = Vec::new();
            match first {
                WriterMsg::Append(request) => group.push(request),
                WriterMsg::Stop => break,
            }
            let mut records = group[0].entries.len();
            let mut bytes = group_bytes(&group[0]);
            while records < self.config.max_group_records && bytes < self.config.max_group_bytes {
                match self.rx.try_recv() {
                    Ok(WriterMsg::Append(request)) => {
                        records += request.entries.len();
                        bytes += group_bytes(&request);
                        group.push(request);
                    }
                    Ok(WriterMsg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let appended = self.commit_group(group);
            if !self.dispatch(appended) || self.stop.load(Ordering::Acquire) {
                break;
            }
        }
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let WriterMsg::Append(request) = msg {
                let _ = request.ack.send(Err(LogError::Closed));
            }
        }
        tracing::debug!("log writer stopped");
    }

    /// Hands committed entries to their shards, blocking while a shard's channel is full.
    /// Returns false when a shard is gone (shutdown).
    fn dispatch(&self, appended: Vec<Appended>) -> bool {
        for entry in appended {
            let shard = usize::from(entry.shard);
            let Some(tx) = self.shards.get(shard) else {
                tracing::error!(shard, "log entry routed to a shard that does not exist");
                return false;
            };
            if tx.send(entry).is_err() {
                return false;
            }
        }
        true
    }

    /// Writes, flushes and acknowledges one group; returns the identities to dispatch.
    fn commit_group(&mut self, group: Vec<AppendRequest>) -> Vec<Appended> {
        let started = Instant::now();
        let mut acks = Vec::with_capacity(group.len());
        let (appended, result) = match self.write_group(group, &mut acks) {
            // Applied: the entries are in the log whether or not the flush succeeds, so they are handed to
            // the shards either way; only the acknowledgement depends on the flush.
            Ok(appended) => {
                let flushed = self.flush();
                (appended, flushed)
            }
            Err(error) => (Vec::new(), Err(error)),
        };
        metrics::histogram!("vc_syncer_log_flush_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "log group commit failed");
                let shared = Arc::new(error);
                for ack in acks {
                    let _ = ack.send(Err(LogError::GroupCommit(Arc::clone(&shared))));
                }
            }
        }
        appended
    }

    /// Makes everything applied so far durable: sled's flush, plus fsync for power-loss durability.
    fn flush(&mut self) -> Result<(), LogError> {
        self.db.flush().map_err(LogError::Flush)?;
        if let Some(syncer) = &mut self.syncer {
            syncer.sync().map_err(LogError::Sync)?;
        }
        Ok(())
    }

    /// Builds and applies the batch. Sequence numbers only advance when the batch was applied.
    fn write_group(
        &mut self,
        group: Vec<AppendRequest>,
        acks: &mut Vec<oneshot::Sender<Result<(), LogError>>>,
    ) -> Result<Vec<Appended>, LogError> {
        let mut batch = sled::Batch::default();
        let mut seqs = self.next_seq.clone();
        let mut appended = Vec::new();
        let mut bytes_total = 0u64;
        // View entries written earlier in this batch: key → stored resourceVersion (None = removed).
        let mut overlay: HashMap<Vec<u8>, Option<String>> = HashMap::new();
        let guard = self.view_lock.lock();
        for request in group {
            acks.push(request.ack);
            for record in request.entries {
                let Some(seq) = seqs.get_mut(usize::from(record.shard)) else {
                    tracing::error!(shard = record.shard, "record routed to an unknown shard");
                    continue;
                };
                let key = format::log_key(record.shard, *seq);
                *seq += 1;
                let bytes = (key.len() + record.entry.len()) as u64;
                bytes_total += bytes;
                batch.insert(&key[..], record.entry);
                let stored_rv = match overlay.get(&record.view_key) {
                    Some(rv) => rv.clone(),
                    None => self
                        .db
                        .get(&record.view_key)
                        .map_err(LogError::Read)?
                        .map(|v| format::decode_stored_rv(&v))
                        .transpose()?,
                };
                match record.view {
                    ViewChange::Put {
                        resource_version,
                        value,
                    } => {
                        if stored_rv
                            .as_deref()
                            .is_none_or(|s| format::not_older(&resource_version, s))
                        {
                            batch.insert(record.view_key.clone(), value);
                            overlay.insert(record.view_key, Some(resource_version));
                        }
                    }
                    ViewChange::Delete { resource_version } => {
                        if let Some(stored) = stored_rv
                            && format::not_older(&resource_version, &stored)
                        {
                            batch.remove(record.view_key.clone());
                            overlay.insert(record.view_key, None);
                        }
                    }
                }
                appended.push(Appended {
                    shard: record.shard,
                    seq: key_seq(*seq),
                    key: record.key,
                    seen_at_micros: record.seen_at_micros,
                    direction: record.direction,
                    bytes,
                });
            }
            if let Some(resume) = request.resume {
                batch.insert(
                    format::resume_key(&resume.cluster, &resume.kind),
                    resume.resource_version.as_bytes(),
                );
            }
        }
        self.db.apply_batch(batch).map_err(LogError::Commit)?;
        drop(guard);
        for (before, after) in self.next_seq.iter().zip(&seqs) {
            assert!(after >= before, "sequence numbers only grow");
        }
        self.next_seq = seqs;
        let records = appended.len() as u64;
        self.backlog.add(records, bytes_total);
        metrics::counter!("vc_syncer_log_appended_records_total").increment(records);
        metrics::counter!("vc_syncer_log_appended_bytes_total").increment(bytes_total);
        metrics::histogram!("vc_syncer_log_group_commit_records").record(records as f64);
        Ok(appended)
    }
}

/// The seq of the entry just written, given the already incremented counter.
fn key_seq(next: u64) -> u64 {
    next - 1
}

fn group_bytes(request: &AppendRequest) -> usize {
    request.entries.iter().map(|e| e.entry.len()).sum()
}

/// fsyncs sled's files for power-loss durability: sled's own flush only does `sync_file_range` on the
/// main file and never syncs the separate files it writes for large values (`blobs/`).
struct FileSyncer {
    dir: PathBuf,
    db_file: Option<File>,
    synced_blobs: HashSet<OsString>,
}

impl FileSyncer {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            db_file: None,
            synced_blobs: HashSet::new(),
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.db_file.is_none() {
            self.db_file = Some(File::open(self.dir.join("db"))?);
        }
        if let Some(file) = &self.db_file {
            file.sync_all()?;
        }
        let blob_dir = self.dir.join("blobs");
        let mut present = HashSet::new();
        let mut new_blob = false;
        if let Ok(entries) = std::fs::read_dir(&blob_dir) {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                if !self.synced_blobs.contains(&name) {
                    File::open(entry.path())?.sync_all()?;
                    new_blob = true;
                }
                present.insert(name);
            }
            if new_blob {
                File::open(&blob_dir)?.sync_all()?;
            }
        }
        self.synced_blobs = present;
        Ok(())
    }
}
