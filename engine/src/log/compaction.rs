//! Compaction: applied entries are deleted, in batches, atomically with the shard's new checkpoint.
//!
//! Not flushed on its own: losing a compaction in a crash only means those entries are replayed (the
//! reconciler is idempotent); the next group commit's flush, or sled's periodic flush, makes it durable.

use std::sync::Arc;

use super::format;
use super::{Backlog, LogError};

/// Deletes applied entries of the shards and persists their checkpoints.
#[derive(Clone)]
pub(crate) struct Compactor {
    db: sled::Db,
    backlog: Arc<Backlog>,
}

impl Compactor {
    pub(crate) fn new(db: sled::Db, backlog: Arc<Backlog>) -> Self {
        Self { db, backlog }
    }

    /// Removes entries `applied` of `shard` (with their total size `bytes`) and stores `checkpoint`, the
    /// shard's lowest unapplied seq, in one atomic batch.
    pub(crate) fn compact(
        &self,
        shard: u16,
        applied: &[u64],
        bytes: u64,
        checkpoint: u64,
    ) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        for seq in applied {
            batch.remove(&format::log_key(shard, *seq)[..]);
        }
        batch.insert(
            &format::checkpoint_key(shard)[..],
            &checkpoint.to_be_bytes(),
        );
        self.db.apply_batch(batch).map_err(LogError::Commit)?;
        self.backlog.remove(applied.len() as u64, bytes);
        metrics::counter!(crate::metrics::LOG_COMPACTED_RECORDS_TOTAL)
            .increment(applied.len() as u64);
        metrics::counter!(crate::metrics::LOG_COMPACTIONS_TOTAL).increment(1);
        Ok(())
    }

    /// Flushes everything written so far (on shutdown).
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.db.flush().map_err(LogError::Flush)?;
        Ok(())
    }

    /// The database (for the pipeline's own reads and deletes).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }
}
