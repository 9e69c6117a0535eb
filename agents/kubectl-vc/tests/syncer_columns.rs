//! `kubectl vc list` / `describe` with the syncer's view: a real syncer in the test process (gRPC over
//! mutual TLS on loopback, the PKI it generates) and vc-manager's controller (embedded provisioner)
//! registering a VirtualCluster with it. The OBJECTS, BACKLOG, LAG and SYNCER columns carry what
//! `TenantRegistry.List` says; with the syncer unreachable or not configured they show `-`, one warning
//! goes to stderr and the exit code stays 0.

mod common;
#[path = "../../vc-manager/tests/support/mod.rs"]
mod support;
#[path = "../../vc-manager/tests/support/syncer.rs"]
mod syncer_support;

use std::sync::Arc;

use common::kubectl_vc_env as kubectl_vc;
use support::*;
use syncer_support::*;
use tenancy_proto::pki::PkiFiles;
use tenancy_proto::roles::Role;
use tenancy_proto::tls::DEFAULT_SERVER_NAME;
use tenancy_proto::v1;
use vc_manager::grpc::GrpcRegistrar;
use vc_manager::provision::embedded::Embedded;
use vc_manager::reconcile::Context;

/// The row of `name` in `list` output, split into columns: namespace, name, phase, age, syncer, objects,
/// backlog, lag, cluster namespace.
fn row(stdout: &str, name: &str) -> Vec<String> {
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "PHASE",
            "AGE",
            "SYNCER",
            "OBJECTS",
            "BACKLOG",
            "LAG(P50/P99)",
            "CLUSTER-NAMESPACE"
        ]
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.get(1).map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"))
}

fn lag(t: &v1::TenantStatus) -> String {
    format!("{:.0}ms/{:.0}ms", t.lag_p50_ms, t.lag_p99_ms)
}

fn warnings(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_show_the_syncers_objects_and_lag() {
    let (cluster, client) = super_cluster().await;
    let kc = cluster.kubeconfig_path().to_path_buf();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let syncer = start_syncer(&client, &dir.path().join("syncer")).await;
    let addr = addr_of(&syncer);
    let tls_dir = dir.path().join("syncer").join("grpc");
    let tls_dir_text = tls_dir.display().to_string();

    // vc-manager's controller, registering with the syncer as `vc-manager`.
    let material = PkiFiles::in_dir(&tls_dir)
        .role_material(Role::VcManager)
        .unwrap_or_else(|e| panic!("{e}"));
    let registrar = GrpcRegistrar::connect(&addr, Some(&material), DEFAULT_SERVER_NAME)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Arc::new(Context {
        client: client.clone(),
        provisioner: Arc::new(Embedded::new()),
        registrar: Some(Arc::new(registrar)),
        now: time::OffsetDateTime::now_utc,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(vc_manager::controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));

    create_cv(&client, "cv-list").await;
    create_vc(&client, "default", "vc-list", "cv-list", |_| {}).await;
    let vc = running_and_registered(&client, "vc-list").await;
    let key = vc
        .status
        .as_ref()
        .and_then(|s| s.cluster_namespace.clone())
        .unwrap_or_else(|| panic!("no clusterNamespace"));
    let tenant = tenant_client(&client, &key).await;
    create_app_pod(&tenant, "p1").await;
    create_app_pod(&tenant, "p2").await;

    // The syncer has the tenant's namespace and pods in sync.
    let registry = registry_client(&addr, &tls_dir, Role::Viewer).await;
    let synced = |listed: &[v1::TenantStatus]| {
        listed
            .iter()
            .find(|t| t.cluster_key == key)
            .filter(|t| {
                t.phase == v1::TenantPhase::Syncing as i32
                    && t.objects_synced >= 3
                    && t.backlog == 0
            })
            .cloned()
    };
    wait_for("the tenant's objects in sync", || {
        let mut registry = registry.clone();
        async move { synced(&tenants_listed(&mut registry).await) }
    })
    .await;

    // `list` (syncer given by environment variables) shows the syncer's numbers for vc-list. The
    // numbers may move between the calls: take a run bracketed by two equal answers of List.
    let env = [
        ("KUBECTL_VC_SYNCER_ADDR", addr.as_str()),
        ("KUBECTL_VC_SYNCER_TLS_DIR", tls_dir_text.as_str()),
    ];
    let (cols, status) = wait_for("a list run bracketed by equal syncer answers", || {
        let (mut registry, kc) = (registry.clone(), kc.clone());
        async move {
            let before = synced(&tenants_listed(&mut registry).await)?;
            let run = kubectl_vc(&kc, &["list"], &env).await;
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
            assert_eq!(warnings(&run.stderr), 0, "{}", run.stderr);
            let after = synced(&tenants_listed(&mut registry).await)?;
            (before == after).then(|| (row(&run.stdout, "vc-list"), after))
        }
    })
    .await;
    assert_eq!(cols[2], "Running");
    assert_eq!(cols[4], "Syncing");
    assert_eq!(cols[5], status.objects_synced.to_string());
    assert_eq!(cols[6], status.backlog.to_string());
    assert_eq!(cols[7], lag(&status));
    assert_eq!(cols[8], key);

    // `describe` (syncer given by flags) has the syncer's section.
    let run = kubectl_vc(
        &kc,
        &[
            "describe",
            "vc-list",
            "--syncer-addr",
            &addr,
            "--syncer-tls-dir",
            &tls_dir_text,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let field = |name: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in:\n{}", run.stdout))
    };
    assert_eq!(field("Phase:"), "Running");
    assert!(
        run.stdout.contains("\n  Phase:           Syncing\n"),
        "{}",
        run.stdout
    );
    assert_eq!(field("ClusterKey:"), key);
    let objects: u64 = field("ObjectsInSync:")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(objects >= 3, "{}", run.stdout);
    assert!(field("Lag p50/p99:").ends_with("ms"), "{}", run.stdout);

    // Unreachable syncer (a closed port): `-` in the syncer columns, one warning, exit code 0.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    };
    for (what, args) in [
        (
            "unreachable",
            vec![
                "list",
                "--syncer-addr",
                &closed,
                "--syncer-tls-dir",
                &tls_dir_text,
            ],
        ),
        ("not configured", vec!["list"]),
    ] {
        let run = kubectl_vc(&kc, &args, &[]).await;
        assert_eq!(run.code, 0, "{what}: {}{}", run.stdout, run.stderr);
        assert_eq!(warnings(&run.stderr), 1, "{what}: {}", run.stderr);
        let cols = row(&run.stdout, "vc-list");
        assert_eq!(cols[2], "Running", "{what}");
        assert_eq!(&cols[4..8], ["-", "-", "-", "-"], "{what}");
        assert_eq!(cols[8], key, "{what}");
    }
    // A certificate without a role may not list: the call is refused, the columns show `-`.
    let ca = PkiFiles::in_dir(&tls_dir)
        .authority()
        .unwrap_or_else(|e| panic!("{e}"));
    let plain = ca.issue_client("no-role").unwrap_or_else(|e| panic!("{e}"));
    let (cert, key_file) = (
        dir.path().join("plain.pem"),
        dir.path().join("plain-key.pem"),
    );
    std::fs::write(&cert, &plain.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_file, &plain.key_pem).unwrap_or_else(|e| panic!("{e}"));
    let ca_file = tls_dir.join("ca.pem").display().to_string();
    let (cert, key_file) = (cert.display().to_string(), key_file.display().to_string());
    let run = kubectl_vc(
        &kc,
        &[
            "list",
            "--syncer-addr",
            &addr,
            "--syncer-ca",
            &ca_file,
            "--syncer-cert",
            &cert,
            "--syncer-key",
            &key_file,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("PermissionDenied"), "{}", run.stderr);
    assert_eq!(&row(&run.stdout, "vc-list")[4..8], ["-", "-", "-", "-"]);

    let _ = stop_tx.send(());
    let _ = controller.await;
    syncer.shutdown().await;
}
