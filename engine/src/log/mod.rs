//! The durable event log: every watch event becomes a log entry in sled before anything acts on it.
//!
//! * [`LogSink::append`] hands a batch of [`Record`]s (and the watch's resume point) to one writer thread
//!   (`writer`), which group-commits many batches in one `sled::Batch` and one flush, then acknowledges them
//!   and passes their identities ([`Appended`]) to the shards.
//! * [`View`] (`view`) is the latest object per (cluster, kind, namespace, name), updated in the same batch.
//! * Applied entries are deleted and the per-shard checkpoint advanced by `compaction`.
//! * `budget` bounds the unapplied backlog: appends wait while it is over `disk_budget_bytes`.
//! * `format` is the versioned key and value layout (also `docs/log-format.md`); `store` opens a data
//!   directory, checks the version and loads what must be replayed.
//!
//! "Acknowledged" means: committed and flushed by sled (`write` + `sync_file_range` of the log file), so it
//! survives a crash of this process (`kill -9`). With [`Durability::PowerLoss`] the writer also fsyncs the
//! database files before acknowledging, so it survives a power loss too.

mod budget;
mod compaction;
pub mod format;
mod store;
pub mod view;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use self::format::FormatError;
pub use self::view::View;
pub(crate) use budget::Backlog;
pub(crate) use compaction::Compactor;
pub use store::read_unapplied;
pub(crate) use store::{ShardReplay, open_store};
pub(crate) use writer::{Writer, WriterConfig, WriterMsg};

use crate::record::{Record, SUPER_CLUSTER, WorkKey};
use crate::shard::router;
use writer::{AppendRequest, EncodedRecord, ViewChange};

/// Errors of the log and the view.
#[derive(Debug, Error)]
pub enum LogError {
    /// sled could not open the database.
    #[error("failed to open the log database at {path}")]
    Open {
        /// Database directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: sled::Error,
    },
    /// The database was written with a format version this build does not read.
    #[error(
        "log database at {path} has format version {found}, this build reads only version {supported}"
    )]
    UnsupportedFormat {
        /// Database directory.
        path: PathBuf,
        /// Version found (or the raw bytes if unreadable).
        found: String,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The database holds data but no format version key: not a database written by this log.
    #[error("log database at {path} holds data but no format version key")]
    MissingFormat {
        /// Database directory.
        path: PathBuf,
    },
    /// A read from sled failed.
    #[error("failed to read from the log database")]
    Read(#[source] sled::Error),
    /// Writing a batch to sled failed (for example a full disk); nothing of the batch was acknowledged.
    #[error("failed to commit a batch to the log database")]
    Commit(#[source] sled::Error),
    /// The batch was committed but flushing it to disk failed; it was not acknowledged.
    #[error("failed to flush the log database to disk")]
    Flush(#[source] sled::Error),
    /// fsync of the database files failed (power-loss durability); the batch was not acknowledged.
    #[error("failed to fsync the log database files")]
    Sync(#[source] std::io::Error),
    /// A key or value could not be encoded or decoded.
    #[error("failed to encode or decode a log value")]
    Format(#[from] FormatError),
    /// The group commit this append was part of failed (the cause is shared by the whole group).
    #[error("the group commit this append was part of failed")]
    GroupCommit(#[source] Arc<LogError>),
    /// The writer thread has stopped (the pipeline was shut down or hit a fatal error).
    #[error("the log writer has stopped")]
    Closed,
}

/// Where a watch of one (cluster, kind) resumes after a restart; written atomically with the records it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// Cluster key or [`SUPER_CLUSTER`].
    pub cluster: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// The resourceVersion to resume the watch from.
    pub resource_version: String,
}

/// An object as kept in the [`View`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Its `metadata.resourceVersion`.
    pub resource_version: String,
    /// Its `metadata.uid`.
    pub uid: String,
    /// The whole object.
    pub object: serde_json::Value,
}

impl StoredObject {
    /// Takes resourceVersion and uid from the object's metadata (empty strings when absent).
    pub fn from_object(object: &serde_json::Value) -> Self {
        let meta = |field: &str| {
            object
                .pointer(&format!("/metadata/{field}"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            resource_version: meta("resourceVersion"),
            uid: meta("uid"),
            object: object.clone(),
        }
    }
}

/// Which way a record flows: from a tenant down to the super cluster, or from the super cluster up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Observed in a tenant cluster.
    Down,
    /// Observed in the super cluster.
    Up,
}

impl Direction {
    /// Direction of a record observed in `cluster`.
    pub fn of_cluster(cluster: &str) -> Self {
        if cluster == SUPER_CLUSTER {
            Self::Up
        } else {
            Self::Down
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Up => "up",
        }
    }
}

/// Identity of one committed log entry, as passed from the writer to its shard. Never carries the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Shard the entry belongs to.
    pub shard: u16,
    /// Its sequence number in that shard.
    pub seq: u64,
    /// The tenant object to reconcile.
    pub key: WorkKey,
    /// When the source saw the event, microseconds since the Unix epoch.
    pub seen_at_micros: u64,
    /// Where the event was observed.
    pub direction: Direction,
    /// Size of the entry on disk (key + value), for the backlog budget.
    pub bytes: u64,
}

/// Handle that sources append records through. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<SinkInner>,
}

struct SinkInner {
    tx: mpsc::Sender<WriterMsg>,
    backlog: Arc<Backlog>,
    shards: u16,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("shards", &self.inner.shards)
            .finish_non_exhaustive()
    }
}

impl LogSink {
    pub(crate) fn new(tx: mpsc::Sender<WriterMsg>, backlog: Arc<Backlog>, shards: u16) -> Self {
        Self {
            inner: Arc::new(SinkInner {
                tx,
                backlog,
                shards,
            }),
        }
    }

    /// Appends the records and (atomically with them) the resume point; returns once they are acknowledged:
    /// committed and flushed, so they survive a crash of this process (and a power loss with
    /// [`Durability::PowerLoss`]).
    ///
    /// Backpressure: awaits while the unapplied backlog is at or over the disk budget, and while the writer's
    /// queue is full (which happens when the shards stop taking work). A source awaiting here stops reading
    /// its watch stream, so the API server's TCP stream backs up.
    ///
    /// On error nothing of this call was acknowledged; the source should retry (appending twice is
    /// harmless: a reconcile reads the latest state).
    pub async fn append(
        &self,
        records: Vec<Record>,
        resume: Option<ResumePoint>,
    ) -> Result<(), LogError> {
        if records.is_empty() && resume.is_none() {
            return Ok(());
        }
        if let Some(resume) = &resume {
            format::check_component("cluster", &resume.cluster)?;
            format::check_component("kind", &resume.kind)?;
        }
        let entries = records
            .into_iter()
            .map(|record| self.encode(record))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.backlog.wait_below_limit().await;
        let (ack, done) = oneshot::channel();
        let request = AppendRequest {
            entries,
            resume,
            ack,
        };
        self.inner
            .tx
            .send(WriterMsg::Append(request))
            .await
            .map_err(|_| LogError::Closed)?;
        done.await.map_err(|_| LogError::Closed)?
    }

    /// Encodes the log entry and the view change of one record. The entry of an `Added`/`Modified` event
    /// carries the record without its object (`object: null`): the object goes to the view in the same
    /// batch, and writing it twice would double the bytes per event. A `Deleted` entry keeps the object,
    /// since its view entry is removed.
    fn encode(&self, mut record: Record) -> Result<EncodedRecord, LogError> {
        format::check_record(&record)?;
        let view_key = format::view_key(
            &record.cluster,
            &record.kind,
            &record.namespace,
            &record.name,
        );
        let (entry, view) = match record.event {
            crate::record::EventType::Deleted => (
                format::encode_entry(&record)?,
                ViewChange::Delete {
                    resource_version: record.resource_version.clone(),
                },
            ),
            _ => {
                let stored = StoredObject {
                    resource_version: record.resource_version.clone(),
                    uid: record.uid.clone(),
                    object: std::mem::take(&mut record.object),
                };
                let value = format::encode_stored(&stored)?;
                (
                    format::encode_entry(&record)?,
                    ViewChange::Put {
                        resource_version: stored.resource_version,
                        value,
                    },
                )
            }
        };
        let shard = router::shard_for(
            &record.work.cluster,
            &record.work.namespace,
            self.inner.shards,
        );
        Ok(EncodedRecord {
            shard,
            entry,
            view_key,
            view,
            direction: Direction::of_cluster(&record.cluster),
            seen_at_micros: record.seen_at_micros,
            key: record.work,
        })
    }
}

/// What "acknowledged" promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledged once sled flushed the batch (`write` + `sync_file_range`): survives a crash of the
    /// process, not necessarily a power loss. The default: a syncer can re-list after a power loss.
    #[default]
    Process,
    /// Additionally fsync the database files before acknowledging: survives a power loss. Slower.
    PowerLoss,
}
