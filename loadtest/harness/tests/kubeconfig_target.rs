//! The `kubeconfig` target against a `TestCluster` (the simulator by default; a real API server when the
//! environment selects one): the super cluster is reached only through its kubeconfig, the tenants are
//! existing kubeconfigs in a directory, and the harness writes pod status itself (no kubelet).

mod support;

use support::{number, result, run_loadtest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_through_a_kubeconfig_target_with_existing_tenant_kubeconfigs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let super_cluster = testcluster::TestCluster::start()
        .await
        .unwrap_or_else(|e| panic!("super cluster: {e}"));
    let tenants_dir = dir.path().join("tenants");
    std::fs::create_dir_all(&tenants_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut tenants = Vec::new();
    for i in 1..=2 {
        let sim = apisim::Simulator::start(apisim::SimConfig::default())
            .await
            .unwrap_or_else(|e| panic!("tenant sim: {e}"));
        std::fs::write(
            tenants_dir.join(format!("tenant-{i}.yaml")),
            sim.kubeconfig_yaml(&format!("tenant-{i}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        tenants.push(sim);
    }
    let out = dir.path().join("out");
    let target = format!("kubeconfig={}", super_cluster.kubeconfig_path().display());
    let tenants_arg = tenants_dir.display().to_string();
    let out2 = out.clone();
    let output = tokio::task::spawn_blocking(move || {
        run_loadtest(
            &out2,
            &[
                "burst",
                "--vcs",
                "2",
                "--namespaces",
                "2",
                "--pods",
                "3",
                "--target",
                &target,
                "--tenant-kubeconfigs",
                &tenants_arg,
                "--status-writer",
                "harness",
                "--run-id",
                "kc1",
                "--timeout",
                "5m",
            ],
        )
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "loadtest failed: {:?}",
        output.status
    );
    let r = result(&out);
    assert!(
        r["interrupted"].is_null(),
        "run was interrupted: {}",
        r["interrupted"]
    );
    assert!(
        r["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("kubeconfig="))
    );
    assert_eq!(number(&r, "/results/syncer/synced_down"), 12.0);
    // Status written on the super copies by the harness came back up to the tenants.
    assert_eq!(number(&r, "/results/syncer/synced_up"), 12.0);
    assert_eq!(number(&r, "/results/baseline/synced_down"), 12.0);
    assert!(number(&r, "/results/ratio_syncer_to_direct/down_rate") > 0.0);
    for t in tenants {
        t.shutdown().await;
    }
}
