//! The log and view through the public pipeline API: view contents, resume points, per-namespace order,
//! format version refusal, shard-count changes.

mod pipeline_support;

use std::collections::BTreeMap;

use pipeline_support::{Recording, config, pod, record, wait_drained, wait_until};
use serde_json::json;
use syncer::log::{LogError, ResumePoint, read_unapplied};
use syncer::pipeline::{Pipeline, PipelineError};
use syncer::record::EventType;
use syncer::shard::ReconcileError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_holds_the_latest_state_and_deletes_remove_it() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new();
    let pipeline = Pipeline::start(config(dir.path(), 2), rec.clone()).unwrap();
    let sink = pipeline.sink();
    sink.append(
        vec![
            pod("t1", "ns", "a", 1),
            pod("t1", "ns", "b", 2),
            pod("t1", "other", "c", 3),
        ],
        None,
    )
    .await
    .unwrap();
    sink.append(
        vec![
            pod("t1", "ns", "a", 4),
            record("t1", "ns", "b", 5, EventType::Deleted),
        ],
        None,
    )
    .await
    .unwrap();
    let view = pipeline.view();
    let a = view.get("t1", "Pod", "ns", "a").unwrap().unwrap();
    assert_eq!(a.resource_version, "4");
    assert_eq!(a.uid, "uid-a");
    assert_eq!(a.object["metadata"]["resourceVersion"], "4");
    assert!(view.get("t1", "Pod", "ns", "b").unwrap().is_none());
    let all: Vec<(String, String)> = view
        .list("t1", "Pod")
        .unwrap()
        .into_iter()
        .map(|(ns, name, _)| (ns, name))
        .collect();
    assert_eq!(
        all,
        vec![("ns".into(), "a".into()), ("other".into(), "c".into())]
    );
    let names: Vec<String> = view
        .list_namespace("t1", "Pod", "ns")
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, vec!["a".to_owned()]);
    assert!(view.list("t2", "Pod").unwrap().is_empty());
    wait_drained(|| pipeline.stats()).await;
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_states_never_overwrite_newer_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path(), 1), Recording::new()).unwrap();
    let view = pipeline.view();
    let written = json!({"metadata": {"name": "a", "resourceVersion": "10", "uid": "u"}});
    view.record_write("t1", "Pod", "ns", "a", Some(&written))
        .unwrap();
    // A late watch event with an older version is logged but does not regress the view.
    pipeline
        .sink()
        .append(vec![pod("t1", "ns", "a", 5)], None)
        .await
        .unwrap();
    assert_eq!(
        view.get("t1", "Pod", "ns", "a")
            .unwrap()
            .unwrap()
            .resource_version,
        "10"
    );
    let older = json!({"metadata": {"name": "a", "resourceVersion": "8"}});
    view.record_write("t1", "Pod", "ns", "a", Some(&older))
        .unwrap();
    assert_eq!(
        view.get("t1", "Pod", "ns", "a")
            .unwrap()
            .unwrap()
            .resource_version,
        "10"
    );
    // A stale delete (older than what is stored) keeps the object; a newer one removes it.
    pipeline
        .sink()
        .append(vec![record("t1", "ns", "a", 9, EventType::Deleted)], None)
        .await
        .unwrap();
    assert!(view.get("t1", "Pod", "ns", "a").unwrap().is_some());
    pipeline
        .sink()
        .append(vec![record("t1", "ns", "a", 11, EventType::Deleted)], None)
        .await
        .unwrap();
    assert!(view.get("t1", "Pod", "ns", "a").unwrap().is_none());
    view.record_write("t1", "Pod", "ns", "a", Some(&written))
        .unwrap();
    view.record_write("t1", "Pod", "ns", "a", None).unwrap();
    assert!(view.get("t1", "Pod", "ns", "a").unwrap().is_none());
    assert!(
        view.record_write("t\0x", "Pod", "ns", "a", Some(&written))
            .is_err()
    );
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_points_survive_a_restart_and_forget_cluster_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let pipeline = Pipeline::start(config(dir.path(), 2), Recording::new()).unwrap();
        let resume = |rv: &str| ResumePoint {
            cluster: "t1".into(),
            kind: "Pod".into(),
            resource_version: rv.into(),
        };
        pipeline
            .sink()
            .append(vec![pod("t1", "ns", "a", 7)], Some(resume("7")))
            .await
            .unwrap();
        pipeline
            .sink()
            .append(vec![], Some(resume("9")))
            .await
            .unwrap();
        assert_eq!(
            pipeline.resume_point("t1", "Pod").unwrap().as_deref(),
            Some("9")
        );
        assert_eq!(pipeline.resume_point("t1", "Service").unwrap(), None);
        pipeline.shutdown();
    }
    let pipeline = Pipeline::start(config(dir.path(), 2), Recording::new()).unwrap();
    assert_eq!(
        pipeline.resume_point("t1", "Pod").unwrap().as_deref(),
        Some("9")
    );
    assert!(
        pipeline
            .view()
            .get("t1", "Pod", "ns", "a")
            .unwrap()
            .is_some()
    );
    pipeline.forget_cluster("t1").unwrap();
    assert_eq!(pipeline.resume_point("t1", "Pod").unwrap(), None);
    assert!(pipeline.view().list("t1", "Pod").unwrap().is_empty());
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_one_namespace_are_reconciled_in_append_order() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new();
    let pipeline = Pipeline::start(config(dir.path(), 4), rec.clone()).unwrap();
    let sink = pipeline.sink();
    let mut expected: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..40 {
        for t in 0..3 {
            for n in 0..5 {
                let (cluster, ns, name) = (format!("t{t}"), format!("ns{n}"), format!("p{i}"));
                expected
                    .entry((cluster.clone(), ns.clone()))
                    .or_default()
                    .push(name.clone());
                batch.push(pod(&cluster, &ns, &name, i + 1));
                if batch.len() == 7 {
                    sink.append(std::mem::take(&mut batch), None).await.unwrap();
                }
            }
        }
    }
    sink.append(batch, None).await.unwrap();
    wait_drained(|| pipeline.stats()).await;
    let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for call in rec.calls() {
        seen.entry((call.key.cluster, call.key.namespace))
            .or_default()
            .push(call.key.name);
    }
    assert_eq!(seen, expected);
    assert_eq!(pipeline.stats().applied, 600);
    pipeline.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("log")).unwrap();
        db.insert(b"\x00format", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = Pipeline::start(config(dir.path(), 1), Recording::new()).unwrap_err();
    assert!(
        matches!(
            &err,
            PipelineError::Log(LogError::UnsupportedFormat { found, supported: 1, .. }) if found == "99"
        ),
        "{err:?}"
    );
    assert!(read_unapplied(dir.path()).is_err());

    let other = tempfile::tempdir().unwrap();
    {
        let db = sled::open(other.path().join("log")).unwrap();
        db.insert(b"something", b"else").unwrap();
        db.flush().unwrap();
    }
    let err = Pipeline::start(config(other.path(), 1), Recording::new()).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Log(LogError::MissingFormat { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapplied_entries_are_rerouted_when_the_shard_count_changes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let failing = Recording::with(|_, _| Err(ReconcileError::new("down", "api unavailable")));
        let pipeline = Pipeline::start(config(dir.path(), 2), failing.clone()).unwrap();
        let records = (0..50)
            .map(|i| pod("t1", &format!("ns{}", i % 7), &format!("p{i}"), i + 1))
            .collect();
        pipeline.sink().append(records, None).await.unwrap();
        wait_until("failures were retried", || failing.count() >= 100).await;
        pipeline.shutdown();
    }
    let unapplied = read_unapplied(dir.path()).unwrap();
    assert_eq!(unapplied.len(), 50);
    // The objects of Added/Modified events live in the view, not twice in the log.
    assert!(unapplied.iter().all(|r| r.object.is_null()));
    let rec = Recording::new();
    let pipeline = Pipeline::start(config(dir.path(), 5), rec.clone()).unwrap();
    assert_eq!(pipeline.stats().checkpoints.len(), 5);
    wait_drained(|| pipeline.stats()).await;
    let mut names: Vec<String> = rec.calls().into_iter().map(|c| c.key.name).collect();
    names.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "every key replayed exactly once");
    pipeline.shutdown();
    assert!(read_unapplied(dir.path()).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_durability_acknowledges_after_syncing_large_and_small_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = syncer::pipeline::PipelineConfig {
        durability: syncer::log::Durability::PowerLoss,
        ..config(dir.path(), 2)
    };
    let big = "x".repeat(2 << 20);
    {
        let pipeline = Pipeline::start(cfg.clone(), Recording::new()).unwrap();
        let mut large = pod("t1", "ns", "large", 2);
        large.object["spec"]["padding"] = json!(big);
        pipeline
            .sink()
            .append(vec![pod("t1", "ns", "small", 1), large], None)
            .await
            .unwrap();
        wait_drained(|| pipeline.stats()).await;
        pipeline.shutdown();
    }
    let pipeline = Pipeline::start(cfg, Recording::new()).unwrap();
    let view = pipeline.view();
    let large = view.get("t1", "Pod", "ns", "large").unwrap().unwrap();
    assert_eq!(
        large.object["spec"]["padding"].as_str().map(str::len),
        Some(big.len())
    );
    assert!(view.get("t1", "Pod", "ns", "small").unwrap().is_some());
    drop(view);
    pipeline.shutdown();
}
