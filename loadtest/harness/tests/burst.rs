//! A small `burst` end to end: simulated super + 3 tenants in the harness, the syncer as a child process.
//! Every pod must be synced both ways and the JSON must hold the measured fields.

mod support;

use support::{assert_png, number, run_ok};

#[test]
fn small_burst_syncs_every_pod_and_reports_measured_fields() {
    let (_dir, out, r) = run_ok(&[
        "burst",
        "--vcs",
        "3",
        "--namespaces",
        "2",
        "--pods",
        "5",
        "--seed",
        "7",
        "--timeout",
        "5m",
    ]);
    assert_eq!(r["scenario"], "burst");
    assert_eq!(number(&r, "/results/pods"), 30.0);
    // Through the syncer: all 30 written, seen on the super cluster, and their status seen in the tenants.
    assert_eq!(number(&r, "/results/syncer/written"), 30.0);
    assert_eq!(number(&r, "/results/syncer/synced_down"), 30.0);
    assert_eq!(number(&r, "/results/syncer/synced_up"), 30.0);
    assert_eq!(
        r.pointer("/results/syncer/complete"),
        Some(&serde_json::json!(true))
    );
    for p in [
        "/results/syncer/down/p50",
        "/results/syncer/down/p99",
        "/results/syncer/up/p99",
        "/results/syncer/down_rate",
        "/results/syncer/all_synced_seconds",
        "/results/syncer_process/cpu_seconds",
        "/results/syncer_process/rss_peak_bytes",
        "/results/baseline/down_rate",
        "/results/baseline/up/p50",
        "/results/ratio_syncer_to_direct/down_rate",
        "/results/ratio_syncer_to_direct/down_p99",
    ] {
        assert!(number(&r, p) > 0.0, "{p} should be positive");
    }
    assert!(number(&r, "/results/syncer_process/own_lag_down/count") >= 30.0);
    assert_eq!(number(&r, "/results/baseline/synced_down"), 30.0);
    assert_eq!(number(&r, "/results/baseline/synced_up"), 30.0);
    // The other outputs exist.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap_or_else(|e| panic!("{e}"));
    assert!(md.contains("| syncer | pods/s down |"));
    for f in ["lag.png", "throughput.png"] {
        assert_png(&out, f);
    }
}
