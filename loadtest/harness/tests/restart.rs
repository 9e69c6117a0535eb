//! A small `restart` end to end: SIGKILL the child syncer mid-burst, write while it is down, restart it;
//! every tenant pod must end with exactly one super copy (zero lost, zero duplicated).

mod support;

use support::{number, run_ok};

#[test]
fn restart_after_sigkill_loses_and_duplicates_nothing() {
    let (_dir, _out, r) = run_ok(&[
        "restart",
        "--vcs",
        "3",
        "--namespaces",
        "2",
        "--pods",
        "10",
        "--kill-at",
        "0.3",
        "--create-while-down",
        "2",
        "--delete-while-down",
        "2",
        "--seed",
        "5",
        "--timeout",
        "5m",
    ]);
    assert_eq!(r["results"]["converged"], serde_json::json!(true));
    assert_eq!(number(&r, "/results/comparison/lost"), 0.0);
    assert_eq!(number(&r, "/results/comparison/duplicated"), 0.0);
    // 60 burst pods + 2 created per VC while down - 2 deleted per VC while down.
    assert_eq!(number(&r, "/results/comparison/tenant_pods"), 60.0);
    assert_eq!(number(&r, "/results/comparison/super_pods"), 60.0);
    assert_eq!(number(&r, "/results/created_while_down"), 6.0);
    assert_eq!(number(&r, "/results/deleted_while_down"), 6.0);
    assert!(number(&r, "/results/restart_to_converged_seconds") > 0.0);
    // The kill happened mid-burst, not after everything was synced.
    assert!(number(&r, "/results/super_copies_at_kill") < 60.0);
}
