//! A tiny `noisy-neighbor` end to end: two greedy tenants burst while two light tenants create pods one at a
//! time, with the syncer's fairness and then with `--no-fairness`; both runs' figures must be measured.

mod support;

use support::{assert_png, number, run_ok};

#[test]
fn noisy_neighbor_measures_both_runs() {
    let (_dir, out, r) = run_ok(&[
        "noisy-neighbor",
        "--greedy",
        "2",
        "--light",
        "2",
        "--greedy-pods",
        "60",
        "--light-pods",
        "4",
        "--seed",
        "2",
        "--timeout",
        "5m",
    ]);
    assert_eq!(r["scenario"], "noisy-neighbor");
    for (run, fair) in [("fairness", true), ("no_fairness", false)] {
        assert_eq!(r["results"][run]["fairness"], serde_json::json!(fair));
        assert_eq!(number(&r, &format!("/results/{run}/light_written")), 8.0);
        assert_eq!(number(&r, &format!("/results/{run}/light_observed")), 8.0);
        assert_eq!(number(&r, &format!("/results/{run}/light/count")), 8.0);
        assert!(number(&r, &format!("/results/{run}/light/p50")) > 0.0);
        assert!(number(&r, &format!("/results/{run}/light/p99")) > 0.0);
        assert_eq!(number(&r, &format!("/results/{run}/greedy/written")), 120.0);
        assert_eq!(
            number(&r, &format!("/results/{run}/greedy/synced_down")),
            120.0
        );
        assert!(number(&r, &format!("/results/{run}/greedy/down_rate")) > 0.0);
    }
    assert!(number(&r, "/results/ratio_no_fairness_to_fairness/light_p50") > 0.0);
    assert!(
        number(
            &r,
            "/results/ratio_no_fairness_to_fairness/greedy_down_rate"
        ) > 0.0
    );
    // The second run's syncer was started with --no-fairness, the first one's without.
    let has_flag = |run: &str| {
        r["results"][run]["syncer_cmdline"]
            .as_array()
            .unwrap_or_else(|| panic!("{run}/syncer_cmdline"))
            .iter()
            .any(|a| a == "--no-fairness")
    };
    assert!(!has_flag("fairness"));
    assert!(has_flag("no_fairness"));
    for f in ["light_lag.png", "throughput.png"] {
        assert_png(&out, f);
    }
}
