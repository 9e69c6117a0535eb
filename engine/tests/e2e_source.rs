//! Sources against a simulated API server, writing to an in-memory log: events become records with the
//! right work keys, resume points let a restart continue without a relist, 410 Gone relists and diffs
//! against the view, and super watches only see the syncer's own objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use parking_lot::Mutex;
use serde_json::json;
use syncer::record::{EventType, Record, SUPER_CLUSTER};
use syncer::source::relist::Known;
use syncer::source::{
    self, ClusterRole, PortError, ServedTenants, SourceConfig, SourceLog, WatchTarget,
};
use testcluster::TestCluster;
use tokio::sync::watch;

/// An in-memory log that behaves like the real one towards sources: records and resume points land
/// together; the view keeps the latest object per key (deleted on `Deleted`).
#[derive(Clone, Default)]
struct FakeLog {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    records: Vec<Record>,
    resume: HashMap<(String, String), String>,
    view: BTreeMap<(String, String, String, String), Known>,
    /// Relists seen (each relist reads the whole view once, for its deletions).
    relists: usize,
    /// Appends still to fail (nothing of a failed append is kept, like the real log).
    fail_next: usize,
    /// Appends that failed.
    failed: usize,
}

impl FakeLog {
    fn records(&self) -> Vec<Record> {
        self.state.lock().records.clone()
    }

    fn fail_next_appends(&self, n: usize) {
        self.state.lock().fail_next = n;
    }

    fn failed_appends(&self) -> usize {
        self.state.lock().failed
    }

    fn relists(&self) -> usize {
        self.state.lock().relists
    }

    fn clear_records(&self) {
        self.state.lock().records.clear();
    }

    fn resume(&self, cluster: &str, kind: &str) -> Option<String> {
        self.state
            .lock()
            .resume
            .get(&(cluster.to_string(), kind.to_string()))
            .cloned()
    }

    fn set_resume(&self, cluster: &str, kind: &str, rv: &str) {
        self.state
            .lock()
            .resume
            .insert((cluster.to_string(), kind.to_string()), rv.to_string());
    }

    fn put_view(&self, cluster: &str, kind: &str, known: Known) {
        let key = (
            cluster.to_string(),
            kind.to_string(),
            known.namespace.clone(),
            known.name.clone(),
        );
        self.state.lock().view.insert(key, known);
    }
}

impl SourceLog for FakeLog {
    async fn append(
        &self,
        cluster: &str,
        kind: &str,
        records: Vec<Record>,
        resume_rv: Option<String>,
    ) -> Result<(), PortError> {
        let mut s = self.state.lock();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            s.failed += 1;
            return Err("injected append failure".into());
        }
        for r in &records {
            let key = (
                r.cluster.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
            );
            if r.event == EventType::Deleted {
                s.view.remove(&key);
            } else {
                s.view.insert(
                    key,
                    Known {
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                        resource_version: r.resource_version.clone(),
                        object: r.object.clone(),
                    },
                );
            }
        }
        s.records.extend(records);
        if let Some(rv) = resume_rv {
            s.resume.insert((cluster.to_string(), kind.to_string()), rv);
        }
        Ok(())
    }

    fn resume_point(&self, cluster: &str, kind: &str) -> Result<Option<String>, PortError> {
        Ok(self.resume(cluster, kind))
    }

    fn known_version(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, PortError> {
        let key = (
            cluster.to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        Ok(self
            .state
            .lock()
            .view
            .get(&key)
            .map(|k| k.resource_version.clone()))
    }

    fn known_all(&self, cluster: &str, kind: &str) -> Result<Vec<Known>, PortError> {
        let mut s = self.state.lock();
        s.relists += 1;
        Ok(s.view
            .iter()
            .filter(|((c, k, _, _), _)| c == cluster && k == kind)
            .map(|(_, v)| v.clone())
            .collect())
    }

    fn known_object(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, PortError> {
        let key = (
            cluster.to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        Ok(self.state.lock().view.get(&key).map(|k| k.object.clone()))
    }
}

fn test_config() -> SourceConfig {
    SourceConfig {
        page_size: 2, // several pages even for a handful of objects
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..SourceConfig::default()
    }
}

struct Running {
    stop: watch::Sender<bool>,
    sources: source::Sources,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.sources.join().await;
    }
}

fn start(targets: Vec<WatchTarget>, log: &FakeLog) -> Running {
    let (stop, rx) = watch::channel(false);
    let sources = source::spawn(
        targets,
        &source::synced_kinds(),
        log.clone(),
        test_config(),
        rx,
    );
    Running { stop, sources }
}

/// Polls `cond` every 50 ms, at most `secs` seconds.
async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..secs * 20 {
        if cond() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

async fn create_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
) -> Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?)
}

fn count(records: &[Record], kind: &str, name: &str, event: EventType) -> usize {
    records
        .iter()
        .filter(|r| r.kind == kind && r.name == name && r.event == event)
        .count()
}

const KEY: &str = "default-abc123-vc1";

fn tenant_target(client: kube::Client) -> WatchTarget {
    WatchTarget {
        role: ClusterRole::Tenant {
            cluster_key: KEY.into(),
        },
        client,
        vc_label: Some("vc1".into()),
    }
}

#[tokio::test]
async fn tenant_events_become_records_and_a_restart_resumes_without_relist() -> Result<()> {
    let tenant = TestCluster::start().await?;
    let client = tenant.client().await?;
    create_namespace(&client, "team").await?;
    for i in 0..3 {
        create_pod(&client, "team", &format!("p{i}"), json!({}), json!({})).await?;
    }
    let log = FakeLog::default();
    let running = start(vec![tenant_target(client.clone())], &log);
    wait_for("initial list of 3 pods", 20, || {
        let r = log.records();
        (0..3).all(|i| count(&r, "Pod", &format!("p{i}"), EventType::Added) == 1)
    })
    .await?;
    let records = log.records();
    let ns = records
        .iter()
        .find(|r| r.kind == "Namespace" && r.name == "team")
        .context("namespace record")?;
    assert_eq!(
        (ns.work.namespace.as_str(), ns.work.name.as_str()),
        ("team", "team")
    );
    let pod = records
        .iter()
        .find(|r| r.kind == "Pod" && r.name == "p0")
        .context("pod record")?;
    assert_eq!(pod.cluster, KEY);
    assert_eq!(pod.work.cluster, KEY);
    assert_eq!(pod.work.namespace, "team");
    assert!(!pod.uid.is_empty() && !pod.resource_version.is_empty());

    // A live event: delete p0.
    Api::<Pod>::namespaced(client.clone(), "team")
        .delete("p0", &DeleteParams::default().grace_period(0))
        .await?;
    wait_for("Deleted record of p0", 20, || {
        count(&log.records(), "Pod", "p0", EventType::Deleted) == 1
    })
    .await?;
    let delete_rv: u64 = log
        .records()
        .iter()
        .rev()
        .find(|r| r.name == "p0" && r.event == EventType::Deleted)
        .context("delete record")?
        .resource_version
        .parse()?;
    let resume: u64 = log.resume(KEY, "Pod").context("resume point")?.parse()?;
    assert!(
        resume >= delete_rv,
        "resume point {resume} behind the last event {delete_rv}"
    );
    running.stop().await;

    // While stopped: one more pod. A restart resumes from the resume point: only the new pod appears.
    log.clear_records();
    create_pod(&client, "team", "p9", json!({}), json!({})).await?;
    let relists_before = log.relists();
    let running = start(vec![tenant_target(client.clone())], &log);
    wait_for("p9 after restart", 20, || {
        count(&log.records(), "Pod", "p9", EventType::Added) == 1
    })
    .await?;
    // Give a relist (if there wrongly were one) time to show up, then check there was none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = log.records();
    assert_eq!(
        count(&after, "Pod", "p1", EventType::Added),
        0,
        "restart relisted"
    );
    assert_eq!(
        count(&after, "Pod", "p1", EventType::Modified),
        0,
        "restart relisted"
    );
    assert_eq!(log.relists(), relists_before, "restart relisted");
    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn gone_relists_and_diffs_against_the_view() -> Result<()> {
    let tenant = TestCluster::start().await?;
    let sim = tenant
        .simulator()
        .context("this test needs the simulator backend (forced compaction)")?;
    let client = tenant.client().await?;
    create_namespace(&client, "team").await?;
    let kept = create_pod(&client, "team", "kept", json!({}), json!({})).await?;
    let kept_rv = kept
        .metadata
        .resource_version
        .clone()
        .context("rv of created pod")?;
    create_pod(&client, "team", "changed", json!({}), json!({})).await?;

    // The log believes: "kept" at its current version, "changed" at an older one, and a "ghost" that no
    // longer exists; its resume point is too old for the server.
    let log = FakeLog::default();
    let known = |name: &str, rv: &str| Known {
        namespace: "team".into(),
        name: name.into(),
        resource_version: rv.into(),
        object: json!({"metadata": {"name": name, "namespace": "team", "resourceVersion": rv}}),
    };
    log.put_view(KEY, "Pod", known("kept", &kept_rv));
    log.put_view(KEY, "Pod", known("changed", "1"));
    log.put_view(KEY, "Pod", known("ghost", "1"));
    log.set_resume(KEY, "Pod", "1");
    log.set_resume(KEY, "Namespace", "1");
    sim.force_compaction();

    let running = start(vec![tenant_target(client.clone())], &log);
    wait_for("relist diff", 20, || {
        count(&log.records(), "Pod", "ghost", EventType::Deleted) == 1
    })
    .await?;
    let records = log.records();
    assert_eq!(count(&records, "Pod", "changed", EventType::Modified), 1);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == "Pod" && r.name == "kept")
            .count(),
        0,
        "an object the view has at the listed version must not be re-recorded"
    );
    let resume: u64 = log.resume(KEY, "Pod").context("resume point")?.parse()?;
    assert!(resume > 1, "relist must persist the list's resourceVersion");
    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn super_watch_sees_only_labelled_objects_of_served_tenants() -> Result<()> {
    let sup = TestCluster::start().await?;
    let client = sup.client().await?;
    create_namespace(&client, "k1-team").await?;
    let controlled = json!({"tenancy.x-k8s.io/controlled": "true"});
    let marks = |cluster: &str| {
        json!({"tenancy.x-k8s.io/cluster": cluster, "tenancy.x-k8s.io/namespace": "team",
               "tenancy.x-k8s.io/uid": "tenant-uid"})
    };
    create_pod(&client, "k1-team", "unrelated", json!({}), marks("k1")).await?;
    create_pod(
        &client,
        "k1-team",
        "foreign",
        controlled.clone(),
        marks("k2"),
    )
    .await?;
    create_pod(&client, "k1-team", "ours", controlled.clone(), marks("k1")).await?;

    let log = FakeLog::default();
    let target = WatchTarget {
        role: ClusterRole::Super {
            tenants: ServedTenants::new(["k1".to_string()]),
        },
        client: client.clone(),
        vc_label: None,
    };
    let running = start(vec![target], &log);
    wait_for("the syncer's own super pod", 20, || {
        count(&log.records(), "Pod", "ours", EventType::Added) == 1
    })
    .await?;
    // A live event for a labelled pod of a served tenant, after the list.
    create_pod(&client, "k1-team", "ours-too", controlled, marks("k1")).await?;
    wait_for("live super event", 20, || {
        count(&log.records(), "Pod", "ours-too", EventType::Added) == 1
    })
    .await?;
    let records = log.records();
    let ours = records
        .iter()
        .find(|r| r.name == "ours")
        .context("record of ours")?;
    assert_eq!(ours.cluster, SUPER_CLUSTER);
    assert_eq!(ours.namespace, "k1-team");
    assert_eq!(
        (
            ours.work.cluster.as_str(),
            ours.work.namespace.as_str(),
            ours.work.name.as_str()
        ),
        ("k1", "team", "ours")
    );
    assert!(
        records
            .iter()
            .all(|r| r.name != "unrelated" && r.name != "foreign")
    );
    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn cut_watches_resume_from_the_last_version_without_loss_or_duplicates() -> Result<()> {
    let tenant = TestCluster::start().await?;
    let sim = tenant
        .simulator()
        .context("this test needs the simulator backend (watch cuts)")?;
    let client = tenant.client().await?;
    create_namespace(&client, "team").await?;
    // Every watch is closed by the server after 3 events (the limit is fixed when a watch opens): the
    // source must re-watch from the last resourceVersion it appended, each time.
    sim.faults().set(apisim::faults::FaultConfig {
        watch_cut_after_events: Some(3),
        ..Default::default()
    })?;
    let log = FakeLog::default();
    let running = start(vec![tenant_target(client.clone())], &log);
    wait_for("initial list", 20, || {
        log.resume(KEY, "Pod").is_some() && log.resume(KEY, "Namespace").is_some()
    })
    .await?;
    for i in 0..20 {
        create_pod(&client, "team", &format!("c{i}"), json!({}), json!({})).await?;
    }
    wait_for("20 pods through cut watches", 30, || {
        let r = log.records();
        (0..20).all(|i| count(&r, "Pod", &format!("c{i}"), EventType::Added) >= 1)
    })
    .await?;
    let records = log.records();
    for i in 0..20 {
        assert_eq!(
            count(&records, "Pod", &format!("c{i}"), EventType::Added),
            1,
            "c{i} recorded twice: a re-watch did not resume from the last version"
        );
    }
    // The next re-watch is answered 410 Gone: the source relists, and the diff against the view records
    // only what changed (the new pod), not the 20 it already has.
    let relists_before = log.relists();
    sim.faults().force_gone_next_watch();
    for i in 20..24 {
        create_pod(&client, "team", &format!("c{i}"), json!({}), json!({})).await?;
    }
    wait_for("pods after the forced 410", 30, || {
        let r = log.records();
        (20..24).all(|i| count(&r, "Pod", &format!("c{i}"), EventType::Added) >= 1)
    })
    .await?;
    let records = log.records();
    for i in 0..24 {
        let n = count(&records, "Pod", &format!("c{i}"), EventType::Added)
            + count(&records, "Pod", &format!("c{i}"), EventType::Modified);
        assert_eq!(n, 1, "c{i} recorded {n} times across the relist");
    }
    assert!(
        log.relists() > relists_before,
        "the forced 410 did not cause a relist"
    );
    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn failed_appends_lose_nothing_and_duplicate_nothing() -> Result<()> {
    let tenant = TestCluster::start().await?;
    let client = tenant.client().await?;
    create_namespace(&client, "team").await?;
    let log = FakeLog::default();
    let running = start(vec![tenant_target(client.clone())], &log);
    wait_for("initial list", 20, || log.resume(KEY, "Pod").is_some()).await?;
    log.fail_next_appends(2);
    for i in 0..5 {
        create_pod(&client, "team", &format!("f{i}"), json!({}), json!({})).await?;
    }
    wait_for("5 pods after failed appends", 30, || {
        let r = log.records();
        (0..5).all(|i| count(&r, "Pod", &format!("f{i}"), EventType::Added) >= 1)
    })
    .await?;
    assert_eq!(
        log.failed_appends(),
        2,
        "the injected failures were not hit"
    );
    let records = log.records();
    for i in 0..5 {
        assert_eq!(
            count(&records, "Pod", &format!("f{i}"), EventType::Added),
            1,
            "f{i}"
        );
    }
    running.stop().await;
    Ok(())
}
