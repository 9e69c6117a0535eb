//! The pipeline's metrics, observed through a recording `metrics` recorder (one per test binary, so this
//! file holds a single test).

mod pipeline_support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use parking_lot::Mutex;
use pipeline_support::{Recording, config, key, pod, record, wait_drained, wait_until};
use syncer::pipeline::Pipeline;
use syncer::record::{EventType, SUPER_CLUSTER};
use syncer::shard::ReconcileError;

/// Every value recorded, by rendered key `name{label=value,...}` (labels sorted).
#[derive(Default)]
struct Store {
    counters: Mutex<BTreeMap<String, u64>>,
    gauges: Mutex<BTreeMap<String, f64>>,
    histograms: Mutex<BTreeMap<String, Vec<f64>>>,
}

struct Handle {
    store: &'static Store,
    key: String,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .store
            .counters
            .lock()
            .entry(self.key.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.store.counters.lock().insert(self.key.clone(), value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        *self
            .store
            .gauges
            .lock()
            .entry(self.key.clone())
            .or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self
            .store
            .gauges
            .lock()
            .entry(self.key.clone())
            .or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.store.gauges.lock().insert(self.key.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.store
            .histograms
            .lock()
            .entry(self.key.clone())
            .or_default()
            .push(value);
    }
}

struct Capture(&'static Store);

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle {
            store: self.0,
            key: render(key),
        }))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle {
            store: self.0,
            key: render(key),
        }))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle {
            store: self.0,
            key: render(key),
        }))
    }
}

fn store() -> &'static Store {
    static STORE: OnceLock<&'static Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let store: &'static Store = Box::leak(Box::default());
        metrics::set_global_recorder(Capture(store)).expect("only recorder of this binary");
        store
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_reports_its_metrics() {
    let store = store();
    let dir = tempfile::tempdir().unwrap();
    let flaky = key("t1", "ns", "flaky");
    let rec = Recording::with({
        let flaky = flaky.clone();
        move |k, before| {
            if *k == flaky && before == 0 {
                Err(ReconcileError::new("conflict", "first attempt"))
            } else {
                Ok(())
            }
        }
    });
    let pipeline = Pipeline::start(config(dir.path(), 1), rec.clone()).unwrap();
    let sink = pipeline.sink();
    sink.append(vec![pod("t1", "ns", "flaky", 1)], None)
        .await
        .unwrap();
    wait_drained(|| pipeline.stats()).await;
    // Two events of one key in one batch (coalesced), one of them observed in the super cluster.
    let mut up = record("t1", "ns", "p", 3, EventType::Modified);
    up.cluster = SUPER_CLUSTER.to_owned();
    up.namespace = "t1-ns".to_owned();
    sink.append(vec![pod("t1", "ns", "p", 2), up], None)
        .await
        .unwrap();
    wait_drained(|| pipeline.stats()).await;
    wait_until("the idle shard published its gauges", || {
        store
            .gauges
            .lock()
            .get("vc_syncer_shard_pending_keys{shard=0}")
            == Some(&0.0)
    })
    .await;

    let counters = store.counters.lock().clone();
    assert_eq!(counters["vc_syncer_log_appended_records_total{}"], 3);
    assert!(counters["vc_syncer_log_appended_bytes_total{}"] > 0);
    // The two events of `p` are coalesced when the second reaches the shard before `p` is picked; when the
    // shard was quicker, `p` is reconciled twice instead. Either way every event is accounted for exactly once:
    // the flaky key's success, plus `p`'s two events as reconciles or coalesced.
    let ok = counters["vc_syncer_reconcile_total{code=ok}"];
    let coalesced = counters
        .get("vc_syncer_coalesced_total{}")
        .copied()
        .unwrap_or(0);
    assert!(coalesced <= 1, "coalesced {coalesced}");
    assert_eq!(ok + coalesced, 3, "ok {ok}, coalesced {coalesced}");
    assert_eq!(counters["vc_syncer_reconcile_total{code=conflict}"], 1);
    assert_eq!(counters["vc_syncer_retries_total{}"], 1);
    let gauges = store.gauges.lock().clone();
    assert_eq!(gauges["vc_syncer_log_backlog_records{}"], 0.0);
    assert_eq!(gauges["vc_syncer_log_backlog_bytes{}"], 0.0);
    assert_eq!(gauges["vc_syncer_shard_queue_depth{shard=0}"], 0.0);
    assert_eq!(gauges["vc_syncer_checkpoint_age_seconds{shard=0}"], 0.0);
    let histograms = store.histograms.lock().clone();
    assert_eq!(
        histograms["vc_syncer_log_group_commit_records{}"]
            .iter()
            .sum::<f64>(),
        3.0
    );
    assert_eq!(histograms["vc_syncer_log_flush_seconds{}"].len(), 2);
    assert_eq!(
        histograms["vc_syncer_sync_lag_seconds{direction=down,kind=Pod}"].len(),
        2,
        "one lag per successful reconcile with tenant events"
    );
    assert_eq!(
        histograms["vc_syncer_sync_lag_seconds{direction=up,kind=Pod}"].len(),
        1
    );
    pipeline.shutdown();
}
