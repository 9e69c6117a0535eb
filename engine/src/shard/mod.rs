//! Shards: each is one OS thread with a bounded channel in front of it, draining the log entries routed to
//! it and calling the [`Reconciler`].
//!
//! * `router`: which shard a (tenant cluster, tenant namespace) belongs to (stable hash).
//! * `scheduler`: coalescing pending set, weighted deficit round robin across tenants, delayed retries.
//! * `checkpoint`: unapplied entries and the per-shard checkpoint.
//! * `worker`: the thread loop (drain channel → pick key → reconcile → compact).
//!
//! Backpressure: a shard stops draining its channel while it holds `max_pending_keys` keys; the channel fills,
//! the log writer blocks handing over entries, its queue fills, and sources await in `LogSink::append`.

mod checkpoint;
pub mod router;
pub mod scheduler;
pub mod tenant_stats;
mod worker;

use std::time::Duration;

use thiserror::Error;

use crate::log::View;
use crate::record::WorkKey;

pub use tenant_stats::{TenantFigures, TenantStats};
pub(crate) use worker::{ShardStats, ShardWorker, age_seconds};

/// Reconciles one tenant object (both directions). Called on shard threads.
pub trait Reconciler: Send + Sync + 'static {
    /// Blocking; runs on a shard thread. Ok = done (its log entries become applied). Err = retried with
    /// backoff, without a bound on attempts.
    fn reconcile(&self, key: &WorkKey, view: &View) -> Result<(), ReconcileError>;
}

/// Why a reconcile failed; `code` is the `vc_syncer_reconcile_total{code}` label.
#[derive(Clone, Debug, Error)]
#[error("reconcile failed ({code}): {message}")]
pub struct ReconcileError {
    /// Short, bounded metric label, e.g. `conflict`, `api_unavailable`.
    pub code: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl ReconcileError {
    /// An error with a metric code and a message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Tuning of the shards.
#[derive(Clone, Debug)]
pub(crate) struct ShardConfig {
    pub(crate) max_pending_keys: usize,
    pub(crate) fairness: bool,
    pub(crate) quantum: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) compaction_batch: usize,
    pub(crate) compaction_interval: Duration,
}

/// Exponential backoff for the `attempts`-th failure (1-based): `base × 2^(attempts-1)`, capped at `max`.
pub(crate) fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(10);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(1, base, max), Duration::from_millis(10));
        assert_eq!(backoff(2, base, max), Duration::from_millis(20));
        assert_eq!(backoff(4, base, max), Duration::from_millis(80));
        assert_eq!(backoff(8, base, max), max);
        assert_eq!(backoff(1000, base, max), max);
    }
}
