//! The `kubeconfig` target against a `TestCluster` (the simulator by default; a real API server when the
//! environment selects one): the super cluster is reached only through its kubeconfig, the tenants are
//! existing kubeconfigs in a directory, and the harness writes pod status itself (no kubelet).

mod support;

use std::path::PathBuf;

use support::{assert_churn_kind, assert_copies_match, number, run_ok};

/// A super cluster behind a kubeconfig and two existing tenant clusters in a kubeconfig directory.
struct Clusters {
    dir: tempfile::TempDir,
    super_cluster: testcluster::TestCluster,
    tenants: Vec<apisim::Simulator>,
}

impl Clusters {
    async fn start() -> Self {
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
        Self {
            dir,
            super_cluster,
            tenants,
        }
    }

    fn tenants_dir(&self) -> PathBuf {
        self.dir.path().join("tenants")
    }

    /// Runs the harness (in a blocking thread: the clusters live on this runtime) against these clusters
    /// with `--status-writer harness` and returns `result.json`.
    async fn run(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend([
            "--target".into(),
            format!(
                "kubeconfig={}",
                self.super_cluster.kubeconfig_path().display()
            ),
            "--tenant-kubeconfigs".into(),
            self.tenants_dir().display().to_string(),
            "--status-writer".into(),
            "harness".into(),
            "--timeout".into(),
            "5m".into(),
        ]);
        let (_dir, _out, r) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_ok(&refs)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("kubeconfig="))
        );
        r
    }

    async fn shutdown(self) {
        for t in self.tenants {
            t.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_through_a_kubeconfig_target_with_existing_tenant_kubeconfigs() {
    let clusters = Clusters::start().await;
    let r = clusters
        .run(&[
            "burst",
            "--vcs",
            "2",
            "--namespaces",
            "2",
            "--pods",
            "3",
            "--run-id",
            "kc1",
        ])
        .await;
    assert_eq!(number(&r, "/results/syncer/synced_down"), 12.0);
    // Status written on the super copies by the harness came back up to the tenants.
    assert_eq!(number(&r, "/results/syncer/synced_up"), 12.0);
    assert_eq!(number(&r, "/results/baseline/synced_down"), 12.0);
    assert!(number(&r, "/results/ratio_syncer_to_direct/down_rate") > 0.0);
    clusters.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_through_a_kubeconfig_target_ends_with_every_copy_matching() {
    let clusters = Clusters::start().await;
    let r = clusters
        .run(&[
            "churn",
            "--vcs",
            "2",
            "--namespaces",
            "1",
            "--rate",
            "15",
            "--duration",
            "4s",
            "--window",
            "1s",
            "--mix",
            "50:30:20",
            "--no-baseline",
            "--run-id",
            "kc2",
        ])
        .await;
    for kind in ["create", "update", "delete"] {
        assert_churn_kind(&r, "syncer", kind);
    }
    assert!(number(&r, "/results/syncer/up/count") > 0.0);
    assert!(r["results"]["baseline"].is_null());
    assert_copies_match(&r);
    clusters.shutdown().await;
}
