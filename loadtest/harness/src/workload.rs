//! What the harness writes: seeded names, pod and namespace objects, "lanes" (where a pod is written and
//! where its super copy is expected) and bounded-concurrency writers that keep the time of every write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::observe::ClusterId;
use crate::stop::Stop;

/// Label naming the run (every object the harness writes carries it; super copies keep it).
pub const LABEL_RUN: &str = "loadtest.x-k8s.io/run";
/// Label counting the updates of a pod (0 at create).
pub const LABEL_GEN: &str = "loadtest.x-k8s.io/gen";
/// Scheduler name of direct (baseline) pods: no scheduler or simulated kubelet acts on them, so the
/// harness writes their status itself.
pub const DIRECT_SCHEDULER: &str = "loadtest-direct";

/// The seeded random source of a run: names, ordering and jitter derive from `--seed` only.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A short lowercase random token (for pod names).
pub fn token(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Where pods are written and where they are observed on the super cluster.
#[derive(Clone)]
pub struct Lane {
    /// Cluster written to (`SUPER` for the direct path, tenant `i` is `i + 1`).
    pub cluster: ClusterId,
    /// Client for that cluster.
    pub client: kube::Client,
    /// Namespace written to.
    pub namespace: String,
    /// Namespace in which the pod is expected on the super cluster (the same for the direct path).
    pub super_namespace: String,
}

/// A pod the harness wrote (or tried to).
#[derive(Clone, Debug)]
pub struct Written {
    /// Index of its lane.
    pub lane: usize,
    /// Pod name.
    pub name: String,
    /// When the write was sent.
    pub sent: Instant,
    /// When the API server answered success (`None`: the write failed).
    pub done: Option<Instant>,
}

/// A namespace object labelled with the run.
pub fn namespace(name: &str, run: &str) -> Result<Namespace> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {LABEL_RUN: run}}
    }))?)
}

/// A pause pod labelled with the run and generation 0; `direct` pods use [`DIRECT_SCHEDULER`].
pub fn pod(name: &str, run: &str, direct: bool) -> Result<Pod> {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}],
        "terminationGracePeriodSeconds": 0
    });
    if direct {
        spec["schedulerName"] = json!(DIRECT_SCHEDULER);
    }
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "loadtest", LABEL_RUN: run, LABEL_GEN: "0"}},
        "spec": spec
    }))?)
}

/// Creates the namespaces `names` on `client`; an existing namespace is accepted.
pub async fn ensure_namespaces(client: &kube::Client, names: &[String], run: &str) -> Result<()> {
    let api = Api::<Namespace>::all(client.clone());
    for n in names {
        match api
            .create(&PostParams::default(), &namespace(n, run)?)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("create namespace {n}")),
        }
    }
    Ok(())
}

/// Creates `jobs` (lane index, pod name) with at most `concurrency` requests in flight and at most `rate`
/// creates per second (0 = unlimited), stopping early on `stop`. Failed creates are kept with `done: None`
/// and counted in `progress` either way.
#[allow(clippy::too_many_arguments)]
pub async fn create_pods(
    lanes: Arc<Vec<Lane>>,
    jobs: Vec<(usize, String)>,
    run: String,
    direct: bool,
    concurrency: usize,
    rate: f64,
    progress: Option<indicatif::ProgressBar>,
    stop: Stop,
) -> Vec<Written> {
    let run = run.as_str();
    let lanes = lanes.as_slice();
    let start = Instant::now();
    let out: Arc<Mutex<Vec<Written>>> = Arc::new(Mutex::new(Vec::with_capacity(jobs.len())));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    futures::stream::iter(jobs.into_iter().enumerate())
        .take_while(|_| futures::future::ready(!stop.is_stopped()))
        .map(|(i, (lane, name))| {
            let l = &lanes[lane];
            let api = Api::<Pod>::namespaced(l.client.clone(), &l.namespace);
            let out = out.clone();
            let progress = progress.clone();
            let errors = errors.clone();
            async move {
                if rate > 0.0 {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let done = match pod(&name, run, direct) {
                    Ok(obj) => match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => Some(Instant::now()),
                        Err(e) => {
                            if errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                                tracing::warn!(pod = %name, error = %e, "create failed");
                            }
                            None
                        }
                    },
                    Err(_) => None,
                };
                out.lock().push(Written {
                    lane,
                    name,
                    sent,
                    done,
                });
                if let Some(p) = &progress {
                    p.inc(1);
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<()>()
        .await;
    let mut v = std::mem::take(&mut *out.lock());
    v.sort_by_key(|w| w.sent);
    v
}

/// `per_lane` pods in each of `lanes` lanes: names `p<k>-<token>` and a shuffled order, both from `seed`
/// (the same seed gives the same names in the same order).
pub fn plan(lanes: usize, per_lane: usize, seed: u64, stream: u64) -> Vec<(usize, String)> {
    use rand::seq::SliceRandom;
    let mut r = rng(seed, stream);
    let mut jobs = Vec::with_capacity(lanes * per_lane);
    for lane in 0..lanes {
        for k in 0..per_lane {
            jobs.push((lane, format!("p{k}-{}", token(&mut r, 5))));
        }
    }
    jobs.shuffle(&mut r);
    jobs
}

/// Marks a pod Running through its status subresource (what a kubelet would write). Returns when the write
/// returned.
pub async fn write_running_status(client: &kube::Client, ns: &str, name: &str) -> Result<Instant> {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({"status": {
        "phase": "Running",
        "startTime": now,
        "podIP": "10.250.0.1",
        "hostIP": "10.250.255.1",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
        ],
        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
            "image": "registry.k8s.io/pause:3.10", "imageID": "", "started": true,
            "state": {"running": {"startedAt": now}}}]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("status of {ns}/{name}"))?;
    Ok(Instant::now())
}

/// The harness's status writer: marks every pod named on `rx` Running, `concurrency` at a time, and keeps
/// when each successful write was sent (namespace, name → time). Ends when `rx` closes or `stop` fires.
pub async fn status_writer(
    client: kube::Client,
    rx: tokio::sync::mpsc::UnboundedReceiver<crate::observe::FirstSeen>,
    filter: impl Fn(&crate::observe::FirstSeen) -> bool,
    written: Arc<Mutex<std::collections::HashMap<(String, String), Instant>>>,
    concurrency: usize,
    stop: Stop,
) {
    let stream = tokio_stream_from(rx);
    stream
        .take_until(stop.clone().stopped_owned())
        .filter(move |fs| futures::future::ready(filter(fs)))
        .map(|fs| {
            let client = client.clone();
            let written = written.clone();
            async move {
                for _ in 0..5 {
                    let sent = Instant::now();
                    match write_running_status(&client, &fs.namespace, &fs.name).await {
                        Ok(_) => {
                            written.lock().insert((fs.namespace, fs.name), sent);
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "status write failed; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<()>()
        .await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reproducible_from_the_seed() {
        let a: Vec<String> = (0..5).map(|_| token(&mut rng(7, 1), 5)).collect();
        let mut r1 = rng(7, 1);
        let mut r2 = rng(7, 1);
        let mut r3 = rng(8, 1);
        let x: Vec<String> = (0..5).map(|_| token(&mut r1, 5)).collect();
        let y: Vec<String> = (0..5).map(|_| token(&mut r2, 5)).collect();
        let z: Vec<String> = (0..5).map(|_| token(&mut r3, 5)).collect();
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_eq!(a[0].len(), 5);
        assert!(x.iter().all(|t| {
            t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }));
    }

    #[test]
    fn plans_are_reproducible_and_complete() {
        let a = plan(3, 4, 11, 1);
        assert_eq!(a, plan(3, 4, 11, 1));
        assert_ne!(a, plan(3, 4, 12, 1));
        assert_eq!(a.len(), 12);
        let names: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(names.len(), 12);
        for lane in 0..3 {
            assert_eq!(a.iter().filter(|(l, _)| *l == lane).count(), 4);
        }
    }

    #[test]
    fn direct_pods_avoid_the_scheduler() -> Result<()> {
        let p = pod("p", "r1", true)?;
        let spec = p.spec.context("spec")?;
        assert_eq!(spec.scheduler_name.as_deref(), Some(DIRECT_SCHEDULER));
        let q = pod("q", "r1", false)?;
        assert_eq!(q.spec.context("spec")?.scheduler_name, None);
        let labels = q.metadata.labels.context("labels")?;
        assert_eq!(labels.get(LABEL_RUN).map(String::as_str), Some("r1"));
        assert_eq!(labels.get(LABEL_GEN).map(String::as_str), Some("0"));
        Ok(())
    }
}
