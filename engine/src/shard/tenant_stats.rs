//! Per-tenant counters kept by the shards: log entries accepted and applied (their difference is the
//! tenant's backlog) and a one-minute window of sync lag, for the tenant status of the gRPC API.
//!
//! Shared by every shard (one map, read-locked on the hot path; a tenant's counters are created on its first
//! entry). The lag window has six 10-second slots of fixed log-spaced buckets, so a tenant costs a few hundred
//! bytes however busy it is; quantiles are bucket upper bounds, like Prometheus' `histogram_quantile`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

/// Upper bounds of the lag buckets, milliseconds (the last bucket is everything above).
const BOUNDS_MS: [f64; 17] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    30_000.0, 60_000.0, 120_000.0, 300_000.0,
];
const SLOT_SECS: u64 = 10;
const SLOTS: usize = 6;

#[derive(Debug, Default)]
struct Slot {
    /// Which 10-second period (unix seconds / 10) the counts belong to.
    period: u64,
    counts: [u32; BOUNDS_MS.len() + 1],
}

#[derive(Debug, Default)]
struct LagWindow {
    slots: [Slot; SLOTS],
}

impl LagWindow {
    fn record(&mut self, now_secs: u64, lag_ms: f64) {
        let period = now_secs / SLOT_SECS;
        let slot = &mut self.slots[(period % SLOTS as u64) as usize];
        if slot.period != period {
            *slot = Slot {
                period,
                ..Slot::default()
            };
        }
        let bucket = BOUNDS_MS
            .iter()
            .position(|b| lag_ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        slot.counts[bucket] = slot.counts[bucket].saturating_add(1);
    }

    /// (p50, p99) in ms over the slots of the last minute; `None` without samples.
    fn quantiles(&self, now_secs: u64) -> Option<(f64, f64)> {
        let period = now_secs / SLOT_SECS;
        let mut counts = [0u64; BOUNDS_MS.len() + 1];
        for slot in &self.slots {
            if slot.period + (SLOTS as u64) > period {
                for (total, c) in counts.iter_mut().zip(slot.counts) {
                    *total += u64::from(c);
                }
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let quantile = |q: f64| {
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return BOUNDS_MS.get(i).copied().unwrap_or(f64::INFINITY);
                }
            }
            f64::INFINITY
        };
        Some((quantile(0.5), quantile(0.99)))
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    applied: AtomicU64,
    lag: Mutex<LagWindow>,
}

/// Per-tenant (work cluster) counters of the shards. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TenantStats {
    inner: Arc<RwLock<HashMap<String, Arc<Counters>>>>,
}

/// A snapshot of one tenant's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenantFigures {
    /// Log entries of the tenant accepted by a shard and not applied yet (queued, backing off or in flight).
    pub backlog: u64,
    /// Entries applied since start.
    pub applied: u64,
    /// Median sync lag over the last minute, ms (0 without samples).
    pub lag_p50_ms: f64,
    /// 99th percentile sync lag over the last minute, ms (0 without samples).
    pub lag_p99_ms: f64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TenantStats {
    fn counters(&self, cluster: &str) -> Arc<Counters> {
        if let Some(c) = self.inner.read().get(cluster) {
            return Arc::clone(c);
        }
        Arc::clone(self.inner.write().entry(cluster.to_owned()).or_default())
    }

    /// A shard took `n` entries of `cluster`.
    pub(crate) fn accepted(&self, cluster: &str, n: u64) {
        self.counters(cluster)
            .accepted
            .fetch_add(n, Ordering::Relaxed);
    }

    /// A reconcile of a key of `cluster` applied `n` entries; `lags` are the ages (seconds) of the oldest
    /// covered entry per direction.
    pub(crate) fn applied(&self, cluster: &str, n: u64, lags: &[f64]) {
        let counters = self.counters(cluster);
        counters.applied.fetch_add(n, Ordering::Relaxed);
        if !lags.is_empty() {
            let now = now_secs();
            let mut window = counters.lag.lock();
            for lag in lags {
                window.record(now, lag * 1000.0);
            }
        }
    }

    /// The figures of `cluster` (zeros for a tenant without entries).
    pub fn figures(&self, cluster: &str) -> TenantFigures {
        let Some(c) = self.inner.read().get(cluster).cloned() else {
            return TenantFigures::default();
        };
        let accepted = c.accepted.load(Ordering::Relaxed);
        let applied = c.applied.load(Ordering::Relaxed);
        let (lag_p50_ms, lag_p99_ms) = c.lag.lock().quantiles(now_secs()).unwrap_or((0.0, 0.0));
        TenantFigures {
            backlog: accepted.saturating_sub(applied),
            applied,
            lag_p50_ms,
            lag_p99_ms,
        }
    }

    /// Drops the counters of a removed tenant.
    pub fn forget(&self, cluster: &str) {
        self.inner.write().remove(cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_is_accepted_minus_applied() {
        let stats = TenantStats::default();
        stats.accepted("a", 5);
        stats.accepted("b", 1);
        stats.applied("a", 3, &[0.004]);
        assert_eq!(stats.figures("a").backlog, 2);
        assert_eq!(stats.figures("a").applied, 3);
        assert_eq!(stats.figures("b").backlog, 1);
        assert_eq!(stats.figures("unknown"), TenantFigures::default());
        stats.forget("a");
        assert_eq!(stats.figures("a").backlog, 0);
    }

    #[test]
    fn lag_quantiles_come_from_the_last_minute_only() {
        let mut w = LagWindow::default();
        for _ in 0..98 {
            w.record(1_000, 3.0);
        }
        w.record(1_000, 1_500.0);
        w.record(1_005, 40_000.0);
        assert_eq!(w.quantiles(1_005), Some((5.0, 2_000.0)));
        // 70 s later the slots of t=1000 have expired.
        assert_eq!(w.quantiles(1_075), None);
        w.record(1_075, 7.0);
        assert_eq!(w.quantiles(1_075), Some((10.0, 10.0)));
    }
}
