//! The Prometheus exporter and the catalogue of every `vc_syncer_*` metric.
//!
//! Modules record metrics with the `metrics` crate macros; the binary calls [`install`] once at start-up,
//! which serves `GET /metrics` on the given address and registers a description for each metric. Latency
//! histograms get explicit buckets (real Prometheus histograms with `_bucket`, `_sum`, `_count`, which
//! `histogram_quantile` can aggregate across instances) instead of the exporter's default summaries.
//!
//! Label cardinality stays bounded at 1,000 VCs: the only per-VC series are gauges/counters
//! (`vc_syncer_tenant_up{vc}`, `vc_syncer_tenant_backlog_records{vc}`,
//! `vc_syncer_tenant_sync_lag_p50_seconds{vc}`, `vc_syncer_tenant_sync_lag_p99_seconds{vc}`); histograms carry only small fixed label sets.

use std::net::SocketAddr;

use std::collections::BTreeMap;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Errors while installing the exporter.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The exporter could not be built or bound, or a recorder was already installed.
    #[error("failed to install the Prometheus exporter on {addr}")]
    Install {
        /// The `/metrics` address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: BuildError,
    },
}

/// Buckets for lag and latency histograms, in seconds (1 ms … 5 min).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Buckets for size histograms (records per group commit).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Watch events received, by `kind` and `cluster_class` (`super` | `tenant`).
pub const WATCH_EVENTS_TOTAL: &str = "vc_syncer_watch_events_total";
/// Watch streams (re)started after the first, by `kind`.
pub const WATCH_RESTARTS_TOTAL: &str = "vc_syncer_watch_restarts_total";
/// Full relists (initial list with no resume point, or after 410 Gone), by `kind`.
pub const RELISTS_TOTAL: &str = "vc_syncer_relists_total";
/// Whether every watch of a VC is currently established (1) or not (0), by `vc`.
pub const TENANT_UP: &str = "vc_syncer_tenant_up";
/// Log entries of a VC accepted by the shards and not applied yet, by `vc`.
pub const TENANT_BACKLOG_RECORDS: &str = "vc_syncer_tenant_backlog_records";
/// Median sync lag of a VC over the last minute (0 without syncs), by `vc`.
pub const TENANT_SYNC_LAG_P50_SECONDS: &str = "vc_syncer_tenant_sync_lag_p50_seconds";
/// 99th percentile sync lag of a VC over the last minute (0 without syncs), by `vc`.
pub const TENANT_SYNC_LAG_P99_SECONDS: &str = "vc_syncer_tenant_sync_lag_p99_seconds";
/// Super-cluster objects in the syncer's label selection that carry no tenant identity (ignored), by `kind`.
pub const SOURCE_UNMAPPED_TOTAL: &str = "vc_syncer_source_unmapped_total";
/// Records dropped because appending them to the log failed (the batch is retried after a relist), by `kind`.
pub const SOURCE_APPEND_ERRORS_TOTAL: &str = "vc_syncer_source_append_errors_total";

/// The histogram of sync lag recorded by the shards.
pub const SYNC_LAG_SECONDS: &str = "vc_syncer_sync_lag_seconds";
/// The disk budget of the log's unapplied backlog in bytes (`--disk-budget`); appends wait at or above it.
pub const LOG_DISK_BUDGET_BYTES: &str = "vc_syncer_log_disk_budget_bytes";
/// Applied log entries deleted by compaction.
pub const LOG_COMPACTED_RECORDS_TOTAL: &str = "vc_syncer_log_compacted_records_total";
/// Compaction batches (one atomic delete + checkpoint each).
pub const LOG_COMPACTIONS_TOTAL: &str = "vc_syncer_log_compactions_total";
/// Reconciles finished, by `code` (`ok` or an error code).
pub const RECONCILE_TOTAL: &str = "vc_syncer_reconcile_total";

/// Every `code` a reconcile can end with (`ok`, the `ReconcileError` codes, `panic`). The counters are created
/// at 0 on start-up so error-rate queries have a series before the first error.
pub const RECONCILE_CODES: &[&str] = &[
    "ok",
    "conflict",
    "already_exists",
    "not_found",
    "forbidden",
    "unauthorized",
    "invalid",
    "api_unavailable",
    "api_error",
    "decode",
    "view",
    "unknown_tenant",
    "panic",
];

/// Installs the global recorder and serves `/metrics` on `addr` (must be called inside a tokio runtime).
/// Returns a handle that renders the same text the endpoint serves (used for the status line).
pub fn install(addr: SocketAddr) -> Result<PrometheusHandle, MetricsError> {
    let err = |source| MetricsError::Install { addr, source };
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(err)?
        .set_buckets_for_metric(
            Matcher::Full("vc_syncer_log_group_commit_records".into()),
            SIZE_BUCKETS,
        )
        .map_err(err)?
        .build()
        .map_err(err)?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| err(e.into()))?;
    tokio::spawn(async move {
        if let Err(error) = exporter.await {
            tracing::error!(?error, "metrics endpoint stopped");
        }
    });
    describe_all();
    zero_init();
    Ok(handle)
}

/// Creates at 0 the counters that otherwise only appear on the first failure or retry, so dashboards and
/// alert expressions see a series (value 0) instead of no data.
pub fn zero_init() {
    for code in RECONCILE_CODES {
        metrics::counter!(RECONCILE_TOTAL, "code" => *code).increment(0);
    }
    for name in [
        "vc_syncer_retries_total",
        "vc_syncer_coalesced_total",
        "vc_syncer_reconcile_dropped_total",
        LOG_COMPACTED_RECORDS_TOTAL,
        LOG_COMPACTIONS_TOTAL,
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// Creates at 0 the patroller's per-kind counters (findings by class, repairs, view corrections by event,
/// errors by stage), which otherwise only appear with the first drift or failure (called when the patroller
/// starts, for each patrolled kind).
pub fn zero_init_patrol(kind: &str) {
    use crate::patrol::{
        ERRORS_TOTAL, FINDINGS_TOTAL, REPAIRS_DEFERRED_TOTAL, REPAIRS_ENQUEUED_TOTAL,
        VIEW_CORRECTIONS_TOTAL,
    };
    let kind = kind.to_string();
    for class in ["missing", "orphan", "different"] {
        metrics::counter!(FINDINGS_TOTAL, "kind" => kind.clone(), "class" => class).increment(0);
    }
    for event in ["added", "modified", "deleted"] {
        metrics::counter!(VIEW_CORRECTIONS_TOTAL, "kind" => kind.clone(), "event" => event)
            .increment(0);
    }
    for stage in ["super_list", "view"] {
        metrics::counter!(ERRORS_TOTAL, "kind" => kind.clone(), "stage" => stage).increment(0);
    }
    for name in [REPAIRS_ENQUEUED_TOTAL, REPAIRS_DEFERRED_TOTAL] {
        metrics::counter!(name, "kind" => kind.clone()).increment(0);
    }
}

/// Creates at 0 the per-kind source counters that only move on restarts or failures (called when a source
/// of `kind` starts).
pub fn zero_init_source(kind: &str) {
    let kind = kind.to_string();
    for name in [
        WATCH_RESTARTS_TOTAL,
        RELISTS_TOTAL,
        SOURCE_UNMAPPED_TOTAL,
        SOURCE_APPEND_ERRORS_TOTAL,
        crate::reconcile::METRIC_UID_MISMATCH_TOTAL,
    ] {
        metrics::counter!(name, "kind" => kind.clone()).increment(0);
    }
}

/// Cumulative bucket counts (`le` → count) of one histogram in Prometheus text, summed over label sets.
pub fn histogram_buckets(rendered: &str, name: &str) -> BTreeMap<OrderedLe, u64> {
    let prefix = format!("{name}_bucket{{");
    let mut out: BTreeMap<OrderedLe, u64> = BTreeMap::new();
    for line in rendered.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(le) = labels.split(',').find_map(|l| l.trim().strip_prefix("le=")) else {
            continue;
        };
        let le = le.trim_matches('"');
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        *out.entry(OrderedLe(le)).or_default() += count as u64;
    }
    out
}

/// A bucket bound that sorts (`le` values are never NaN here).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderedLe(pub f64);

impl Eq for OrderedLe {}
impl PartialOrd for OrderedLe {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedLe {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside the bucket like PromQL's
/// `histogram_quantile`. `None` without observations. A quantile in the `+Inf` bucket is the largest finite
/// bound.
pub fn bucket_quantile(buckets: &BTreeMap<OrderedLe, u64>, q: f64) -> Option<f64> {
    let total = *buckets
        .get(&OrderedLe(f64::INFINITY))
        .or(buckets.values().last())?;
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut prev_le = 0.0;
    let mut prev_count = 0u64;
    for (le, &count) in buckets {
        if count as f64 >= rank {
            if le.0.is_infinite() {
                return Some(prev_le);
            }
            let in_bucket = (count - prev_count.min(count)) as f64;
            if in_bucket == 0.0 {
                return Some(le.0);
            }
            return Some(prev_le + (le.0 - prev_le) * ((rank - prev_count as f64) / in_bucket));
        }
        prev_le = le.0;
        prev_count = count;
    }
    Some(prev_le)
}

/// The p99 of the sync lag over successive windows (between calls), from the rendered histogram.
#[derive(Debug, Default)]
pub struct LagWindow {
    last: BTreeMap<OrderedLe, u64>,
}

impl LagWindow {
    /// The p99 lag of the observations made since the previous call, `None` if there were none.
    pub fn p99_since_last(&mut self, rendered: &str) -> Option<f64> {
        let now = histogram_buckets(rendered, SYNC_LAG_SECONDS);
        let delta: BTreeMap<OrderedLe, u64> = now
            .iter()
            .map(|(le, c)| (*le, c.saturating_sub(*self.last.get(le).unwrap_or(&0))))
            .collect();
        self.last = now;
        bucket_quantile(&delta, 0.99)
    }
}

/// Registers the description (HELP text) and unit of every metric the syncer records.
pub fn describe_all() {
    crate::patrol::describe_metrics();
    // Sources.
    describe_counter!(
        WATCH_EVENTS_TOTAL,
        "Watch events received (bookmarks excluded), by kind and cluster_class (super|tenant)."
    );
    describe_counter!(
        WATCH_RESTARTS_TOTAL,
        "Watch streams re-opened after they ended or failed, by kind."
    );
    describe_counter!(
        RELISTS_TOTAL,
        "Full lists of a cluster x kind (no resume point, or 410 Gone), by kind."
    );
    describe_gauge!(
        TENANT_UP,
        "1 when every watch of the VC is established, 0 while any is listing, backing off or failing."
    );
    describe_gauge!(
        TENANT_BACKLOG_RECORDS,
        "Log entries of the VC accepted by the shards and not applied yet (queued, backing off or in flight), by vc."
    );
    describe_gauge!(
        TENANT_SYNC_LAG_P50_SECONDS,
        Unit::Seconds,
        "Median sync lag of the VC over the last minute (bucket upper bound; 0 without syncs), by vc."
    );
    describe_gauge!(
        TENANT_SYNC_LAG_P99_SECONDS,
        Unit::Seconds,
        "99th percentile sync lag of the VC over the last minute (bucket upper bound; 0 without syncs), by vc."
    );
    describe_counter!(
        SOURCE_UNMAPPED_TOTAL,
        "Labelled super-cluster objects without tenancy annotations (ignored), by kind."
    );
    describe_counter!(
        SOURCE_APPEND_ERRORS_TOTAL,
        "Log appends that failed in a source (the source relists afterwards), by kind."
    );
    // Log.
    describe_counter!(
        "vc_syncer_log_appended_records_total",
        "Records appended to the durable log."
    );
    describe_counter!(
        "vc_syncer_log_appended_bytes_total",
        Unit::Bytes,
        "Bytes appended to the durable log."
    );
    describe_gauge!(
        "vc_syncer_log_backlog_records",
        "Log records appended but not yet applied."
    );
    describe_gauge!(
        "vc_syncer_log_backlog_bytes",
        Unit::Bytes,
        "Bytes of log records appended but not yet applied (compared with the disk budget)."
    );
    describe_gauge!(
        LOG_DISK_BUDGET_BYTES,
        Unit::Bytes,
        "Disk budget of the unapplied backlog; appends wait while vc_syncer_log_backlog_bytes is at or above it."
    );
    describe_counter!(
        LOG_COMPACTED_RECORDS_TOTAL,
        "Applied log entries deleted by compaction."
    );
    describe_counter!(
        LOG_COMPACTIONS_TOTAL,
        "Compaction batches (applied entries deleted with the shard checkpoint in one atomic batch)."
    );
    describe_histogram!(
        "vc_syncer_log_group_commit_records",
        "Records committed per group commit (one sled batch + flush)."
    );
    describe_histogram!(
        "vc_syncer_log_flush_seconds",
        Unit::Seconds,
        "Duration of one group commit (batch apply + flush)."
    );
    // Shards.
    describe_gauge!(
        "vc_syncer_shard_queue_depth",
        "Messages waiting in a shard's bounded channel, by shard."
    );
    describe_gauge!(
        "vc_syncer_shard_pending_keys",
        "Distinct work keys waiting in a shard, by shard."
    );
    describe_counter!(
        RECONCILE_TOTAL,
        "Reconciles finished, by code (ok or the error code)."
    );
    describe_histogram!(
        "vc_syncer_sync_lag_seconds",
        Unit::Seconds,
        "From a watch event seen by a source to the successful reconcile of its key, by direction and kind."
    );
    describe_gauge!(
        "vc_syncer_checkpoint_age_seconds",
        Unit::Seconds,
        "Age of the oldest unapplied log entry of a shard, by shard."
    );
    describe_counter!(
        "vc_syncer_coalesced_total",
        "Events folded into an already pending reconcile of the same key."
    );
    describe_counter!(
        "vc_syncer_retries_total",
        "Reconciles scheduled again after a failure."
    );
    // Reconcile.
    describe_counter!(
        "vc_syncer_reconcile_writes_total",
        "Writes made by reconcilers, by kind, side (super|tenant) and verb."
    );
    describe_counter!(
        "vc_syncer_reconcile_reports_total",
        "Events reported to tenants about objects that cannot be synced, by kind and reason."
    );
    describe_counter!(
        "vc_syncer_reconcile_dropped_total",
        "Work items dropped because their tenant was removed."
    );
    describe_counter!(
        "vc_syncer_uid_mismatch_total",
        "Super objects left alone because their tenancy uid/cluster annotation did not match the tenant object."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "\
# TYPE vc_syncer_sync_lag_seconds histogram
vc_syncer_sync_lag_seconds_bucket{direction=\"down\",kind=\"Pod\",le=\"0.1\"} 50
vc_syncer_sync_lag_seconds_bucket{direction=\"down\",kind=\"Pod\",le=\"1\"} 90
vc_syncer_sync_lag_seconds_bucket{direction=\"down\",kind=\"Pod\",le=\"+Inf\"} 100
vc_syncer_sync_lag_seconds_bucket{direction=\"up\",kind=\"Pod\",le=\"0.1\"} 0
vc_syncer_sync_lag_seconds_bucket{direction=\"up\",kind=\"Pod\",le=\"1\"} 0
vc_syncer_sync_lag_seconds_bucket{direction=\"up\",kind=\"Pod\",le=\"+Inf\"} 100
vc_syncer_sync_lag_seconds_sum{direction=\"down\",kind=\"Pod\"} 12.5
vc_syncer_other_bucket{le=\"1\"} 7
";

    #[test]
    fn buckets_are_summed_over_label_sets() {
        let b = histogram_buckets(RENDERED, SYNC_LAG_SECONDS);
        assert_eq!(b.get(&OrderedLe(0.1)), Some(&50));
        assert_eq!(b.get(&OrderedLe(1.0)), Some(&90));
        assert_eq!(b.get(&OrderedLe(f64::INFINITY)), Some(&200));
    }

    #[test]
    fn quantiles_interpolate_like_promql() {
        let b: BTreeMap<OrderedLe, u64> = [(0.1, 50), (1.0, 90), (f64::INFINITY, 100)]
            .into_iter()
            .map(|(le, c)| (OrderedLe(le), c))
            .collect();
        // rank 25 of 50 in (0, 0.1] -> 0.05.
        assert_eq!(bucket_quantile(&b, 0.25), Some(0.05));
        // rank 70: 20 of 40 into (0.1, 1] -> 0.55.
        let p70 = bucket_quantile(&b, 0.7).unwrap_or(f64::NAN);
        assert!((p70 - 0.55).abs() < 1e-9, "{p70}");
        // rank 99 falls into +Inf: the largest finite bound.
        assert_eq!(bucket_quantile(&b, 0.99), Some(1.0));
        assert_eq!(bucket_quantile(&BTreeMap::new(), 0.99), None);
    }

    #[test]
    fn lag_window_only_counts_new_observations() {
        let mut w = LagWindow::default();
        assert_eq!(w.p99_since_last(RENDERED), Some(1.0));
        // Nothing new: no quantile.
        assert_eq!(w.p99_since_last(RENDERED), None);
        let later = RENDERED
            .replace("le=\"0.1\"} 50", "le=\"0.1\"} 60")
            .replace("le=\"1\"} 90", "le=\"1\"} 100")
            .replace(
                "kind=\"Pod\",le=\"+Inf\"} 100\nvc_syncer_sync_lag_seconds_bucket{direction=\"up\"",
                "kind=\"Pod\",le=\"+Inf\"} 110\nvc_syncer_sync_lag_seconds_bucket{direction=\"up\"",
            );
        // 10 new observations, all <= 0.1 s.
        let p99 = w.p99_since_last(&later).unwrap_or(f64::NAN);
        assert!(p99 <= 0.1 + 1e-9, "{p99}");
    }

    #[test]
    fn failure_only_counters_exist_at_zero_before_any_failure() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            zero_init();
            zero_init_source("Pod");
            zero_init_patrol("Pod");
        });
        let text = handle.render();
        for series in [
            "vc_syncer_reconcile_total{code=\"conflict\"} 0",
            "vc_syncer_reconcile_total{code=\"api_unavailable\"} 0",
            "vc_syncer_reconcile_total{code=\"ok\"} 0",
            "vc_syncer_retries_total 0",
            "vc_syncer_log_compacted_records_total 0",
            "vc_syncer_watch_restarts_total{kind=\"Pod\"} 0",
            "vc_syncer_relists_total{kind=\"Pod\"} 0",
            "vc_syncer_source_append_errors_total{kind=\"Pod\"} 0",
            "vc_syncer_uid_mismatch_total{kind=\"Pod\"} 0",
            "vc_syncer_patrol_findings_total{kind=\"Pod\",class=\"orphan\"} 0",
            "vc_syncer_patrol_errors_total{kind=\"Pod\",stage=\"super_list\"} 0",
            "vc_syncer_patrol_repairs_enqueued_total{kind=\"Pod\"} 0",
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
    }

    #[test]
    fn latency_buckets_are_strictly_increasing_and_cover_the_slo() {
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(SIZE_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        // The pod start-up SLO (p99 <= 5 s) and the API call SLO (<= 1 s) must be bucket edges.
        assert!(LATENCY_BUCKETS.contains(&1.0));
        assert!(LATENCY_BUCKETS.contains(&5.0));
    }
}
