//! Helpers shared by the pipeline tests: records, a recording reconciler, bounded waiting.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde_json::json;
use syncer::log::View;
use syncer::pipeline::{PipelineConfig, PipelineStats};
use syncer::record::{EventType, Record, WorkKey};
use syncer::shard::{ReconcileError, Reconciler};

/// A Pod record observed in `cluster` for the tenant object (cluster, ns, name).
pub fn pod(cluster: &str, ns: &str, name: &str, rv: u64) -> Record {
    record(cluster, ns, name, rv, EventType::Modified)
}

/// A record of `event` for a Pod whose work key is the object itself.
pub fn record(cluster: &str, ns: &str, name: &str, rv: u64, event: EventType) -> Record {
    Record {
        cluster: cluster.to_owned(),
        kind: "Pod".to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{name}"),
        resource_version: rv.to_string(),
        event,
        object: json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string(), "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }),
        seen_at_micros: 1,
        work: key(cluster, ns, name),
    }
}

/// The work key of a tenant Pod.
pub fn key(cluster: &str, ns: &str, name: &str) -> WorkKey {
    WorkKey {
        cluster: cluster.to_owned(),
        kind: "Pod".to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

/// Small, fast settings for tests.
pub fn config(dir: &std::path::Path, shards: usize) -> PipelineConfig {
    PipelineConfig {
        shards,
        cache_capacity_bytes: 8 << 20,
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(20),
        compaction_interval: Duration::from_millis(10),
        ..PipelineConfig::new(dir)
    }
}

/// One call of the reconciler: the key and the resourceVersion the view held for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub key: WorkKey,
    pub seen_rv: Option<String>,
}

type Behaviour = dyn Fn(&WorkKey, usize) -> Result<(), ReconcileError> + Send + Sync;

/// Records every call; optionally held at a gate, optionally failing per a behaviour function
/// (given the key and how many times it was called before).
pub struct Recording {
    calls: Mutex<Vec<Call>>,
    per_key: Mutex<std::collections::HashMap<WorkKey, usize>>,
    gate: Mutex<bool>,
    gate_cv: Condvar,
    behaviour: Option<Box<Behaviour>>,
}

impl Recording {
    /// Always succeeds, gate open.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            per_key: Mutex::new(Default::default()),
            gate: Mutex::new(true),
            gate_cv: Condvar::new(),
            behaviour: None,
        })
    }

    /// Gate closed: every reconcile waits until [`Recording::open`].
    pub fn gated() -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            per_key: Mutex::new(Default::default()),
            gate: Mutex::new(false),
            gate_cv: Condvar::new(),
            behaviour: None,
        })
    }

    /// Succeeds or fails as `behaviour` says.
    pub fn with(
        behaviour: impl Fn(&WorkKey, usize) -> Result<(), ReconcileError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            per_key: Mutex::new(Default::default()),
            gate: Mutex::new(true),
            gate_cv: Condvar::new(),
            behaviour: Some(Box::new(behaviour)),
        })
    }

    /// Lets every waiting and future reconcile through.
    pub fn open(&self) {
        *self.gate.lock() = true;
        self.gate_cv.notify_all();
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    /// Number of calls so far.
    pub fn count(&self) -> usize {
        self.calls.lock().len()
    }
}

impl Reconciler for Recording {
    fn reconcile(&self, key: &WorkKey, view: &View) -> Result<(), ReconcileError> {
        let seen_rv = view
            .get(&key.cluster, &key.kind, &key.namespace, &key.name)
            .map_err(|e| ReconcileError::new("view", e.to_string()))?
            .map(|o| o.resource_version);
        let before = {
            let mut per_key = self.per_key.lock();
            let count = per_key.entry(key.clone()).or_default();
            *count += 1;
            *count - 1
        };
        self.calls.lock().push(Call {
            key: key.clone(),
            seen_rv,
        });
        {
            let mut open = self.gate.lock();
            while !*open {
                self.gate_cv.wait(&mut open);
            }
        }
        match &self.behaviour {
            Some(behaviour) => behaviour(key, before),
            None => Ok(()),
        }
    }
}

/// Polls `condition` every 5 ms, at most 3,000 times (15 s); panics with `what` if it never holds.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until every appended entry was applied and compacted.
pub async fn wait_drained(stats: impl Fn() -> PipelineStats) {
    wait_until("the backlog is empty", || stats().backlog_records == 0).await;
}
