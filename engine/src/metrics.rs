//! The Prometheus exporter and the catalogue of every `vc_syncer_*` metric.
//!
//! Modules record metrics with the `metrics` crate macros; the binary calls [`install`] once at start-up,
//! which serves `GET /metrics` on the given address and registers a description for each metric. Latency
//! histograms get explicit buckets (real Prometheus histograms with `_bucket`, `_sum`, `_count`, which
//! `histogram_quantile` can aggregate across instances) instead of the exporter's default summaries.
//!
//! Label cardinality stays bounded at 1,000 VCs: the only per-VC series are gauges/counters
//! (`vc_syncer_tenant_up{vc}`); histograms carry only small fixed label sets.

use std::net::SocketAddr;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

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
/// Super-cluster objects in the syncer's label selection that carry no tenant identity (ignored), by `kind`.
pub const SOURCE_UNMAPPED_TOTAL: &str = "vc_syncer_source_unmapped_total";
/// Records dropped because appending them to the log failed (the batch is retried after a relist), by `kind`.
pub const SOURCE_APPEND_ERRORS_TOTAL: &str = "vc_syncer_source_append_errors_total";

/// Installs the global recorder and serves `/metrics` on `addr` (must be called inside a tokio runtime).
pub fn install(addr: SocketAddr) -> Result<(), MetricsError> {
    let err = |source| MetricsError::Install { addr, source };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(err)?
        .set_buckets_for_metric(
            Matcher::Full("vc_syncer_log_group_commit_records".into()),
            SIZE_BUCKETS,
        )
        .map_err(err)?
        .install()
        .map_err(err)?;
    describe_all();
    Ok(())
}

/// Registers the description (HELP text) and unit of every metric the syncer records.
pub fn describe_all() {
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
        "vc_syncer_reconcile_total",
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
        "vc_syncer_uid_mismatch_total",
        "Super objects left alone because their tenancy uid/cluster annotation did not match the tenant object."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_strictly_increasing_and_cover_the_slo() {
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(SIZE_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        // The pod start-up SLO (p99 <= 5 s) and the API call SLO (<= 1 s) must be bucket edges.
        assert!(LATENCY_BUCKETS.contains(&1.0));
        assert!(LATENCY_BUCKETS.contains(&5.0));
    }
}
