//! Which entries of one shard are still unapplied, and the checkpoint derived from them.
//!
//! The checkpoint is the lowest unapplied seq (or, when none is unapplied, one past the highest seq seen). It
//! never passes an unapplied entry and only moves forward; both are asserted where it is computed.

use std::collections::BTreeMap;

/// Unapplied entries of one shard and what was applied since the last compaction.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    /// seq → (bytes, seen_at µs).
    unapplied: BTreeMap<u64, (u64, u64)>,
    next_expected: u64,
    persisted: u64,
    applied: Vec<u64>,
    applied_bytes: u64,
}

/// One compaction to write: entries to delete, their size, the new checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Compaction {
    pub(crate) applied: Vec<u64>,
    pub(crate) bytes: u64,
    pub(crate) checkpoint: u64,
}

impl Checkpoints {
    /// State after a restart: the persisted checkpoint and the next seq the writer will use.
    pub(crate) fn new(persisted: u64, next_seq: u64) -> Self {
        Self {
            unapplied: BTreeMap::new(),
            next_expected: next_seq.max(persisted),
            persisted,
            applied: Vec::new(),
            applied_bytes: 0,
        }
    }

    /// An entry reached the shard.
    pub(crate) fn accept(&mut self, seq: u64, bytes: u64, seen_at_micros: u64) {
        self.unapplied.insert(seq, (bytes, seen_at_micros));
        self.next_expected = self.next_expected.max(seq + 1);
    }

    /// Entries whose reconcile succeeded.
    pub(crate) fn applied(&mut self, entries: &[(u64, u64)]) {
        for (seq, bytes) in entries {
            if self.unapplied.remove(seq).is_some() {
                self.applied.push(*seq);
                self.applied_bytes += bytes;
            }
        }
    }

    /// Entries applied since the last compaction.
    pub(crate) fn applied_count(&self) -> usize {
        self.applied.len()
    }

    /// The lowest unapplied seq.
    pub(crate) fn checkpoint(&self) -> u64 {
        self.unapplied
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_expected)
    }

    /// `seen_at` of the oldest unapplied entry.
    pub(crate) fn oldest_unapplied_seen_at(&self) -> Option<u64> {
        self.unapplied.values().next().map(|(_, seen)| *seen)
    }

    /// Takes what to compact, if anything changed since the last compaction.
    pub(crate) fn take_compaction(&mut self) -> Option<Compaction> {
        let checkpoint = self.checkpoint();
        if self.applied.is_empty() && checkpoint == self.persisted {
            return None;
        }
        assert!(
            checkpoint >= self.persisted,
            "checkpoint only moves forward ({checkpoint} < {})",
            self.persisted
        );
        if let Some(lowest) = self.unapplied.keys().next() {
            assert!(
                checkpoint <= *lowest,
                "checkpoint {checkpoint} passes unapplied entry {lowest}"
            );
        }
        let applied = std::mem::take(&mut self.applied);
        let bytes = std::mem::take(&mut self.applied_bytes);
        Some(Compaction {
            applied,
            bytes,
            checkpoint,
        })
    }

    /// The compaction was written.
    pub(crate) fn persisted(&mut self, compaction: &Compaction) {
        self.persisted = compaction.checkpoint;
    }

    /// The compaction could not be written: keep it for the next attempt.
    pub(crate) fn restore(&mut self, compaction: Compaction) {
        self.applied.extend(compaction.applied);
        self.applied_bytes += compaction.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_stops_at_the_lowest_unapplied_entry() {
        let mut cp = Checkpoints::new(10, 10);
        for seq in 10..15 {
            cp.accept(seq, 100, seq);
        }
        cp.applied(&[(10, 100), (11, 100), (13, 100)]);
        let compaction = cp.take_compaction();
        assert_eq!(
            compaction,
            Some(Compaction {
                applied: vec![10, 11, 13],
                bytes: 300,
                checkpoint: 12
            })
        );
        assert_eq!(cp.oldest_unapplied_seen_at(), Some(12));
    }

    #[test]
    fn checkpoint_moves_past_everything_when_all_applied() {
        let mut cp = Checkpoints::new(0, 3);
        cp.accept(3, 1, 0);
        cp.applied(&[(3, 1)]);
        assert_eq!(cp.checkpoint(), 4);
        let taken = cp.take_compaction();
        assert!(taken.is_some());
        if let Some(c) = taken {
            cp.persisted(&c);
        }
        assert_eq!(cp.take_compaction(), None);
    }

    #[test]
    fn failed_compaction_is_retried() {
        let mut cp = Checkpoints::new(0, 0);
        cp.accept(0, 5, 0);
        cp.applied(&[(0, 5)]);
        let Some(c) = cp.take_compaction() else {
            panic!("expected a compaction");
        };
        cp.restore(c);
        assert_eq!(cp.applied_count(), 1);
        assert_eq!(cp.take_compaction().map(|c| c.bytes), Some(5));
    }
}
