//! Per-VC gauges of the tenant backlog and sync lag, published every second from the shards' in-memory
//! [`TenantStats`](crate::shard::TenantStats) (the same figures the gRPC tenant status reports).
//!
//! One series per served VC, labelled `vc="<namespace>/<name>"` like `vc_syncer_tenant_up`. A VC that is no
//! longer served (its removal finished) has its series set to 0 at the next publication, so `topk` panels
//! drop it instead of showing its last value.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::metrics::{
    TENANT_BACKLOG_RECORDS, TENANT_SYNC_LAG_P50_SECONDS, TENANT_SYNC_LAG_P99_SECONDS,
};
use crate::shard::TenantFigures;

use super::TenantSet;

/// How often the gauges are refreshed.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes the per-VC gauges and remembers which VCs it published (to zero those that go away).
#[derive(Debug, Default)]
pub struct TenantGauges {
    published: BTreeSet<String>,
}

impl TenantGauges {
    /// Sets the gauges of every VC in `figures` (label value → figures) and zeroes those published before
    /// but absent now.
    pub fn publish(&mut self, figures: impl IntoIterator<Item = (String, TenantFigures)>) {
        let mut current = BTreeSet::new();
        for (vc, f) in figures {
            set(
                &vc,
                f.backlog as f64,
                f.lag_p50_ms / 1000.0,
                f.lag_p99_ms / 1000.0,
            );
            current.insert(vc);
        }
        for gone in self.published.difference(&current) {
            set(gone, 0.0, 0.0, 0.0);
        }
        self.published = current;
    }
}

fn set(vc: &str, backlog: f64, p50: f64, p99: f64) {
    metrics::gauge!(TENANT_BACKLOG_RECORDS, "vc" => vc.to_string()).set(backlog);
    metrics::gauge!(TENANT_SYNC_LAG_P50_SECONDS, "vc" => vc.to_string()).set(p50);
    metrics::gauge!(TENANT_SYNC_LAG_P99_SECONDS, "vc" => vc.to_string()).set(p99);
}

/// Publishes the gauges of `tenants` every [`PUBLISH_INTERVAL`] until the set begins shutting down.
pub async fn run(tenants: TenantSet) {
    let mut stopping = tenants.stopping();
    let mut gauges = TenantGauges::default();
    let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = stopping.wait_for(|s| *s) => true,
        };
        if stop {
            return;
        }
        gauges.publish(tenants.vc_figures().await);
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;
    use crate::shard::TenantStats;

    fn value(text: &str, name: &str, vc: &str) -> Option<f64> {
        let prefix = format!("{name}{{vc=\"{vc}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn gauges_follow_the_tenant_stats_and_zero_removed_vcs() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let stats = TenantStats::default();
        let mut gauges = TenantGauges::default();
        let figures = |keys: &[(&str, &str)]| {
            keys.iter()
                .map(|(vc, key)| (vc.to_string(), stats.figures(key)))
                .collect::<Vec<_>>()
        };

        stats.accepted("k-a", 7);
        stats.accepted("k-b", 2);
        // 99 fast applies and one slow one: p50 is the 5 ms bucket, p99 the 5 ms bucket too (rank 99).
        stats.applied("k-a", 3, &[0.004; 99]);
        stats.applied("k-a", 0, &[1.5]);
        metrics::with_local_recorder(&recorder, || {
            gauges.publish(figures(&[("ns-a/a", "k-a"), ("ns-b/b", "k-b")]));
        });
        let text = handle.render();
        assert_eq!(
            value(&text, TENANT_BACKLOG_RECORDS, "ns-a/a"),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_BACKLOG_RECORDS, "ns-b/b"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_SYNC_LAG_P50_SECONDS, "ns-a/a"),
            Some(0.005),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_SYNC_LAG_P99_SECONDS, "ns-a/a"),
            Some(0.005),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_SYNC_LAG_P99_SECONDS, "ns-b/b"),
            Some(0.0),
            "{text}"
        );

        // More slow applies move p99 up; the backlog drains; b goes away.
        stats.applied("k-a", 4, &[1.5, 1.5]);
        metrics::with_local_recorder(&recorder, || {
            gauges.publish(figures(&[("ns-a/a", "k-a")]));
        });
        let text = handle.render();
        assert_eq!(
            value(&text, TENANT_BACKLOG_RECORDS, "ns-a/a"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_SYNC_LAG_P99_SECONDS, "ns-a/a"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_BACKLOG_RECORDS, "ns-b/b"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            value(&text, TENANT_SYNC_LAG_P50_SECONDS, "ns-b/b"),
            Some(0.0),
            "{text}"
        );
    }
}
