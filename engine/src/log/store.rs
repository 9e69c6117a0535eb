//! Opening a data directory: format version check, shard-count changes, and loading what to replay.

use std::path::{Path, PathBuf};

use super::format::{self, FORMAT_VERSION};
use super::{Appended, Direction, LogError};
use crate::record::Record;
use crate::shard::router;

/// Name of sled's directory inside the data directory.
const DB_DIR: &str = "log";

/// An opened database and everything the pipeline needs to resume.
pub(crate) struct OpenedStore {
    pub(crate) db: sled::Db,
    pub(crate) db_dir: PathBuf,
    pub(crate) replay: Vec<ShardReplay>,
    pub(crate) backlog_records: u64,
    pub(crate) backlog_bytes: u64,
}

/// The persisted state of one shard: its checkpoint, next sequence number and unapplied entries.
pub(crate) struct ShardReplay {
    pub(crate) next_seq: u64,
    pub(crate) checkpoint: u64,
    pub(crate) entries: Vec<Appended>,
}

fn open_db(data_dir: &Path, cache_bytes: u64) -> Result<(sled::Db, PathBuf), LogError> {
    let db_dir = data_dir.join(DB_DIR);
    let config = sled::Config::new()
        .path(&db_dir)
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(500));
    // sled's background threads can hold the file lock for a moment after a database of this process was
    // dropped; a lock held by another live process stays held and fails after the bounded wait.
    let mut attempts = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok((db, db_dir)),
            Err(source) if attempts < LOCK_RETRIES && is_lock_error(&source) => {
                attempts += 1;
                std::thread::sleep(LOCK_RETRY_WAIT);
            }
            Err(source) => {
                return Err(LogError::Open {
                    path: db_dir,
                    source,
                });
            }
        }
    }
}

const LOCK_RETRIES: u32 = 200;
const LOCK_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

fn is_lock_error(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Refuses a database of another format version; stamps a new, empty one with ours.
fn check_format(db: &sled::Db, db_dir: &Path) -> Result<(), LogError> {
    match db.get(format::META_FORMAT).map_err(LogError::Read)? {
        Some(found) => match format::read_u32(&found) {
            Ok(FORMAT_VERSION) => Ok(()),
            Ok(other) => Err(LogError::UnsupportedFormat {
                path: db_dir.to_owned(),
                found: other.to_string(),
                supported: FORMAT_VERSION,
            }),
            Err(_) => Err(LogError::UnsupportedFormat {
                path: db_dir.to_owned(),
                found: format!("{:?}", &found[..]),
                supported: FORMAT_VERSION,
            }),
        },
        None if db.first().map_err(LogError::Read)?.is_some() => Err(LogError::MissingFormat {
            path: db_dir.to_owned(),
        }),
        None => {
            db.insert(format::META_FORMAT, &FORMAT_VERSION.to_be_bytes())
                .map_err(LogError::Commit)?;
            db.flush().map_err(LogError::Flush)?;
            Ok(())
        }
    }
}

/// Opens (or creates) the log in `data_dir` for `shards` shards and loads every unapplied entry.
///
/// If the data was written with another shard count, the unapplied entries are re-routed first (one atomic
/// batch; per-namespace order is kept because one namespace's entries all come from one old shard, in order).
pub(crate) fn open_store(
    data_dir: &Path,
    cache_bytes: u64,
    shards: u16,
) -> Result<OpenedStore, LogError> {
    let (db, db_dir) = open_db(data_dir, cache_bytes)?;
    check_format(&db, &db_dir)?;
    let stored_shards = db
        .get(format::META_SHARDS)
        .map_err(LogError::Read)?
        .map(|v| format::read_u32(&v))
        .transpose()?;
    if stored_shards != Some(u32::from(shards)) {
        reroute(&db, shards)?;
    }
    let mut replay = Vec::with_capacity(usize::from(shards));
    let (mut backlog_records, mut backlog_bytes) = (0, 0);
    for shard in 0..shards {
        let mut checkpoint = match db
            .get(format::checkpoint_key(shard))
            .map_err(LogError::Read)?
        {
            Some(v) => format::read_u64(&v)?,
            None => 0,
        };
        let mut entries = Vec::new();
        let mut next_seq = checkpoint;
        for item in db.scan_prefix(format::log_prefix(shard)) {
            let (key, value) = item.map_err(LogError::Read)?;
            let (_, seq) = format::parse_log_key(&key)?;
            let record = format::decode_entry(&value)?;
            if seq < checkpoint {
                tracing::warn!(
                    shard,
                    seq,
                    checkpoint,
                    "unapplied entry below the checkpoint"
                );
                checkpoint = seq;
            }
            next_seq = next_seq.max(seq + 1);
            let bytes = (key.len() + value.len()) as u64;
            backlog_records += 1;
            backlog_bytes += bytes;
            entries.push(appended_of(shard, seq, bytes, record));
        }
        replay.push(ShardReplay {
            next_seq,
            checkpoint,
            entries,
        });
    }
    Ok(OpenedStore {
        db,
        db_dir,
        replay,
        backlog_records,
        backlog_bytes,
    })
}

fn appended_of(shard: u16, seq: u64, bytes: u64, record: Record) -> Appended {
    Appended {
        shard,
        seq,
        direction: Direction::of_cluster(&record.cluster),
        seen_at_micros: record.seen_at_micros,
        key: record.work,
        bytes,
    }
}

/// Moves every unapplied entry to the shard the current shard count routes it to, with fresh sequence
/// numbers, and drops the old checkpoints.
fn reroute(db: &sled::Db, shards: u16) -> Result<(), LogError> {
    let mut batch = sled::Batch::default();
    let mut next = vec![0u64; usize::from(shards)];
    let mut entries = Vec::new();
    // All removals first: sled's batch keeps the last operation per key, and an old key may equal a new one.
    for item in db.scan_prefix(format::log_prefix_all()) {
        let (key, value) = item.map_err(LogError::Read)?;
        batch.remove(key);
        entries.push(value);
    }
    let moved = entries.len();
    for value in entries {
        let record = format::decode_entry(&value)?;
        let shard = router::shard_for(&record.work.cluster, &record.work.namespace, shards);
        let slot = &mut next[usize::from(shard)];
        batch.insert(&format::log_key(shard, *slot)[..], value);
        *slot += 1;
    }
    for item in db.scan_prefix(format::checkpoint_prefix_all()) {
        let (key, _) = item.map_err(LogError::Read)?;
        batch.remove(key);
    }
    batch.insert(format::META_SHARDS, &u32::from(shards).to_be_bytes());
    db.apply_batch(batch).map_err(LogError::Commit)?;
    db.flush().map_err(LogError::Flush)?;
    if moved > 0 {
        tracing::info!(
            moved,
            shards,
            "re-routed unapplied log entries to a new shard count"
        );
    }
    Ok(())
}

/// Every unapplied record in a (closed) data directory, in (shard, seq) order. For tools and tests.
/// Records of `Added`/`Modified` events come back with `object: null` (the object lives in the view).
pub fn read_unapplied(data_dir: &Path) -> Result<Vec<Record>, LogError> {
    let (db, db_dir) = open_db(data_dir, 8 * 1024 * 1024)?;
    check_format(&db, &db_dir)?;
    let mut out = Vec::new();
    for item in db.scan_prefix(format::log_prefix_all()) {
        let (_, value) = item.map_err(LogError::Read)?;
        out.push(format::decode_entry(&value)?);
    }
    Ok(out)
}
