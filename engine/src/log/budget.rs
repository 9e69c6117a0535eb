//! The disk budget: how many bytes of unapplied entries the log may hold before appends wait.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts the unapplied backlog and makes appenders wait while it is at or over the limit.
///
/// The check happens before a batch is queued, so the backlog can exceed the limit by what is already
/// queued; a single batch larger than the whole budget still goes through when the backlog is empty
/// (otherwise it could never be written).
#[derive(Debug)]
pub(crate) struct Backlog {
    records: AtomicU64,
    bytes: AtomicU64,
    limit_bytes: u64,
    waiting: AtomicUsize,
    closed: AtomicBool,
    drained: Notify,
}

impl Backlog {
    pub(crate) fn new(limit_bytes: u64, records: u64, bytes: u64) -> Self {
        let backlog = Self {
            records: AtomicU64::new(records),
            bytes: AtomicU64::new(bytes),
            limit_bytes,
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            drained: Notify::new(),
        };
        backlog.publish();
        backlog
    }

    /// Unapplied entries.
    pub(crate) fn records(&self) -> u64 {
        self.records.load(Ordering::Acquire)
    }

    /// Bytes of unapplied entries.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Appends currently waiting for the backlog to drop below the budget.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Entries were committed.
    pub(crate) fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.publish();
    }

    /// Entries were applied and deleted; wakes appenders waiting for room.
    pub(crate) fn remove(&self, records: u64, bytes: u64) {
        saturating_sub(&self.records, records);
        saturating_sub(&self.bytes, bytes);
        self.publish();
        self.drained.notify_waiters();
    }

    /// Stops making appenders wait (on shutdown, so they reach the closed writer and fail).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }

    fn has_room(&self) -> bool {
        self.bytes() < self.limit_bytes || self.closed.load(Ordering::Acquire)
    }

    /// Waits until the backlog is below the limit.
    pub(crate) async fn wait_below_limit(&self) {
        if self.has_room() {
            return;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _guard = WaitingGuard(&self.waiting);
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Register before re-checking, so a `remove` between the check and the await is not missed.
            drained.as_mut().enable();
            if self.has_room() {
                return;
            }
            drained.await;
        }
    }

    fn publish(&self) {
        metrics::gauge!("vc_syncer_log_backlog_records").set(self.records() as f64);
        metrics::gauge!("vc_syncer_log_backlog_bytes").set(self.bytes() as f64);
        metrics::gauge!(crate::metrics::LOG_DISK_BUDGET_BYTES).set(self.limit_bytes as f64);
    }
}

/// Decrements the waiting count also when the waiting future is dropped.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn saturating_sub(counter: &AtomicU64, amount: u64) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        Some(v.saturating_sub(amount))
    });
}
