//! The scheduler inside one shard: a pending set keyed by [`WorkKey`] (coalescing), weighted deficit round
//! robin across tenants, and delayed retries.
//!
//! A key is in exactly one state: queued (waiting in its tenant's queue), delayed (failed, waiting for its
//! backoff to pass) or in flight (handed out by [`Scheduler::next`], not yet [`Scheduler::complete`]d).
//! Events for a queued or delayed key are coalesced into it; events for a key in flight are kept and the key
//! is queued again when the running reconcile completes, so a reconcile always starts after the events it
//! covers. A tenant's queue is ordered by each key's oldest unapplied seq, so the keys of one namespace (which
//! share a shard and its seq space) are reconciled in the order their events were appended, also when a key
//! is queued again after a retry or a re-run. Pure data structure: time is passed in, so it is tested
//! without clocks.
//!
//! Keys can also be *injected* without a log entry ([`Scheduler::inject`], the patroller's repairs): an
//! injected key joins a pending key like an event would (a key in flight is reconciled once more), and a new
//! one is queued in its tenant's queue behind every entry the shard has accepted so far, so injected work
//! neither jumps ahead of nor starves logged work, and is served by the same fair rounds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::log::{Appended, Direction};
use crate::record::WorkKey;

/// Tenant weights shared by every shard; tenants without an entry weigh 1.
pub type Weights = Arc<RwLock<HashMap<String, u32>>>;

/// Log entries a reconcile covers, handed out by [`Scheduler::next`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The key to reconcile.
    pub key: WorkKey,
    /// (seq, bytes) of every entry the reconcile covers, ascending.
    pub entries: Vec<(u64, u64)>,
    /// `seen_at` (µs) of the oldest covered entry observed in a tenant.
    pub oldest_down: Option<u64>,
    /// `seen_at` (µs) of the oldest covered entry observed in the super cluster.
    pub oldest_up: Option<u64>,
    /// Failed attempts so far for these entries.
    pub attempts: u32,
}

impl Taken {
    fn empty(key: WorkKey) -> Self {
        Self {
            key,
            entries: Vec::new(),
            oldest_down: None,
            oldest_up: None,
            attempts: 0,
        }
    }

    fn add(&mut self, entry: &Appended) {
        self.entries.push((entry.seq, entry.bytes));
        let slot = match entry.direction {
            Direction::Down => &mut self.oldest_down,
            Direction::Up => &mut self.oldest_up,
        };
        *slot = Some(slot.map_or(entry.seen_at_micros, |s| s.min(entry.seen_at_micros)));
    }

    fn merge(&mut self, other: Taken) {
        self.entries.extend(other.entries);
        self.entries.sort_unstable();
        self.oldest_down = min_opt(self.oldest_down, other.oldest_down);
        self.oldest_up = min_opt(self.oldest_up, other.oldest_up);
        self.attempts = self.attempts.max(other.attempts);
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug)]
enum State {
    Queued,
    Delayed,
    /// Handed out; `Taken` collects entries that arrived meanwhile.
    InFlight,
}

#[derive(Debug)]
struct Pending {
    state: State,
    taken: Taken,
    /// Queue position of an injected key without entries: (last seq accepted when injected, injection
    /// number), unique within the shard.
    injected_at: Option<(u64, u64)>,
    /// Injected while in flight: reconcile once more after the running reconcile, even without entries.
    rerun: bool,
}

impl Pending {
    /// Position in its tenant's queue: its oldest entry's seq, or where it was injected.
    fn order(&self) -> (u64, u64) {
        match self.taken.entries.first() {
            Some((seq, _)) => (*seq, 0),
            None => self.injected_at.unwrap_or((0, 0)),
        }
    }
}

#[derive(Debug, Default)]
struct Tenant {
    /// Queued keys by (oldest unapplied seq, 0), or (last accepted seq, injection number) for injected keys
    /// without entries; unique within a shard.
    queue: BTreeMap<(u64, u64), WorkKey>,
    deficit: u64,
    /// Whether this tenant got its quantum for the current turn at the head of the round.
    credited: bool,
    active: bool,
}

/// Outcome of a reconcile, for [`Scheduler::complete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded: the covered entries are applied.
    Done,
    /// Failed: retry the entries after `backoff`.
    Retry {
        /// How long to wait before the key is queued again.
        backoff: Duration,
    },
}

/// Coalescing, fair, retrying scheduler of one shard.
#[derive(Debug)]
pub struct Scheduler {
    fairness: bool,
    quantum: u32,
    weights: Weights,
    pending: HashMap<WorkKey, Pending>,
    tenants: HashMap<String, Tenant>,
    /// Tenants with queued keys, in round-robin order.
    round: VecDeque<String>,
    delayed: BinaryHeap<Reverse<(Instant, u64, WorkKey)>>,
    delay_counter: u64,
    /// Highest seq pushed so far (injected keys queue behind it).
    last_seq: u64,
    /// Injections so far (the tie-breaker of injected queue positions; starts at 1).
    injections: u64,
}

impl Scheduler {
    /// A scheduler; `fairness: false` serves every tenant from one FIFO. `quantum` (≥ 1) is how many keys a
    /// tenant of weight 1 gets per round.
    pub fn new(fairness: bool, quantum: u32, weights: Weights) -> Self {
        Self {
            fairness,
            quantum: quantum.max(1),
            weights,
            pending: HashMap::new(),
            tenants: HashMap::new(),
            round: VecDeque::new(),
            delayed: BinaryHeap::new(),
            delay_counter: 0,
            last_seq: 0,
            injections: 0,
        }
    }

    /// Keys pending in any state (queued, delayed or in flight).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no key is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the earliest delayed key becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Adds one committed entry. Returns true if it was coalesced into a key already pending.
    pub fn push(&mut self, entry: &Appended) -> bool {
        self.last_seq = self.last_seq.max(entry.seq);
        if let Some(pending) = self.pending.get_mut(&entry.key) {
            pending.taken.add(entry);
            return true;
        }
        let mut taken = Taken::empty(entry.key.clone());
        taken.add(entry);
        self.pending.insert(
            entry.key.clone(),
            Pending {
                state: State::Queued,
                taken,
                injected_at: None,
                rerun: false,
            },
        );
        self.enqueue(entry.key.clone(), (entry.seq, 0));
        false
    }

    /// Adds work for `key` without a log entry (nothing to apply when it completes). Returns true if it was
    /// coalesced into a key already pending (a key in flight is reconciled once more afterwards).
    pub fn inject(&mut self, key: WorkKey) -> bool {
        self.injections += 1;
        let position = (self.last_seq, self.injections);
        if let Some(pending) = self.pending.get_mut(&key) {
            if matches!(pending.state, State::InFlight) {
                pending.rerun = true;
                if pending.taken.entries.is_empty() {
                    pending.injected_at = Some(position);
                }
            }
            return true;
        }
        self.pending.insert(
            key.clone(),
            Pending {
                state: State::Queued,
                taken: Taken::empty(key.clone()),
                injected_at: Some(position),
                rerun: false,
            },
        );
        self.enqueue(key, position);
        false
    }

    /// The next key to reconcile, if any is queued; moves delayed keys that are due at `now` to their queue first.
    pub fn next(&mut self, now: Instant) -> Option<Taken> {
        self.release_due(now);
        let key = self.pick()?;
        let pending = self.pending.get_mut(&key)?;
        pending.state = State::InFlight;
        let fresh = Taken::empty(key);
        Some(std::mem::replace(&mut pending.taken, fresh))
    }

    /// Reports the outcome of a reconcile handed out by [`Scheduler::next`]. Returns the applied entries
    /// (empty on retry).
    pub fn complete(&mut self, taken: Taken, outcome: Outcome, now: Instant) -> Vec<(u64, u64)> {
        let Some(pending) = self.pending.get_mut(&taken.key) else {
            return Vec::new();
        };
        match outcome {
            Outcome::Done => {
                if pending.taken.entries.is_empty() && !pending.rerun {
                    self.pending.remove(&taken.key);
                } else {
                    // New events (or an injection) arrived while it ran: reconcile again, in the order of
                    // those events.
                    pending.state = State::Queued;
                    pending.rerun = false;
                    let order = pending.order();
                    self.enqueue(taken.key.clone(), order);
                }
                taken.entries
            }
            Outcome::Retry { backoff } => {
                let key = taken.key.clone();
                let mut taken = taken;
                taken.attempts = taken.attempts.saturating_add(1);
                taken.merge(std::mem::replace(
                    &mut pending.taken,
                    Taken::empty(key.clone()),
                ));
                pending.taken = taken;
                pending.state = State::Delayed;
                pending.rerun = false;
                self.delay_counter += 1;
                self.delayed
                    .push(Reverse((now + backoff, self.delay_counter, key)));
                Vec::new()
            }
        }
    }

    fn tenant_of(&self, key: &WorkKey) -> String {
        if self.fairness {
            key.cluster.clone()
        } else {
            String::new()
        }
    }

    fn enqueue(&mut self, key: WorkKey, order: (u64, u64)) {
        let name = self.tenant_of(&key);
        let tenant = self.tenants.entry(name.clone()).or_default();
        tenant.queue.insert(order, key);
        if !tenant.active {
            tenant.active = true;
            self.round.push_back(name);
        }
    }

    fn release_due(&mut self, now: Instant) {
        while let Some(Reverse((due, _, _))) = self.delayed.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, key))) = self.delayed.pop() else {
                break;
            };
            if let Some(pending) = self.pending.get_mut(&key)
                && matches!(pending.state, State::Delayed)
            {
                pending.state = State::Queued;
                let order = pending.order();
                self.enqueue(key, order);
            }
        }
    }

    /// Deficit round robin: the tenant at the head of the round gets `quantum × weight` credits when its
    /// turn starts, spends one per key, and goes to the back when out of credit; an emptied tenant leaves.
    fn pick(&mut self) -> Option<WorkKey> {
        loop {
            let name = self.round.front()?.clone();
            let Some(tenant) = self.tenants.get_mut(&name) else {
                self.round.pop_front();
                continue;
            };
            if tenant.queue.is_empty() {
                self.round.pop_front();
                self.tenants.remove(&name);
                continue;
            }
            if !tenant.credited {
                let weight = self.weights.read().get(&name).copied().unwrap_or(1).max(1);
                tenant.deficit += u64::from(self.quantum) * u64::from(weight);
                tenant.credited = true;
            }
            if tenant.deficit >= 1 {
                tenant.deficit -= 1;
                let key = tenant.queue.pop_first().map(|(_, key)| key);
                if tenant.queue.is_empty() {
                    self.round.pop_front();
                    self.tenants.remove(&name);
                }
                return key;
            }
            tenant.credited = false;
            self.round.rotate_left(1);
        }
    }
}
