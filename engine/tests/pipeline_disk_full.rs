//! A full disk: appends fail with an error (no panic) and nothing acknowledged is lost.
//!
//! Needs a small file system, so it is ignored by default. Run it with, for example:
//! `mount -t tmpfs -o size=3m tmpfs /tmp/smallfs` and
//! `PIPELINE_SMALL_FS=/tmp/smallfs cargo test -p syncer --test pipeline_disk_full -- --ignored`.

mod pipeline_support;

use pipeline_support::{Recording, config, pod};
use syncer::log::read_unapplied;
use syncer::pipeline::Pipeline;
use syncer::shard::ReconcileError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a small file system in PIPELINE_SMALL_FS"]
async fn a_full_disk_fails_appends_and_keeps_what_was_acknowledged() {
    let small = std::path::PathBuf::from(std::env::var("PIPELINE_SMALL_FS").unwrap());
    let dir = small.join(format!("case-{}", std::process::id()));
    // Nothing is applied, so nothing is compacted: the log only grows.
    let failing = Recording::with(|_, _| Err(ReconcileError::new("down", "unavailable")));
    let pipeline = Pipeline::start(config(&dir, 2), failing).unwrap();
    let sink = pipeline.sink();
    let padding = "x".repeat(1000);
    let mut acked = 0u64;
    let mut failure = None;
    for i in 0..10_000u64 {
        let records = (0..20)
            .map(|j| {
                let mut r = pod("t1", "ns", &format!("p{}", i * 20 + j), i * 20 + j + 1);
                r.object["spec"]["padding"] = serde_json::json!(padding);
                r
            })
            .collect();
        match sink.append(records, None).await {
            Ok(()) => acked = i + 1,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let failure = failure.expect("the small file system filled up");
    eprintln!("append failed after {acked} acknowledged batches: {failure} ({failure:?})");
    drop(sink);
    pipeline.shutdown();

    // Inspect a copy on a roomy file system.
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(dir.join("log"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(&dir).unwrap();
    let logged: std::collections::HashSet<String> = read_unapplied(copy.path())
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    for n in 0..acked * 20 {
        assert!(logged.contains(&format!("p{n}")), "acknowledged p{n} lost");
    }
}
