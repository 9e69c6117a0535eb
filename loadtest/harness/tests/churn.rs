//! A short `churn` end to end on the embedded target: creates, updates and deletes at a steady rate, once
//! directly on the super cluster and once through the child syncer. Every kind must have been sent and its
//! lag measured, and at the end every tenant pod must match its super copy (uid and last update).

mod support;

use support::{assert_churn_kind, assert_copies_match, assert_png, number, run_ok};

#[test]
fn churn_measures_every_operation_kind_and_ends_converged() {
    let (_dir, out, r) = run_ok(&[
        "churn",
        "--vcs",
        "2",
        "--namespaces",
        "2",
        "--rate",
        "20",
        "--duration",
        "5s",
        "--window",
        "1s",
        "--mix",
        "50:30:20",
        "--max-pods",
        "30",
        "--seed",
        "3",
        "--timeout",
        "5m",
    ]);
    assert_eq!(r["scenario"], "churn");
    // Nothing else writes the direct pods: none of their updates can be overwritten.
    assert_eq!(number(&r, "/results/baseline/update/overwritten"), 0.0);
    for phase in ["syncer", "baseline"] {
        for kind in ["create", "update", "delete"] {
            let observed = assert_churn_kind(&r, phase, kind);
            let series = r
                .pointer(&format!("/results/{phase}/{kind}/series"))
                .and_then(serde_json::Value::as_array)
                .unwrap_or_else(|| panic!("{phase}/{kind}/series"));
            let counted: f64 = series
                .iter()
                .map(|w| w["count"].as_f64().unwrap_or(0.0))
                .sum();
            assert_eq!(
                counted, observed,
                "{phase}/{kind}: windows hold every sample"
            );
        }
        assert_eq!(
            r.pointer(&format!("/results/{phase}/complete")),
            Some(&serde_json::json!(true))
        );
        assert!(number(&r, &format!("/results/{phase}/up/count")) > 0.0);
        assert!(number(&r, &format!("/results/{phase}/up/p99")) > 0.0);
        assert!(number(&r, &format!("/results/{phase}/ops_per_second")) > 0.0);
    }
    // The syncer's own histogram saw the pods, and its CPU and memory were read.
    assert!(number(&r, "/results/syncer_process/own_lag_down/count") > 0.0);
    assert!(number(&r, "/results/syncer_process/cpu_seconds") > 0.0);
    assert!(number(&r, "/results/syncer_process/rss_peak_bytes") > 0.0);
    assert!(number(&r, "/results/ratio_syncer_to_direct/create_p50") > 0.0);
    // The end state: every tenant pod has exactly one super copy carrying its last update.
    assert_copies_match(&r);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap_or_else(|e| panic!("{e}"));
    assert!(md.contains("| syncer | update lag down p50 / p90 / p99 |"));
    for f in ["lag_p50.png", "lag_p99.png", "throughput.png"] {
        assert_png(&out, f);
    }
}
