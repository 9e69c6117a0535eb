//! Crash safety: a child process appends and reconciles until it is killed with SIGKILL at a seeded point;
//! a new pipeline on the same data directory must hold every acknowledged record (in the log if it was not
//! yet applied, in the view in any case), replay every unapplied key exactly once, and not re-deliver keys
//! whose entries were applied before the crash.
//!
//! The child is this test binary re-executed with `PIPELINE_CRASH_CHILD_DIR` set, running only
//! `crash_child`; without that variable `crash_child` does nothing.

mod pipeline_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pipeline_support::{Recording, config, pod, wait_drained};
use syncer::log::{ResumePoint, View, read_unapplied};
use syncer::pipeline::Pipeline;
use syncer::record::{Record, SUPER_CLUSTER, WorkKey};
use syncer::shard::{ReconcileError, Reconciler};

const CHILD_DIR: &str = "PIPELINE_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "PIPELINE_CRASH_SEED";
const JOURNAL: &str = "journal";

/// splitmix64: a small seeded generator, so kill points and batches are reproducible.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Batch `i` of the child with `seed`: 1–20 records over 600 tenant pods (so keys repeat and coalesce),
/// a quarter of them observed in the super cluster; resourceVersions grow with (i, j).
fn batch(seed: u64, i: u64) -> Vec<Record> {
    let mut state = mix(seed ^ mix(i));
    let n = 1 + state % 20;
    (0..n)
        .map(|j| {
            state = mix(state);
            let k = state % 600;
            let (cluster, ns, name) = (
                format!("t{}", k % 3),
                format!("ns{}", (k / 3) % 5),
                format!("p{}", k / 15),
            );
            let rv = i * 100 + j + 1;
            let mut record = pod(&cluster, &ns, &name, rv);
            if state.is_multiple_of(4) {
                record.cluster = SUPER_CLUSTER.to_owned();
                record.namespace = format!("{cluster}-{ns}");
            }
            record
        })
        .collect()
}

fn resume(i: u64) -> ResumePoint {
    ResumePoint {
        cluster: "t0".into(),
        kind: "Pod".into(),
        resource_version: (i * 100 + 99).to_string(),
    }
}

fn key_text(key: &WorkKey) -> String {
    format!("{}/{}/{}", key.cluster, key.namespace, key.name)
}

/// The child's reconciler: journals each success, sleeps a little, fails one call in ten.
struct Journaling {
    journal: Mutex<std::fs::File>,
    state: Mutex<u64>,
}

impl Reconciler for Journaling {
    fn reconcile(&self, key: &WorkKey, _view: &View) -> Result<(), ReconcileError> {
        let roll = {
            let mut state = self.state.lock();
            *state = mix(*state);
            *state
        };
        std::thread::sleep(Duration::from_micros(roll % 400));
        if roll.is_multiple_of(10) {
            return Err(ReconcileError::new("injected", "injected failure"));
        }
        let line = format!("rec {}\n", key_text(key));
        self.journal
            .lock()
            .write_all(line.as_bytes())
            .map_err(|e| ReconcileError::new("journal", e.to_string()))
    }
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let dir = Path::new(&dir).to_owned();
    let open_journal = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))
            .unwrap()
    };
    let reconciler = Arc::new(Journaling {
        journal: Mutex::new(open_journal()),
        state: Mutex::new(seed),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pipeline = Pipeline::start(config(&dir, 3), reconciler).unwrap();
    let sink = pipeline.sink();
    let mut journal = open_journal();
    runtime.block_on(async {
        // Bounded: the parent kills the child long before this ends.
        for i in 0..100_000u64 {
            sink.append(batch(seed, i), Some(resume(i))).await.unwrap();
            journal.write_all(format!("ack {i}\n").as_bytes()).unwrap();
        }
    });
}

/// Runs one child until it has acknowledged `kill_after` batches, then kills it with SIGKILL.
fn run_and_kill(dir: &Path, seed: u64, kill_after: usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..3000 {
        let acks = std::fs::read_to_string(dir.join(JOURNAL))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("ack "))
            .count();
        if acks >= kill_after {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_and_nothing_applied_is_redelivered_after_kill_9() {
    for seed in [11u64, 23, 37, 41] {
        let dir = tempfile::tempdir().unwrap();
        let kill_after = 10 + (mix(seed) % 150) as usize;
        run_and_kill(dir.path(), seed, kill_after);

        let journal = std::fs::read_to_string(dir.path().join(JOURNAL)).unwrap();
        let acked: u64 = journal.lines().filter(|l| l.starts_with("ack ")).count() as u64;
        assert!(acked >= kill_after as u64, "seed {seed}: {acked} acks");
        let reconciled: BTreeSet<&str> = journal
            .lines()
            .filter_map(|l| l.strip_prefix("rec "))
            .collect();

        // What the crashed process left in its log, before anything touches it.
        let unapplied = read_unapplied(dir.path()).unwrap();
        let logged: BTreeSet<(String, String)> = unapplied
            .iter()
            .map(|r| (key_text(&r.work), r.resource_version.clone()))
            .collect();

        // Every acknowledged record is still in the log, or a reconcile of its key succeeded.
        let mut latest: HashMap<(String, String, String), u64> = HashMap::new();
        for i in 0..acked {
            for record in batch(seed, i) {
                let id = key_text(&record.work);
                assert!(
                    logged.contains(&(id.clone(), record.resource_version.clone()))
                        || reconciled.contains(id.as_str()),
                    "seed {seed}: acknowledged record {id}@{} lost",
                    record.resource_version
                );
                let rv: u64 = record.resource_version.parse().unwrap();
                let slot = latest
                    .entry((record.cluster, record.namespace, record.name))
                    .or_default();
                *slot = (*slot).max(rv);
            }
        }

        let rec = Recording::new();
        let pipeline = Pipeline::start(config(dir.path(), 3), rec.clone()).unwrap();
        // The view holds every acknowledged state (or a newer one that was committed but not yet acked).
        let view = pipeline.view();
        for ((cluster, ns, name), rv) in &latest {
            let stored = view.get(cluster, "Pod", ns, name).unwrap();
            let stored: u64 = stored
                .unwrap_or_else(|| {
                    panic!("seed {seed}: {cluster}/{ns}/{name} missing from the view")
                })
                .resource_version
                .parse()
                .unwrap();
            assert!(
                stored >= *rv,
                "seed {seed}: {cluster}/{ns}/{name} at {stored} < acked {rv}"
            );
        }
        let resumed: u64 = pipeline
            .resume_point("t0", "Pod")
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(resumed >= resume(acked - 1).resource_version.parse::<u64>().unwrap());
        drop(view); // a View keeps the database open

        // Replay hands every unapplied key to the reconciler exactly once, and nothing else.
        wait_drained(|| pipeline.stats()).await;
        let mut replayed: BTreeMap<String, usize> = BTreeMap::new();
        for call in rec.calls() {
            *replayed.entry(key_text(&call.key)).or_default() += 1;
        }
        let expected: BTreeMap<String, usize> =
            unapplied.iter().map(|r| (key_text(&r.work), 1)).collect();
        assert_eq!(replayed, expected, "seed {seed}");
        pipeline.shutdown();
        assert!(
            read_unapplied(dir.path()).unwrap().is_empty(),
            "seed {seed}"
        );
        eprintln!(
            "seed {seed}: killed after {acked} acks; {} entries unapplied, {} keys replayed",
            unapplied.len(),
            expected.len()
        );
    }
}
