//! Reading the syncer's Prometheus text: sums of a metric and quantiles of its lag histogram per direction.

use serde::Serialize;

/// Sum of every sample of metric `name` (all label sets); `None` if absent.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(name)
            && (rest.starts_with('{') || rest.starts_with(' '))
            && let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// Quantiles of the syncer's own `vc_syncer_sync_lag_seconds` histogram for one direction and kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyncerLag {
    /// Observations in the histogram.
    pub count: u64,
    /// p50 in seconds (bucket-interpolated, like PromQL's `histogram_quantile`).
    pub p50_seconds: Option<f64>,
    /// p99 in seconds.
    pub p99_seconds: Option<f64>,
}

impl SyncerLag {
    /// `p50 / p99` in milliseconds, `-` where not measured.
    pub fn p50_p99(&self) -> String {
        format!(
            "{} / {}",
            crate::report::ms(self.p50_seconds),
            crate::report::ms(self.p99_seconds)
        )
    }
}

/// The syncer's lag histogram for `direction` (`down`/`up`) and `kind` (e.g. `Pod`).
pub fn syncer_lag(text: &str, direction: &str, kind: &str) -> SyncerLag {
    let dir = format!("direction=\"{direction}\"");
    let k = format!("kind=\"{kind}\"");
    let filtered: String = text
        .lines()
        .filter(|l| l.contains(&dir) && l.contains(&k))
        .map(|l| format!("{l}\n"))
        .collect();
    let buckets = syncer::metrics::histogram_buckets(&filtered, syncer::metrics::SYNC_LAG_SECONDS);
    let count = buckets.values().last().copied().unwrap_or(0);
    SyncerLag {
        count,
        p50_seconds: syncer::metrics::bucket_quantile(&buckets, 0.5),
        p99_seconds: syncer::metrics::bucket_quantile(&buckets, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE vc_syncer_tenant_up gauge
vc_syncer_tenant_up{vc=\"a\"} 1
vc_syncer_tenant_up{vc=\"b\"} 1
vc_syncer_sync_lag_seconds_bucket{direction=\"down\",kind=\"Pod\",le=\"0.1\"} 50
vc_syncer_sync_lag_seconds_bucket{direction=\"down\",kind=\"Pod\",le=\"1\"} 100
vc_syncer_sync_lag_seconds_bucket{direction=\"down\",kind=\"Pod\",le=\"+Inf\"} 100
vc_syncer_sync_lag_seconds_bucket{direction=\"up\",kind=\"Pod\",le=\"0.1\"} 0
vc_syncer_sync_lag_seconds_bucket{direction=\"up\",kind=\"Pod\",le=\"1\"} 10
vc_syncer_sync_lag_seconds_bucket{direction=\"up\",kind=\"Pod\",le=\"+Inf\"} 10
";

    #[test]
    fn sums_and_direction_quantiles() {
        assert_eq!(sum(TEXT, "vc_syncer_tenant_up"), Some(2.0));
        assert_eq!(sum(TEXT, "vc_syncer_missing"), None);
        let down = syncer_lag(TEXT, "down", "Pod");
        assert_eq!(down.count, 100);
        assert_eq!(down.p50_seconds, Some(0.1));
        let up = syncer_lag(TEXT, "up", "Pod");
        assert_eq!(up.count, 10);
        let p50 = up.p50_seconds.unwrap_or(0.0);
        assert!((p50 - 0.55).abs() < 1e-9, "{p50}");
        assert_eq!(syncer_lag(TEXT, "up", "Namespace").count, 0);
    }
}
