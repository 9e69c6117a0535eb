//! The churn load generator: a seeded schedule of create/update/delete operations at a steady rate
//! (exponential inter-arrival times), dispatched on time with bounded concurrency over a set of lanes, with
//! a bounded live population. Every operation keeps when it was due, sent and answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use serde_json::json;

use crate::observe::{Book, SUPER};
use crate::scenarios::Ctx;
use crate::workload::{LABEL_GEN, Lane, pod, rng, token};

/// What an operation does to a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Create a new pod.
    Create,
    /// Bump the pod's update-count label (`loadtest.x-k8s.io/gen`).
    Update,
    /// Delete the pod (grace period 0).
    Delete,
}

impl OpKind {
    /// All kinds, in report order.
    pub const ALL: [OpKind; 3] = [OpKind::Create, OpKind::Update, OpKind::Delete];

    /// Index in [`OpKind::ALL`].
    pub fn idx(self) -> usize {
        match self {
            OpKind::Create => 0,
            OpKind::Update => 1,
            OpKind::Delete => 2,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        ["create", "update", "delete"][self.idx()]
    }
}

/// Hard cap on the operations of one schedule, whatever `--rate` and `--duration` say.
pub const MAX_OPS: usize = 2_000_000;

/// The operations of a churn: (offset from the start, requested kind), at `rate` per second on average for
/// `duration`, kinds drawn with the weights `mix` (create, update, delete). Same seed, same schedule.
pub fn schedule(
    rate: f64,
    duration: Duration,
    mix: (u32, u32, u32),
    seed: u64,
) -> Vec<(Duration, OpKind)> {
    let mut out = Vec::new();
    if !rate.is_finite() || rate <= 0.0 {
        return out;
    }
    let mut r = rng(seed, 3);
    let total = f64::from(mix.0 + mix.1 + mix.2).max(1.0);
    let end = duration.as_secs_f64();
    let mut t = 0.0f64;
    while out.len() < MAX_OPS {
        let u: f64 = r.random_range(0.0..1.0);
        t += -(1.0 - u).ln() / rate;
        if t >= end {
            break;
        }
        let pick = r.random_range(0.0..total);
        let kind = if pick < f64::from(mix.0) {
            OpKind::Create
        } else if pick < f64::from(mix.0 + mix.1) {
            OpKind::Update
        } else {
            OpKind::Delete
        };
        out.push((Duration::from_secs_f64(t), kind));
    }
    out
}

/// A live pod of the churn.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePod {
    /// Its lane.
    pub lane: usize,
    /// Its name.
    pub name: String,
    /// Its current update count (value of the gen label).
    pub generation: u32,
}

/// The live population: pods not being written right now, and how many exist or are being created.
#[derive(Debug, Default)]
pub struct Population {
    idle: Vec<LivePod>,
    /// Pods that exist or whose create is in flight.
    pub count: usize,
}

impl Population {
    /// Takes a random idle pod for which `settled` holds (its last write was observed on the super
    /// cluster), trying at most 16 picks.
    fn take_settled(
        &mut self,
        r: &mut impl Rng,
        settled: impl Fn(&LivePod) -> bool,
    ) -> Option<LivePod> {
        for _ in 0..16 {
            if self.idle.is_empty() {
                return None;
            }
            let i = r.random_range(0..self.idle.len());
            if settled(&self.idle[i]) {
                return Some(self.idle.swap_remove(i));
            }
        }
        None
    }
}

/// What the dispatcher decided for a requested operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Create a pod (the caller names it and picks its lane).
    Create,
    /// Update this pod.
    Update(LivePod),
    /// Delete this pod.
    Delete(LivePod),
}

impl Decision {
    /// Its kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Decision::Create => OpKind::Create,
            Decision::Update(_) => OpKind::Update,
            Decision::Delete(_) => OpKind::Delete,
        }
    }
}

/// Turns a requested kind into an operation: a create beyond `max_pods` becomes a delete; an update or
/// delete with no settled pod becomes a create (under `max_pods`); `None` when neither is possible.
pub fn decide(
    pop: &mut Population,
    requested: OpKind,
    max_pods: usize,
    r: &mut impl Rng,
    settled: impl Fn(&LivePod) -> bool,
) -> Option<Decision> {
    if requested == OpKind::Create && pop.count < max_pods {
        pop.count += 1;
        return Some(Decision::Create);
    }
    if let Some(p) = pop.take_settled(r, settled) {
        return Some(if requested == OpKind::Update {
            Decision::Update(p)
        } else {
            Decision::Delete(p)
        });
    }
    if requested != OpKind::Create && pop.count < max_pods {
        pop.count += 1;
        return Some(Decision::Create);
    }
    None
}

/// One operation sent.
#[derive(Clone, Debug)]
pub struct Op {
    /// What it did.
    pub kind: OpKind,
    /// The kind the schedule asked for.
    pub requested: OpKind,
    /// Lane of the pod.
    pub lane: usize,
    /// Pod name.
    pub name: String,
    /// The update count the pod has after this operation (0 for a create).
    pub generation: u32,
    /// When it was due by the schedule.
    pub due: Instant,
    /// When the request was sent.
    pub sent: Instant,
    /// When the API server answered success (`None`: it failed).
    pub done: Option<Instant>,
}

/// Everything one churn drive did.
#[derive(Debug)]
pub struct Driven {
    /// The operations sent, by send time.
    pub ops: Vec<Op>,
    /// Requested operations per kind (create, update, delete) reached by the schedule before the end.
    pub requested: [usize; 3],
    /// Requested operations that were not possible (population full and nothing settled to delete).
    pub skipped: usize,
    /// Operations of another kind than requested (see [`decide`]).
    pub converted: usize,
    /// The first few error messages.
    pub errors: Vec<String>,
    /// Start of the schedule (time origin).
    pub origin: Instant,
    /// Schedule start → last answer (seconds).
    pub seconds: f64,
    /// Live pods at the end.
    pub live_at_end: usize,
}

/// How to drive.
pub struct DriveConfig {
    /// Pods written straight to the super cluster (the baseline).
    pub direct: bool,
    /// Live population bound.
    pub max_pods: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Stream of the seeded random source (pod names, lanes, picks).
    pub stream: u64,
    /// Progress label.
    pub label: String,
}

fn settled(book: &Book, lanes: &[Lane], p: &LivePod) -> bool {
    book.get(SUPER, &lanes[p.lane].super_namespace, &p.name)
        .is_some_and(|t| t.gen_seen(p.generation).is_some() && t.deleted.is_none())
}

struct Shared {
    pop: Mutex<Population>,
    ops: Mutex<Vec<Op>>,
    errors: Mutex<Vec<String>>,
}

async fn execute(
    lane: &Lane,
    d: &Decision,
    name: &str,
    run: &str,
    direct: bool,
) -> Result<(), String> {
    let api = Api::<Pod>::namespaced(lane.client.clone(), &lane.namespace);
    let r = match d {
        Decision::Create => {
            let obj = pod(name, run, direct).map_err(|e| e.to_string())?;
            api.create(&PostParams::default(), &obj).await.map(|_| ())
        }
        Decision::Update(p) => {
            let patch =
                json!({"metadata": {"labels": {LABEL_GEN: (p.generation + 1).to_string()}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
        Decision::Delete(_) => api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
            .map(|_| ()),
    };
    r.map_err(|e| e.to_string())
}

/// Runs the schedule `plan` over `lanes` until it ends or the run stops; then waits (at most 2 minutes)
/// for the requests in flight.
pub async fn drive(
    ctx: &Ctx,
    lanes: Arc<Vec<Lane>>,
    book: Arc<Book>,
    plan: &[(Duration, OpKind)],
    cfg: DriveConfig,
) -> Driven {
    let shared = Arc::new(Shared {
        pop: Mutex::new(Population::default()),
        ops: Mutex::new(Vec::with_capacity(plan.len())),
        errors: Mutex::new(Vec::new()),
    });
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut r = rng(ctx.global.seed, cfg.stream);
    let bar = ctx.bar(plan.len() as u64, &format!("{}: ops", cfg.label));
    let (mut requested, mut skipped, mut converted) = ([0usize; 3], 0usize, 0usize);
    let origin = Instant::now();
    for (i, (at, kind)) in plan.iter().enumerate() {
        let due = origin + *at;
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = ctx.stop.stopped() => break,
        }
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = ctx.stop.stopped() => break,
        };
        requested[kind.idx()] += 1;
        let decision = {
            let mut pop = shared.pop.lock();
            decide(&mut pop, *kind, cfg.max_pods, &mut r, |p| {
                settled(&book, &lanes, p)
            })
        };
        let Some(decision) = decision else {
            skipped += 1;
            bar.inc(1);
            continue;
        };
        if decision.kind() != *kind {
            converted += 1;
        }
        let (lane, name, generation) = match &decision {
            Decision::Create => (
                r.random_range(0..lanes.len().max(1)),
                format!("c{i}-{}", token(&mut r, 4)),
                0,
            ),
            Decision::Update(p) => (p.lane, p.name.clone(), p.generation + 1),
            Decision::Delete(p) => (p.lane, p.name.clone(), p.generation),
        };
        let (lanes, shared, bar) = (lanes.clone(), shared.clone(), bar.clone());
        let (run, direct, requested_kind) = (ctx.run.clone(), cfg.direct, *kind);
        tasks.spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            let result = execute(&lanes[lane], &decision, &name, &run, direct).await;
            let done = result.is_ok().then(Instant::now);
            {
                let mut pop = shared.pop.lock();
                let live = |generation| LivePod {
                    lane,
                    name: name.clone(),
                    generation,
                };
                match (&decision, result.is_ok()) {
                    (Decision::Create, true) => pop.idle.push(live(0)),
                    (Decision::Create, false) | (Decision::Delete(_), true) => {
                        pop.count = pop.count.saturating_sub(1);
                    }
                    (Decision::Update(_), true) => pop.idle.push(live(generation)),
                    (Decision::Update(p) | Decision::Delete(p), false) => {
                        pop.idle.push(p.clone());
                    }
                }
            }
            if let Err(e) = result {
                let mut errs = shared.errors.lock();
                if errs.len() < 5 {
                    tracing::warn!(pod = %name, error = %e, "{} failed", decision.kind().name());
                    errs.push(format!("{} {name}: {e}", decision.kind().name()));
                }
            }
            shared.ops.lock().push(Op {
                kind: decision.kind(),
                requested: requested_kind,
                lane,
                name,
                generation,
                due,
                sent,
                done,
            });
            bar.inc(1);
        });
        while tasks.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("churn: requests still in flight after 2 minutes; abandoned");
        tasks.abort_all();
    }
    bar.finish();
    let mut ops = std::mem::take(&mut *shared.ops.lock());
    ops.sort_by_key(|o| o.sent);
    let last = ops.iter().filter_map(|o| o.done).max();
    let pop = shared.pop.lock();
    Driven {
        seconds: last.map_or(0.0, |l| l.saturating_duration_since(origin).as_secs_f64()),
        ops,
        requested,
        skipped,
        converted,
        errors: shared.errors.lock().clone(),
        origin,
        live_at_end: pop.count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_reproducible_steady_and_follow_the_mix() {
        let a = schedule(200.0, Duration::from_secs(50), (60, 30, 10), 4);
        assert_eq!(a, schedule(200.0, Duration::from_secs(50), (60, 30, 10), 4));
        assert_ne!(a, schedule(200.0, Duration::from_secs(50), (60, 30, 10), 5));
        // About 10,000 operations (Poisson: sd 100).
        assert!((9_500..10_500).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(a.last().is_some_and(|(t, _)| *t < Duration::from_secs(50)));
        let share = |k| a.iter().filter(|(_, x)| *x == k).count() as f64 / a.len() as f64;
        assert!((share(OpKind::Create) - 0.6).abs() < 0.03);
        assert!((share(OpKind::Update) - 0.3).abs() < 0.03);
        assert!((share(OpKind::Delete) - 0.1).abs() < 0.03);
        // Steady: each 10 s holds about a fifth of the operations.
        for k in 0..5 {
            let n = a.iter().filter(|(t, _)| t.as_secs() / 10 == k).count();
            assert!((1_700..2_300).contains(&n), "window {k}: {n}");
        }
        assert!(schedule(0.0, Duration::from_secs(5), (1, 0, 0), 1).is_empty());
    }

    #[test]
    fn decisions_bound_the_population_and_touch_only_settled_pods() {
        let mut r = rng(1, 1);
        let mut pop = Population::default();
        // Nothing to update or delete yet: becomes a create.
        assert_eq!(
            decide(&mut pop, OpKind::Update, 2, &mut r, |_| true),
            Some(Decision::Create)
        );
        assert_eq!(
            decide(&mut pop, OpKind::Create, 2, &mut r, |_| true),
            Some(Decision::Create)
        );
        assert_eq!(pop.count, 2);
        // Full, nothing idle: skipped.
        assert_eq!(decide(&mut pop, OpKind::Create, 2, &mut r, |_| true), None);
        let a = LivePod {
            lane: 0,
            name: "a".into(),
            generation: 0,
        };
        let b = LivePod {
            lane: 1,
            name: "b".into(),
            generation: 3,
        };
        pop.idle = vec![a.clone(), b.clone()];
        // Full: a create becomes a delete, of a settled pod only.
        assert_eq!(
            decide(&mut pop, OpKind::Create, 2, &mut r, |p| p.name == "b"),
            Some(Decision::Delete(b))
        );
        // Unsettled pods are not touched.
        assert_eq!(decide(&mut pop, OpKind::Update, 2, &mut r, |_| false), None);
        assert_eq!(
            decide(&mut pop, OpKind::Update, 2, &mut r, |_| true),
            Some(Decision::Update(a))
        );
        assert!(pop.idle.is_empty());
    }
}
