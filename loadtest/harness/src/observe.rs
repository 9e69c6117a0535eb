//! Observation from outside the syncer: list+watch of pods on the super cluster and on every tenant, recording
//! when each pod was first seen, first seen `Running`, first seen with each generation label, and deleted.
//!
//! All lags are computed afterwards from these records and the write times the load generator kept, so the
//! hot path here is one hash-map update per event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use parking_lot::Mutex;

use crate::stop::Stop;
use crate::workload::LABEL_GEN;

/// Which cluster an observation comes from: 0 is the super cluster, `i + 1` tenant `i`.
pub type ClusterId = u32;

/// The super cluster's id.
pub const SUPER: ClusterId = 0;

/// What was observed about one pod (by cluster, namespace and name; the harness never reuses a name).
#[derive(Clone, Debug, Default)]
pub struct PodTrack {
    /// First seen (added or listed).
    pub first_seen: Option<Instant>,
    /// First seen with `status.phase == Running`.
    pub running: Option<Instant>,
    /// First time each value of the generation label was seen.
    pub gens: Vec<(u32, Instant)>,
    /// The generation label's value at the last observation.
    pub last_gen: Option<u32>,
    /// Seen deleted.
    pub deleted: Option<Instant>,
    /// The pod's uid at its last observation.
    pub uid: String,
}

impl PodTrack {
    /// When generation `g` was first seen.
    pub fn gen_seen(&self, g: u32) -> Option<Instant> {
        self.gens.iter().find(|(x, _)| *x == g).map(|(_, t)| *t)
    }
}

type Key = (ClusterId, String, String);

/// Everything the watches observed, with counters for live progress.
#[derive(Default)]
pub struct Book {
    pods: Mutex<HashMap<Key, PodTrack>>,
    /// Distinct pods seen per cluster class: `[super, tenants]`.
    pub seen: [AtomicUsize; 2],
    /// Distinct pods seen Running: `[super, tenants]`.
    pub running: [AtomicUsize; 2],
    /// Deletions seen: `[super, tenants]`.
    pub deleted: [AtomicUsize; 2],
    /// Watch restarts (stream ended) and relists (410 Gone or errors), for the report.
    pub restarts: AtomicUsize,
    /// Relists after 410 Gone.
    pub relists: AtomicUsize,
}

/// A super-cluster pod that was seen for the first time (input of the harness status writer).
#[derive(Clone, Debug)]
pub struct FirstSeen {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Book {
    /// A copy of what is known about a pod.
    pub fn get(&self, cluster: ClusterId, ns: &str, name: &str) -> Option<PodTrack> {
        self.pods
            .lock()
            .get(&(cluster, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Runs `f` with the whole map locked (for bulk analysis).
    pub fn with<R>(
        &self,
        f: impl FnOnce(&HashMap<(ClusterId, String, String), PodTrack>) -> R,
    ) -> R {
        f(&self.pods.lock())
    }

    fn class(cluster: ClusterId) -> usize {
        usize::from(cluster != SUPER)
    }

    /// Records an added/modified/listed pod at `at`; returns whether it was seen for the first time.
    fn observe(&self, cluster: ClusterId, pod: &Pod, at: Instant) -> bool {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running");
        let generation = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_GEN))
            .and_then(|g| g.parse::<u32>().ok());
        let class = Self::class(cluster);
        let mut pods = self.pods.lock();
        let t = pods.entry((cluster, ns, name)).or_default();
        let first = t.first_seen.is_none();
        if first {
            t.first_seen = Some(at);
            self.seen[class].fetch_add(1, Ordering::Relaxed);
        }
        if running && t.running.is_none() {
            t.running = Some(at);
            self.running[class].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(g) = generation
            && t.gen_seen(g).is_none()
        {
            t.gens.push((g, at));
        }
        t.last_gen = generation;
        if let Some(uid) = &pod.metadata.uid {
            t.uid.clone_from(uid);
        }
        first
    }

    fn observe_deleted(&self, cluster: ClusterId, pod: &Pod, at: Instant) {
        let key = (
            cluster,
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let mut pods = self.pods.lock();
        let t = pods.entry(key).or_default();
        if t.deleted.is_none() {
            t.deleted = Some(at);
            self.deleted[Self::class(cluster)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lists then watches pods (optionally by label selector) on one cluster until `stop` fires, recording into
/// `book`. Resumes from the last resourceVersion when a stream ends, relists on 410 Gone, backs off on
/// errors. First sightings are sent to `first_seen` when given (the harness status writer).
pub async fn watch_pods(
    api: Api<Pod>,
    cluster: ClusterId,
    selector: Option<String>,
    book: Arc<Book>,
    first_seen: Option<tokio::sync::mpsc::UnboundedSender<FirstSeen>>,
    stop: Stop,
) {
    let mut rv: Option<String> = None;
    let mut backoff = Duration::from_millis(200);
    let notify = |p: &Pod| {
        if let Some(tx) = &first_seen {
            let _ = tx.send(FirstSeen {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
            });
        }
    };
    while !stop.is_stopped() {
        let version = match rv.clone() {
            Some(v) => v,
            None => {
                let mut lp = ListParams::default();
                if let Some(s) = &selector {
                    lp = lp.labels(s);
                }
                let listed = tokio::select! {
                    r = api.list(&lp) => r,
                    _ = stop.stopped() => return,
                };
                match listed {
                    Ok(list) => {
                        let now = Instant::now();
                        for p in &list.items {
                            if book.observe(cluster, p, now) {
                                notify(p);
                            }
                        }
                        backoff = Duration::from_millis(200);
                        list.metadata.resource_version.unwrap_or_default()
                    }
                    Err(e) => {
                        tracing::debug!(cluster, error = %e, "list failed");
                        if !stop.sleep(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        let mut wp = WatchParams::default().timeout(290);
        if let Some(s) = &selector {
            wp = wp.labels(s);
        }
        let stream = tokio::select! {
            r = api.watch(&wp, &version) => r,
            _ = stop.stopped() => return,
        };
        let mut stream = match stream {
            Ok(s) => s.boxed(),
            Err(e) => {
                tracing::debug!(cluster, error = %e, "watch failed");
                rv = None;
                book.relists.fetch_add(1, Ordering::Relaxed);
                if !stop.sleep(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        rv = Some(version);
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                _ = stop.stopped() => return,
            };
            let Some(ev) = next else {
                book.restarts.fetch_add(1, Ordering::Relaxed);
                break;
            };
            let now = Instant::now();
            match ev {
                Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)) => {
                    rv.clone_from(&p.metadata.resource_version);
                    if book.observe(cluster, &p, now) {
                        notify(&p);
                    }
                }
                Ok(WatchEvent::Deleted(p)) => {
                    rv.clone_from(&p.metadata.resource_version);
                    book.observe_deleted(cluster, &p, now);
                }
                Ok(WatchEvent::Bookmark(b)) => rv = Some(b.metadata.resource_version),
                Ok(WatchEvent::Error(e)) => {
                    tracing::debug!(cluster, code = e.code, "watch error event; relisting");
                    if e.code == 410 {
                        rv = None;
                        book.relists.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(cluster, error = %e, "watch stream error");
                    book.restarts.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Polls `done` every 100 ms until it is true, `limit` elapses or `stop` fires; returns whether it became true.
pub async fn wait_until(limit: Duration, stop: &Stop, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline || !stop.sleep(Duration::from_millis(100)).await {
            return done();
        }
    }
}
