//! The figures of a churn phase, from the operations the driver kept and what the watches observed:
//! down lag per operation kind (create: super copy first seen; update: super copy first seen carrying that
//! update's gen label; delete: super copy seen deleted), up lag of creates (super pod Running → tenant pod
//! Running), per window and overall, and throughput.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::drive::{Driven, Op, OpKind};
use crate::observe::{Book, SUPER};
use crate::scenarios::Ctx;
use crate::scenarios::phase::{UpPath, up_times};
use crate::stats::{Summary, WindowPoint, lag_series, rate_series, summarize};
use crate::workload::Lane;

/// When the super cluster was seen reflecting `op`.
pub fn down_time(book: &Book, lanes: &[Lane], op: &Op) -> Option<Instant> {
    let t = book.get(SUPER, &lanes[op.lane].super_namespace, &op.name)?;
    match op.kind {
        OpKind::Create => t.first_seen,
        OpKind::Update => t.gen_seen(op.generation),
        OpKind::Delete => t.deleted,
    }
}

/// Whether `op` is an update that was seen on the pod it was written to and then replaced there by another
/// value before it reached the super cluster (someone else overwrote the label: it can no longer arrive).
pub fn overwritten(book: &Book, lanes: &[Lane], op: &Op) -> bool {
    let lane = &lanes[op.lane];
    op.kind == OpKind::Update
        && book
            .get(lane.cluster, &lane.namespace, &op.name)
            .is_some_and(|t| {
                t.gen_seen(op.generation).is_some() && t.last_gen != Some(op.generation)
            })
}

/// What the watches saw of the pod of `op` (for operations whose effect was not observed).
fn describe(book: &Book, lane: &Lane, op: &Op, was_overwritten: bool) -> String {
    let seen = |t: Option<crate::observe::PodTrack>| {
        t.map_or_else(
            || "never seen".to_string(),
            |t| {
                let gens: Vec<u32> = t.gens.iter().map(|(g, _)| *g).collect();
                format!("gens {gens:?}, deleted: {}", t.deleted.is_some())
            },
        )
    };
    format!(
        "{}{} {}/{} (gen {}): tenant {}; super {}",
        if was_overwritten {
            "overwritten on the tenant: "
        } else {
            ""
        },
        op.kind.name(),
        lane.namespace,
        op.name,
        op.generation,
        seen(book.get(lane.cluster, &lane.namespace, &op.name)),
        seen(book.get(SUPER, &lane.super_namespace, &op.name)),
    )
}

/// Figures of one operation kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KindFigures {
    /// Requested by the schedule.
    pub requested: usize,
    /// Sent (after conversions, see the notes).
    pub sent: usize,
    /// Answered with success.
    pub ok: usize,
    /// Failed.
    pub failed: usize,
    /// Successful operations whose effect was observed on the super cluster.
    pub observed: usize,
    /// Updates undone on the pod they were written to (its label replaced by another value) before they
    /// reached the super cluster; they never arrive, and are not lag samples.
    pub overwritten: usize,
    /// Down lag (seconds): sent → observed on the super cluster.
    pub down: Summary,
    /// Down lag per window of send time.
    pub series: Vec<WindowPoint>,
    /// Successful operations per second (ok / phase seconds).
    pub ok_per_second: Option<f64>,
    /// (sent, lag) samples.
    #[serde(skip)]
    pub samples: Vec<(Instant, f64)>,
    /// When effects were observed.
    #[serde(skip)]
    pub events: Vec<Instant>,
}

/// Figures of a churn phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChurnPhase {
    /// Operations sent.
    pub ops_sent: usize,
    /// Operations answered with success.
    pub ops_ok: usize,
    /// Operations that failed.
    pub ops_failed: usize,
    /// Requested operations not possible (population full, nothing settled to delete).
    pub skipped: usize,
    /// Operations of another kind than requested.
    pub converted: usize,
    /// The first few error messages.
    pub errors: Vec<String>,
    /// Schedule start → last answer (seconds).
    pub seconds: f64,
    /// Successful operations per second over the phase.
    pub ops_per_second: Option<f64>,
    /// How late operations were sent against the schedule (seconds).
    pub send_lateness: Summary,
    /// Per kind: create, update, delete.
    pub create: KindFigures,
    /// Updates.
    pub update: KindFigures,
    /// Deletes.
    pub delete: KindFigures,
    /// All kinds together, down lag.
    pub down_all: Summary,
    /// Up lag of created pods (super Running → tenant Running; direct: status write → seen), where the
    /// pod lived long enough.
    pub up: Summary,
    /// Up lag per window.
    pub up_series: Vec<WindowPoint>,
    /// Window of the series (seconds).
    pub window_seconds: f64,
    /// Live pods at the end.
    pub live_at_end: usize,
    /// Up to 10 successful operations whose effect was not observed, with what the watches saw of the pod.
    pub unobserved: Vec<String>,
    /// (lane, name) of those.
    #[serde(skip)]
    pub unobserved_pods: Vec<(usize, String)>,
    /// Every successful operation was observed or found overwritten (and every surviving create's status
    /// came up, when measured).
    pub complete: bool,
    /// (Running start, up lag) samples.
    #[serde(skip)]
    pub up_samples: Vec<(Instant, f64)>,
    /// Sent times of all operations.
    #[serde(skip)]
    pub sent_events: Vec<Instant>,
    /// Time origin.
    #[serde(skip)]
    pub origin: Option<Instant>,
}

impl ChurnPhase {
    /// The figures of `kind`.
    pub fn kind(&self, kind: OpKind) -> &KindFigures {
        match kind {
            OpKind::Create => &self.create,
            OpKind::Update => &self.update,
            OpKind::Delete => &self.delete,
        }
    }

    fn kind_mut(&mut self, kind: OpKind) -> &mut KindFigures {
        match kind {
            OpKind::Create => &mut self.create,
            OpKind::Update => &mut self.update,
            OpKind::Delete => &mut self.delete,
        }
    }
}

/// Names deleted successfully during the phase (their status may never come up: not waited for).
fn deleted_names(d: &Driven) -> HashSet<(usize, &str)> {
    d.ops
        .iter()
        .filter(|o| o.kind == OpKind::Delete && o.done.is_some())
        .map(|o| (o.lane, o.name.as_str()))
        .collect()
}

/// Waits (bounded by `limit` and the run's stop) until every successful operation is observed on the super
/// cluster and every create not deleted afterwards has its status observed where the up direction ends.
pub async fn wait_observed(
    ctx: &Ctx,
    lanes: &[Lane],
    d: &Driven,
    book: &Book,
    up: &UpPath,
    limit: Duration,
    label: &str,
) -> bool {
    let ok: Vec<&Op> = d.ops.iter().filter(|o| o.done.is_some()).collect();
    let deleted = deleted_names(d);
    let mut pending_down = ok.clone();
    let mut pending_up: Vec<&Op> = if matches!(up, UpPath::None) {
        Vec::new()
    } else {
        ok.iter()
            .copied()
            .filter(|o| o.kind == OpKind::Create && !deleted.contains(&(o.lane, o.name.as_str())))
            .collect()
    };
    let bar = ctx.bar(
        (pending_down.len() + pending_up.len()) as u64,
        &format!("{label}: observed"),
    );
    let total = pending_down.len() + pending_up.len();
    let done = crate::observe::wait_until(limit, &ctx.stop, || {
        pending_down
            .retain(|o| down_time(book, lanes, o).is_none() && !overwritten(book, lanes, o));
        pending_up.retain(|o| up_times(book, up, &lanes[o.lane], &o.name).is_none());
        bar.set_position((total - pending_down.len() - pending_up.len()) as u64);
        pending_down.is_empty() && pending_up.is_empty()
    })
    .await;
    bar.finish();
    done
}

/// The figures of a phase; `window` is the series' window.
pub fn analyze(lanes: &[Lane], d: &Driven, book: &Book, up: &UpPath, window: f64) -> ChurnPhase {
    let mut r = ChurnPhase {
        ops_sent: d.ops.len(),
        skipped: d.skipped,
        converted: d.converted,
        errors: d.errors.clone(),
        seconds: d.seconds,
        window_seconds: window,
        live_at_end: d.live_at_end,
        origin: Some(d.origin),
        ..ChurnPhase::default()
    };
    for k in OpKind::ALL {
        r.kind_mut(k).requested = d.requested[k.idx()];
    }
    let deleted = deleted_names(d);
    let mut complete = true;
    let mut lateness = Vec::with_capacity(d.ops.len());
    let mut all_down = Vec::with_capacity(d.ops.len());
    let mut up_lags = Vec::new();
    for op in &d.ops {
        lateness.push(op.sent.saturating_duration_since(op.due).as_secs_f64());
        r.sent_events.push(op.sent);
        let f = r.kind_mut(op.kind);
        f.sent += 1;
        if op.done.is_none() {
            f.failed += 1;
            continue;
        }
        f.ok += 1;
        match down_time(book, lanes, op) {
            Some(seen) => {
                let lag = seen.saturating_duration_since(op.sent).as_secs_f64();
                f.observed += 1;
                f.samples.push((op.sent, lag));
                f.events.push(seen);
                all_down.push(lag);
            }
            None => {
                let ow = overwritten(book, lanes, op);
                if ow {
                    f.overwritten += 1;
                } else {
                    complete = false;
                }
                if r.unobserved.len() < 10 {
                    r.unobserved.push(describe(book, &lanes[op.lane], op, ow));
                    r.unobserved_pods.push((op.lane, op.name.clone()));
                }
            }
        }
        if op.kind == OpKind::Create {
            match up_times(book, up, &lanes[op.lane], &op.name) {
                Some((start, end)) => {
                    let lag = end.saturating_duration_since(start).as_secs_f64();
                    up_lags.push(lag);
                    r.up_samples.push((start, lag));
                }
                None if matches!(up, UpPath::None) => {}
                None if deleted.contains(&(op.lane, op.name.as_str())) => {}
                None => complete = false,
            }
        }
    }
    for k in OpKind::ALL {
        let secs = d.seconds;
        let f = r.kind_mut(k);
        let lags: Vec<f64> = f.samples.iter().map(|(_, l)| *l).collect();
        f.down = summarize(&lags);
        f.series = lag_series(d.origin, &f.samples, window);
        f.ok_per_second = (secs > 0.0).then(|| f.ok as f64 / secs);
    }
    r.ops_ok = r.create.ok + r.update.ok + r.delete.ok;
    r.ops_failed = r.ops_sent - r.ops_ok;
    r.ops_per_second = (d.seconds > 0.0).then(|| r.ops_ok as f64 / d.seconds);
    r.send_lateness = summarize(&lateness);
    r.down_all = summarize(&all_down);
    r.up = summarize(&up_lags);
    r.up_series = lag_series(d.origin, &r.up_samples, window);
    r.complete = complete && r.ops_ok > 0;
    r
}

/// Observed operations per second per window: one line per kind with observations.
pub fn observed_rates(p: &ChurnPhase, window: f64) -> Vec<(OpKind, Vec<(f64, f64)>)> {
    let Some(o) = p.origin else {
        return Vec::new();
    };
    OpKind::ALL
        .iter()
        .filter(|k| !p.kind(**k).events.is_empty())
        .map(|k| (*k, rate_series(o, &p.kind(*k).events, window)))
        .collect()
}
