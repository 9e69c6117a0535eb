//! Small statistics: percentiles of samples, and time series (lag percentiles and throughput per window).

use std::time::Instant;

use serde::Serialize;

/// Percentile summary of a set of durations in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median (seconds).
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

/// The `q` quantile (nearest rank on the sorted samples); `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

/// Summarizes samples (seconds).
pub fn summarize(samples: &[f64]) -> Summary {
    let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let mean = (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64);
    Summary {
        count: s.len(),
        p50: quantile(&s, 0.5),
        p90: quantile(&s, 0.9),
        p99: quantile(&s, 0.99),
        max: s.last().copied(),
        mean,
    }
}

/// One window of a time series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowPoint {
    /// Window start, seconds since the run's origin.
    pub t: f64,
    /// Samples in the window.
    pub count: usize,
    /// p50 of the window's samples (seconds), if any.
    pub p50: Option<f64>,
    /// p90 of the window's samples (seconds), if any.
    pub p90: Option<f64>,
    /// p99 of the window's samples (seconds), if any.
    pub p99: Option<f64>,
}

/// Reads one percentile of a window.
pub type Pick = fn(&WindowPoint) -> Option<f64>;

/// The p50 and p99 of a window, with their names (for plotting both).
pub const P50_P99: [(&str, Pick); 2] = [("p50", |w| w.p50), ("p99", |w| w.p99)];

/// The (window start, value) points of one percentile of a series, skipping empty windows.
pub fn percentile_points(series: &[WindowPoint], pick: Pick) -> Vec<(f64, f64)> {
    series
        .iter()
        .filter_map(|w| pick(w).map(|v| (w.t, v)))
        .collect()
}

/// Lag percentiles per window: `samples` are (when the operation happened, its lag in seconds).
pub fn lag_series(origin: Instant, samples: &[(Instant, f64)], window: f64) -> Vec<WindowPoint> {
    let window = window.max(0.001);
    let mut buckets: Vec<Vec<f64>> = Vec::new();
    for (at, lag) in samples {
        let i = (at.saturating_duration_since(origin).as_secs_f64() / window) as usize;
        if i >= buckets.len() {
            buckets.resize_with(i + 1, Vec::new);
        }
        buckets[i].push(*lag);
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            v.sort_by(f64::total_cmp);
            WindowPoint {
                t: i as f64 * window,
                count: v.len(),
                p50: quantile(&v, 0.5),
                p90: quantile(&v, 0.9),
                p99: quantile(&v, 0.99),
            }
        })
        .collect()
}

/// Events per second in each window: (window start in seconds since `origin`, rate).
pub fn rate_series(origin: Instant, events: &[Instant], window: f64) -> Vec<(f64, f64)> {
    let window = window.max(0.001);
    let mut counts: Vec<usize> = Vec::new();
    for at in events {
        let i = (at.saturating_duration_since(origin).as_secs_f64() / window) as usize;
        if i >= counts.len() {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * window, c as f64 / window))
        .collect()
}

/// `a / b` when both exist and `b > 0`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_of_known_samples() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&v);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Some(51.0));
        assert_eq!(s.p99, Some(99.0));
        assert_eq!(s.max, Some(100.0));
        assert_eq!(s.mean, Some(50.5));
        assert_eq!(summarize(&[]).p50, None);
    }

    #[test]
    fn series_bucket_by_window() {
        let o = Instant::now();
        let at = |ms: u64| o + Duration::from_millis(ms);
        let lag = lag_series(o, &[(at(100), 1.0), (at(900), 3.0), (at(2500), 2.0)], 1.0);
        assert_eq!(lag.len(), 3);
        assert_eq!(lag[0].count, 2);
        assert_eq!(lag[0].p99, Some(3.0));
        assert_eq!(lag[1].count, 0);
        assert_eq!(lag[2].p50, Some(2.0));
        let rate = rate_series(o, &[at(0), at(100), at(600)], 0.5);
        assert_eq!(rate, vec![(0.0, 4.0), (0.5, 2.0)]);
        assert_eq!(ratio(Some(2.0), Some(4.0)), Some(0.5));
        assert_eq!(ratio(Some(2.0), Some(0.0)), None);
    }
}
