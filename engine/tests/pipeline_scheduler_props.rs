//! Property tests of the shard scheduler: every pushed entry is delivered and applied exactly once (with
//! failures, retries and re-runs of keys that changed while in flight), and per tenant keys are delivered in
//! the order of their oldest pending entry.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use proptest::prelude::*;
use syncer::log::{Appended, Direction};
use syncer::record::WorkKey;
use syncer::shard::scheduler::{Outcome, Scheduler, Taken};

#[derive(Clone, Debug)]
enum Op {
    /// A new entry for key number `key` (0..12: 3 tenants × 2 namespaces × 2 names).
    Push { key: u8, up: bool },
    /// Take the next key, if any.
    Next,
    /// Complete in-flight reconcile number `which` (modulo how many are in flight).
    Complete { which: u8, ok: bool, backoff_ms: u8 },
    /// Let time pass.
    Tick { ms: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, any::<bool>()).prop_map(|(key, up)| Op::Push { key, up }),
        3 => Just(Op::Next),
        3 => (any::<u8>(), prop::bool::weighted(0.7), 0u8..4)
            .prop_map(|(which, ok, backoff_ms)| Op::Complete { which, ok, backoff_ms }),
        1 => (0u8..5).prop_map(|ms| Op::Tick { ms }),
    ]
}

fn work_key(n: u8) -> WorkKey {
    WorkKey {
        cluster: format!("t{}", n % 3),
        kind: "Pod".into(),
        namespace: format!("ns{}", (n / 3) % 2),
        name: format!("p{}", n / 6),
    }
}

fn entry(key: WorkKey, seq: u64, up: bool) -> Appended {
    Appended {
        shard: 0,
        seq,
        key,
        seen_at_micros: seq,
        direction: if up { Direction::Up } else { Direction::Down },
        bytes: 100,
    }
}

fn scheduler(fairness: bool, quantum: u32) -> Scheduler {
    Scheduler::new(fairness, quantum, Arc::new(RwLock::new(HashMap::new())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_entry_is_applied_exactly_once(
        ops in prop::collection::vec(op(), 1..300),
        fairness in any::<bool>(),
        quantum in 1u32..4,
    ) {
        let mut sched = scheduler(fairness, quantum);
        let start = Instant::now();
        let mut now = start;
        let mut seq = 0u64;
        let mut pushed: BTreeMap<u64, WorkKey> = BTreeMap::new();
        let mut applied: BTreeMap<u64, usize> = BTreeMap::new();
        let mut in_flight: Vec<Taken> = Vec::new();
        let check_taken = |taken: &Taken, pushed: &BTreeMap<u64, WorkKey>, in_flight: &[Taken]| {
            assert!(!taken.entries.is_empty(), "a delivery covers at least one entry");
            for (s, _) in &taken.entries {
                assert_eq!(pushed.get(s), Some(&taken.key), "entry {s} delivered under the wrong key");
            }
            assert!(
                in_flight.iter().all(|t| t.key != taken.key),
                "a key is never in flight twice"
            );
        };
        for op in ops {
            match op {
                Op::Push { key, up } => {
                    let key = work_key(key);
                    pushed.insert(seq, key.clone());
                    sched.push(&entry(key, seq, up));
                    seq += 1;
                }
                Op::Next => {
                    if let Some(taken) = sched.next(now) {
                        check_taken(&taken, &pushed, &in_flight);
                        in_flight.push(taken);
                    }
                }
                Op::Complete { which, ok, backoff_ms } => {
                    if !in_flight.is_empty() {
                        let taken = in_flight.remove(usize::from(which) % in_flight.len());
                        let outcome = if ok {
                            Outcome::Done
                        } else {
                            Outcome::Retry { backoff: Duration::from_millis(u64::from(backoff_ms)) }
                        };
                        let done = sched.complete(taken.clone(), outcome, now);
                        if ok {
                            assert_eq!(done, taken.entries);
                        } else {
                            assert!(done.is_empty());
                        }
                        for (s, _) in done {
                            *applied.entry(s).or_default() += 1;
                        }
                    }
                }
                Op::Tick { ms } => now += Duration::from_millis(u64::from(ms)),
            }
        }
        // Drain: everything in flight succeeds, time passes until every delayed key is due.
        for _ in 0..10_000 {
            for taken in in_flight.drain(..) {
                for (s, _) in sched.complete(taken, Outcome::Done, now) {
                    *applied.entry(s).or_default() += 1;
                }
            }
            if sched.is_empty() {
                break;
            }
            now += Duration::from_millis(5);
            if let Some(taken) = sched.next(now) {
                check_taken(&taken, &pushed, &in_flight);
                in_flight.push(taken);
            }
        }
        prop_assert!(sched.is_empty());
        let expected: BTreeMap<u64, usize> = pushed.keys().map(|s| (*s, 1)).collect();
        prop_assert_eq!(applied, expected);
    }

    #[test]
    fn keys_of_a_tenant_are_delivered_in_the_order_of_their_oldest_entry(
        ops in prop::collection::vec((0u8..12, 0u8..3), 1..300),
        fairness in any::<bool>(),
        quantum in 1u32..4,
    ) {
        // Each step pushes one entry, then reconciles `takes` keys (each succeeds at once, like a shard).
        let mut sched = scheduler(fairness, quantum);
        let now = Instant::now();
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut deliver = |sched: &mut Scheduler| -> bool {
            let Some(taken) = sched.next(now) else { return false };
            let oldest = taken.entries[0].0;
            let tenant = taken.key.cluster.clone();
            if let Some(previous) = last.insert(tenant.clone(), oldest) {
                assert!(previous < oldest, "tenant {tenant}: delivered {oldest} after {previous}");
            }
            sched.complete(taken, Outcome::Done, now);
            true
        };
        for (seq, (key, takes)) in ops.into_iter().enumerate() {
            sched.push(&entry(work_key(key), seq as u64, false));
            for _ in 0..takes {
                deliver(&mut sched);
            }
        }
        for _ in 0..1000 {
            if !deliver(&mut sched) {
                break;
            }
        }
        prop_assert!(sched.is_empty());
    }
}
