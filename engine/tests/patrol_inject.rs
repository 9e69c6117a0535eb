//! Work injection (the patroller's way into the shards): keys enqueued without a log record are reconciled
//! once, coalesce with pending work, run again when injected while in flight, queue behind the work a shard
//! already holds, and apply nothing.

mod pipeline_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use pipeline_support::{Recording, config, key, pod, wait_until};
use syncer::log::{Appended, Direction};
use syncer::pipeline::{InjectError, Pipeline};
use syncer::shard::scheduler::{Outcome, Scheduler};

fn scheduler() -> Scheduler {
    Scheduler::new(true, 8, Arc::new(RwLock::new(HashMap::new())))
}

fn entry(cluster: &str, name: &str, seq: u64) -> Appended {
    Appended {
        shard: 0,
        seq,
        key: key(cluster, "ns", name),
        seen_at_micros: 1,
        direction: Direction::Down,
        bytes: 10,
    }
}

#[test]
fn an_injected_key_is_reconciled_once_and_applies_nothing() {
    let mut s = scheduler();
    let now = Instant::now();
    assert!(
        !s.inject(key("t1", "ns", "a")),
        "a new key is not coalesced"
    );
    let taken = s
        .next(now)
        .unwrap_or_else(|| panic!("the injected key is queued"));
    assert_eq!(taken.key, key("t1", "ns", "a"));
    assert!(taken.entries.is_empty());
    assert!(s.complete(taken, Outcome::Done, now).is_empty());
    assert!(s.is_empty(), "done: nothing left");
    assert!(s.next(now).is_none());
}

#[test]
fn injection_coalesces_with_queued_work_and_queues_behind_it() {
    let mut s = scheduler();
    let now = Instant::now();
    s.push(&entry("t1", "a", 0));
    s.push(&entry("t1", "b", 1));
    assert!(s.inject(key("t1", "ns", "b")), "joins the pending key");
    assert!(!s.inject(key("t1", "ns", "c")));
    s.push(&entry("t1", "d", 2));
    let order: Vec<String> = std::iter::from_fn(|| {
        let t = s.next(now)?;
        let name = t.key.name.clone();
        s.complete(t, Outcome::Done, now);
        Some(name)
    })
    .collect();
    assert_eq!(
        order,
        vec!["a", "b", "c", "d"],
        "behind the entries taken before it, ahead of later ones"
    );
    assert!(s.is_empty());
}

#[test]
fn a_key_injected_while_in_flight_runs_again_afterwards() {
    let mut s = scheduler();
    let now = Instant::now();
    s.push(&entry("t1", "a", 0));
    let first = s.next(now).unwrap_or_else(|| panic!("queued"));
    assert!(
        s.inject(key("t1", "ns", "a")),
        "coalesced into the running key"
    );
    assert!(s.next(now).is_none(), "never in flight twice");
    assert_eq!(s.complete(first, Outcome::Done, now), vec![(0, 10)]);
    let again = s
        .next(now)
        .unwrap_or_else(|| panic!("the injection asked for another run"));
    assert!(again.entries.is_empty());
    s.complete(again, Outcome::Done, now);
    assert!(s.is_empty());
}

#[test]
fn a_failed_injected_key_is_retried_after_its_backoff() {
    let mut s = scheduler();
    let now = Instant::now();
    s.inject(key("t1", "ns", "a"));
    let taken = s.next(now).unwrap_or_else(|| panic!("queued"));
    s.complete(
        taken,
        Outcome::Retry {
            backoff: Duration::from_millis(50),
        },
        now,
    );
    assert!(s.next(now).is_none(), "backing off");
    let retried = s
        .next(now + Duration::from_millis(60))
        .unwrap_or_else(|| panic!("due again"));
    assert_eq!(retried.attempts, 1);
    s.complete(retried, Outcome::Done, now);
    assert!(s.is_empty());
}

#[test]
fn injected_keys_share_the_fair_rounds() {
    let mut s = Scheduler::new(true, 1, Arc::new(RwLock::new(HashMap::new())));
    let now = Instant::now();
    // Tenant t1 has a long backlog of logged work; t2's repair still gets the second turn.
    for seq in 0..5 {
        s.push(&entry("t1", &format!("p{seq}"), seq));
    }
    s.inject(key("t2", "ns", "repair"));
    let clusters: Vec<String> = (0..3)
        .filter_map(|_| {
            let t = s.next(now)?;
            let c = t.key.cluster.clone();
            s.complete(t, Outcome::Done, now);
            Some(c)
        })
        .collect();
    assert_eq!(clusters, vec!["t1", "t2", "t1"]);
}

#[tokio::test]
async fn the_pipeline_reconciles_injected_keys_on_their_shard() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let recording = Recording::new();
    let pipeline =
        Pipeline::start(config(dir.path(), 3), recording.clone()).unwrap_or_else(|e| panic!("{e}"));
    let injector = pipeline.injector();
    assert_eq!(injector.shards(), 3);
    pipeline
        .sink()
        .append(vec![pod("t1", "ns", "logged", 5)], None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for name in ["x", "y"] {
        injector
            .inject(key("t1", "ns", name), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    wait_until("all three keys reconciled", || recording.count() >= 3).await;
    let mut names: Vec<String> = recording.calls().into_iter().map(|c| c.key.name).collect();
    let at = |n: &str, names: &[String]| names.iter().position(|m| m == n);
    assert!(
        at("x", &names) < at("y", &names),
        "one namespace, one shard, in order: {names:?}"
    );
    names.sort();
    assert_eq!(names, vec!["logged", "x", "y"], "each key reconciled once");
    wait_until("the logged entry applied", || pipeline.stats().applied == 1).await;
    assert_eq!(
        pipeline.stats().applied,
        1,
        "injected keys apply no log entries"
    );
    let pipeline_gone = pipeline.injector();
    pipeline.shutdown();
    assert_eq!(
        pipeline_gone.inject(key("t1", "ns", "late"), Duration::from_millis(10)),
        Err(InjectError::Closed)
    );
}
