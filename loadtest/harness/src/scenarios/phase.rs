//! One phase of pod creates, followed until synced, and its analysis: lags both ways, rates, time to all
//! synced — from the write times the harness kept and what its watches observed.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Ctx, StatusTimes};
use crate::observe::{Book, SUPER};
use crate::stats::{Summary, summarize};
use crate::workload::{Lane, Written};

/// Where the up direction of a phase is observed.
#[derive(Clone)]
pub enum UpPath {
    /// Through the syncer: super copy seen Running → tenant pod seen Running.
    Tenant,
    /// The direct path: the harness's status write sent → the pod seen Running on the super cluster.
    Direct(StatusTimes),
    /// Not measured.
    None,
}

/// The figures of one phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseResult {
    /// Creates attempted.
    pub attempted: usize,
    /// Creates that succeeded.
    pub written: usize,
    /// Creates that failed.
    pub failed: usize,
    /// First create sent → last create answered (seconds).
    pub create_seconds: Option<f64>,
    /// Creates per second, as the API server answered them.
    pub create_rate: Option<f64>,
    /// Pods whose super copy (or, direct, the pod itself) was seen on the super cluster.
    pub synced_down: usize,
    /// Pods whose Running status was seen where it is expected (tenant, or super for the direct path).
    pub synced_up: usize,
    /// Down lag: create sent → seen on the super cluster by a watch (seconds). (From the send, because a
    /// watch can deliver the object before the create's own answer is read.)
    pub down: Summary,
    /// Up lag (seconds), see [`UpPath`].
    pub up: Summary,
    /// Pods seen down per second: synced_down / (first create sent → last seen on super).
    pub down_rate: Option<f64>,
    /// Pods seen up per second: synced_up / (first Running on super → last Running where expected).
    pub up_rate: Option<f64>,
    /// First create sent → everything observed (down, and up when measured) (seconds).
    pub all_synced_seconds: Option<f64>,
    /// Whether every written pod was observed both ways (as measured).
    pub complete: bool,
    /// (create sent, down lag) samples.
    #[serde(skip)]
    pub down_samples: Vec<(Instant, f64)>,
    /// (Running on super, up lag) samples.
    #[serde(skip)]
    pub up_samples: Vec<(Instant, f64)>,
    /// Times pods were first seen on the super cluster.
    #[serde(skip)]
    pub down_events: Vec<Instant>,
    /// Times pods were seen Running where the up direction ends.
    #[serde(skip)]
    pub up_events: Vec<Instant>,
    /// The first create sent (time origin of the phase).
    #[serde(skip)]
    pub origin: Option<Instant>,
}

/// When the super copy (or the direct pod) of `name` was first seen on the super cluster.
pub fn down_seen(book: &Book, lane: &Lane, name: &str) -> Option<Instant> {
    book.get(SUPER, &lane.super_namespace, name)
        .and_then(|t| t.first_seen)
}

/// (start, end) of the up direction of one pod, when both were observed.
pub fn up_times(book: &Book, up: &UpPath, lane: &Lane, name: &str) -> Option<(Instant, Instant)> {
    match up {
        UpPath::None => None,
        UpPath::Tenant => {
            let start = book.get(SUPER, &lane.super_namespace, name)?.running?;
            let end = book.get(lane.cluster, &lane.namespace, name)?.running?;
            Some((start, end))
        }
        UpPath::Direct(times) => {
            let start = *times
                .lock()
                .get(&(lane.namespace.clone(), name.to_string()))?;
            let end = book.get(SUPER, &lane.namespace, name)?.running?;
            Some((start, end))
        }
    }
}

/// Waits until every successfully written pod is observed down (and up unless [`UpPath::None`]), bounded by
/// `limit` and the run's stop signal; advances the two progress bars. Returns whether all were observed.
pub async fn wait_synced(
    ctx: &Ctx,
    lanes: &[Lane],
    written: &[Written],
    book: &Book,
    up: &UpPath,
    limit: Duration,
    label: &str,
) -> bool {
    let ok: Vec<&Written> = written.iter().filter(|w| w.done.is_some()).collect();
    let down_bar = ctx.bar(ok.len() as u64, &format!("{label}: seen on super"));
    let up_bar = (!matches!(up, UpPath::None))
        .then(|| ctx.bar(ok.len() as u64, &format!("{label}: status seen")));
    let mut pending_down: Vec<&Written> = ok.clone();
    let mut pending_up: Vec<&Written> = if up_bar.is_some() { ok } else { Vec::new() };
    let done = crate::observe::wait_until(limit, &ctx.stop, || {
        pending_down.retain(|w| down_seen(book, &lanes[w.lane], &w.name).is_none());
        pending_up.retain(|w| up_times(book, up, &lanes[w.lane], &w.name).is_none());
        down_bar.set_position(down_bar.length().unwrap_or(0) - pending_down.len() as u64);
        if let Some(b) = &up_bar {
            b.set_position(b.length().unwrap_or(0) - pending_up.len() as u64);
        }
        pending_down.is_empty() && pending_up.is_empty()
    })
    .await;
    down_bar.finish();
    if let Some(b) = up_bar {
        b.finish();
    }
    done
}

/// The figures of a phase.
pub fn analyze(lanes: &[Lane], written: &[Written], book: &Book, up: &UpPath) -> PhaseResult {
    let mut r = PhaseResult {
        attempted: written.len(),
        ..PhaseResult::default()
    };
    let origin = written.iter().map(|w| w.sent).min();
    r.origin = origin;
    let last_done = written.iter().filter_map(|w| w.done).max();
    r.written = written.iter().filter(|w| w.done.is_some()).count();
    r.failed = r.attempted - r.written;
    if let (Some(o), Some(l)) = (origin, last_done) {
        let secs = l.saturating_duration_since(o).as_secs_f64();
        r.create_seconds = Some(secs);
        r.create_rate = (secs > 0.0).then(|| r.written as f64 / secs);
    }
    let mut down_lags = Vec::new();
    let mut up_lags = Vec::new();
    let mut up_starts = Vec::new();
    let mut all_done = true;
    for w in written {
        if w.done.is_none() {
            continue;
        }
        let lane = &lanes[w.lane];
        match down_seen(book, lane, &w.name) {
            Some(seen) => {
                let lag = seen.saturating_duration_since(w.sent).as_secs_f64();
                down_lags.push(lag);
                r.down_samples.push((w.sent, lag));
                r.down_events.push(seen);
            }
            None => all_done = false,
        }
        match up_times(book, up, lane, &w.name) {
            Some((start, end)) => {
                let lag = end.saturating_duration_since(start).as_secs_f64();
                up_lags.push(lag);
                r.up_samples.push((start, lag));
                r.up_events.push(end);
                up_starts.push(start);
            }
            None if !matches!(up, UpPath::None) => all_done = false,
            None => {}
        }
    }
    r.synced_down = down_lags.len();
    r.synced_up = up_lags.len();
    r.down = summarize(&down_lags);
    r.up = summarize(&up_lags);
    r.complete = all_done && r.written > 0;
    if let (Some(o), Some(last)) = (origin, r.down_events.iter().max()) {
        let secs = last.saturating_duration_since(o).as_secs_f64();
        r.down_rate = (secs > 0.0).then(|| r.synced_down as f64 / secs);
    }
    if let (Some(first), Some(last)) = (up_starts.iter().min(), r.up_events.iter().max()) {
        let secs = last.saturating_duration_since(*first).as_secs_f64();
        r.up_rate = (secs > 0.0).then(|| r.synced_up as f64 / secs);
    }
    let last_any = r.down_events.iter().chain(r.up_events.iter()).max();
    if let (Some(o), Some(l)) = (origin, last_any)
        && r.complete
    {
        r.all_synced_seconds = Some(l.saturating_duration_since(o).as_secs_f64());
    }
    r
}
