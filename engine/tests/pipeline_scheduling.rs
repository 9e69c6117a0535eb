//! Scheduling through the whole pipeline: coalescing, re-run of a key that changed while running,
//! weighted fair scheduling (and its absence), retries with backoff.

mod pipeline_support;

use pipeline_support::{Recording, config, key, pod, wait_drained, wait_until};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::shard::ReconcileError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_a_waiting_key_are_coalesced_into_one_reconcile_of_the_latest_state() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::gated();
    let pipeline = Pipeline::start(config(dir.path(), 1), rec.clone()).unwrap();
    let sink = pipeline.sink();
    sink.append(vec![pod("t1", "ns", "blocker", 1)], None)
        .await
        .unwrap();
    wait_until("the blocker is being reconciled", || rec.count() == 1).await;
    for rv in 1..=100 {
        sink.append(vec![pod("t1", "ns", "k", rv)], None)
            .await
            .unwrap();
    }
    wait_until("all events reached the shard", || {
        pipeline.stats().shard_queue_depth[0] == 100
    })
    .await;
    rec.open();
    wait_drained(|| pipeline.stats()).await;
    let calls: Vec<_> = rec
        .calls()
        .into_iter()
        .filter(|c| c.key == key("t1", "ns", "k"))
        .collect();
    assert!(
        (1..=2).contains(&calls.len()),
        "100 events → {} reconciles",
        calls.len()
    );
    assert_eq!(calls.last().unwrap().seen_rv.as_deref(), Some("100"));
    assert_eq!(pipeline.stats().applied, 101);
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_changes_while_it_is_reconciled_is_reconciled_again() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::gated();
    let pipeline = Pipeline::start(config(dir.path(), 1), rec.clone()).unwrap();
    let sink = pipeline.sink();
    sink.append(vec![pod("t1", "ns", "k", 1)], None)
        .await
        .unwrap();
    wait_until("k is being reconciled", || rec.count() == 1).await;
    sink.append(vec![pod("t1", "ns", "k", 2)], None)
        .await
        .unwrap();
    rec.open();
    wait_drained(|| pipeline.stats()).await;
    let seen: Vec<_> = rec.calls().into_iter().map(|c| c.seen_rv).collect();
    assert_eq!(seen, vec![Some("1".to_owned()), Some("2".to_owned())]);
    pipeline.shutdown();
}

/// Tenant A floods 10,000 keys, then tenant B adds one. Returns B's position among the reconciles.
async fn position_of_the_light_tenant(fairness: bool, quantum: u32) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::gated();
    let cfg = PipelineConfig {
        fairness,
        quantum,
        max_pending_keys: 20_000,
        shard_queue_capacity: 20_000,
        ..config(dir.path(), 1)
    };
    let pipeline = Pipeline::start(cfg, rec.clone()).unwrap();
    let sink = pipeline.sink();
    sink.append(vec![pod("a", "ns", "blocker", 1)], None)
        .await
        .unwrap();
    wait_until("the blocker is being reconciled", || rec.count() == 1).await;
    for chunk in 0..20 {
        let records = (0..500)
            .map(|i| pod("a", "ns", &format!("p{}", chunk * 500 + i), 1))
            .collect();
        sink.append(records, None).await.unwrap();
    }
    sink.append(vec![pod("b", "ns", "light", 1)], None)
        .await
        .unwrap();
    wait_until("every key reached the shard", || {
        pipeline.stats().shard_queue_depth[0] == 10_001
    })
    .await;
    rec.open();
    wait_drained(|| pipeline.stats()).await;
    let calls = rec.calls();
    assert_eq!(calls.len(), 10_002);
    let position = calls
        .iter()
        .position(|c| c.key == key("b", "ns", "light"))
        .unwrap();
    pipeline.shutdown();
    position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_tenant_is_not_starved_by_a_flooding_one_when_fairness_is_on() {
    let quantum = 4;
    let tenants = 2;
    let position = position_of_the_light_tenant(true, quantum).await;
    assert!(
        position <= 2 * quantum as usize * tenants,
        "B reconciled after {position} others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fairness_a_light_tenant_waits_behind_the_flood() {
    let position = position_of_the_light_tenant(false, 4).await;
    assert!(position > 10_000, "B reconciled after {position} others");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_weights_share_the_shard_proportionally() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::gated();
    let cfg = PipelineConfig {
        quantum: 1,
        ..config(dir.path(), 1)
    };
    let pipeline = Pipeline::start(cfg, rec.clone()).unwrap();
    pipeline.set_tenant_weight("heavy", 3);
    let sink = pipeline.sink();
    sink.append(vec![pod("z", "ns", "blocker", 1)], None)
        .await
        .unwrap();
    wait_until("the blocker is being reconciled", || rec.count() == 1).await;
    let mut records = Vec::new();
    for i in 0..200 {
        records.push(pod("heavy", "ns", &format!("h{i}"), 1));
        records.push(pod("light", "ns", &format!("l{i}"), 1));
    }
    sink.append(records, None).await.unwrap();
    wait_until("every key reached the shard", || {
        pipeline.stats().shard_queue_depth[0] == 400
    })
    .await;
    rec.open();
    wait_drained(|| pipeline.stats()).await;
    let first: Vec<_> = rec.calls().into_iter().skip(1).take(80).collect();
    let heavy = first.iter().filter(|c| c.key.cluster == "heavy").count();
    assert!((58..=62).contains(&heavy), "heavy got {heavy} of 80");
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_key_is_retried_with_backoff_without_blocking_others() {
    let dir = tempfile::tempdir().unwrap();
    let failing = key("t1", "ns", "flaky");
    let flaky = failing.clone();
    let rec = Recording::with(move |k, before| {
        if *k == flaky && before < 5 {
            Err(ReconcileError::new("conflict", format!("attempt {before}")))
        } else {
            Ok(())
        }
    });
    let cfg = PipelineConfig {
        retry_base: std::time::Duration::from_millis(5),
        ..config(dir.path(), 1)
    };
    let pipeline = Pipeline::start(cfg, rec.clone()).unwrap();
    let sink = pipeline.sink();
    sink.append(vec![pod("t1", "ns", "flaky", 1)], None)
        .await
        .unwrap();
    wait_until("flaky failed once", || rec.count() >= 1).await;
    sink.append(vec![pod("t1", "ns", "other", 1)], None)
        .await
        .unwrap();
    wait_drained(|| pipeline.stats()).await;
    let calls = rec.calls();
    let flaky_calls = calls.iter().filter(|c| c.key == failing).count();
    assert_eq!(flaky_calls, 6, "5 failures then one success");
    let other_at = calls.iter().position(|c| c.key.name == "other").unwrap();
    let last_flaky_at = calls.iter().rposition(|c| c.key == failing).unwrap();
    assert!(
        other_at < last_flaky_at,
        "the other key did not wait for the failing one"
    );
    assert_eq!(pipeline.stats().applied, 2);
    pipeline.shutdown();
}
