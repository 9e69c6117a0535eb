//! Runs the `kubectl-vc` binary against a simulated super cluster with vc-manager (embedded
//! provisioner) reconciling in-process: create → Running → a kubeconfig that verifies the tenant CA,
//! list/describe/kubeconfig, and the documented exit codes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use testcluster::TestCluster;
use vc_api::ClusterVersion;
use vc_manager::provision::embedded::Embedded;
use vc_manager::reconcile::Context;

use common::kubectl_vc;

fn vc_yaml(name: &str, cv: &str) -> String {
    format!(
        "apiVersion: tenancy.x-k8s.io/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  clusterVersionName: {cv}\n"
    )
}

async fn start() -> (TestCluster, kube::Client) {
    let cluster = TestCluster::start()
        .await
        .unwrap_or_else(|e| panic!("super cluster: {e}"));
    let client = cluster.client().await.unwrap_or_else(|e| panic!("{e}"));
    vc_manager::install::install_crds(&client, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("CRDs: {e}"));
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_describe_kubeconfig_delete_with_documented_exit_codes() {
    let (cluster, client) = start().await;
    let cv: ClusterVersion = serde_json::from_value(serde_json::json!({
        "apiVersion": "tenancy.x-k8s.io/v1alpha1", "kind": "ClusterVersion",
        "metadata": {"name": "cv-embedded"}, "spec": {}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<ClusterVersion>::all(client.clone())
        .create(&PostParams::default(), &cv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let embedded = Arc::new(Embedded::new());
    let ctx = Arc::new(Context {
        client: client.clone(),
        provisioner: embedded.clone(),
        registrar: None,
        now: time::OffsetDateTime::now_utc,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(vc_manager::controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));
    let kc = cluster.kubeconfig_path().to_path_buf();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let manifest = dir.path().join("vc.yaml");
    std::fs::write(&manifest, vc_yaml("demo", "cv-embedded")).unwrap_or_else(|e| panic!("{e}"));
    let out_path = dir.path().join("demo.kubeconfig");

    let run = kubectl_vc(
        &kc,
        &[
            "create",
            "-f",
            &manifest.display().to_string(),
            "-o",
            &out_path.display().to_string(),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("virtualcluster default/demo is Running; kubeconfig written to"),
        "{}",
        run.stdout
    );
    // The kubeconfig verifies the tenant CA (HTTPS to the embedded tenant API server).
    let yaml = std::fs::read_to_string(&out_path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!yaml.contains("insecure-skip-tls-verify"));
    let tenant = vc_manager::kubeconfig::client(&yaml)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "team"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    Api::<Namespace>::all(tenant)
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create in tenant over verified TLS: {e}"));
    // The same kubeconfig with another CA is refused by the client.
    let (_, ca) = vc_manager::kubeconfig::server_and_ca(&yaml).unwrap_or_else(|| panic!("ca"));
    let other = vc_manager::pki::ensure(
        &vc_manager::pki::PkiSettings {
            expire_days: 1,
            apiserver_sans: Default::default(),
            etcd_sans: Default::default(),
            now: time::OffsetDateTime::now_utc(),
        },
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let wrong = yaml.replace(&b64.encode(&ca), &b64.encode(&other.root.cert_pem));
    assert_ne!(wrong, yaml);
    let wrong_client = vc_manager::kubeconfig::client(&wrong)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(wrong_client.apiserver_version().await.is_err());

    let run = kubectl_vc(&kc, &["list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("demo") && l.contains("Running")),
        "{}",
        run.stdout
    );
    let run = kubectl_vc(&kc, &["describe", "demo"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Phase:             Running"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Registered"), "{}", run.stdout);
    let run = kubectl_vc(&kc, &["kubeconfig", "demo"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, yaml);

    // Exit codes: already exists 6, not found 2, Error 3, usage 1.
    let run = kubectl_vc(&kc, &["create", "-f", &manifest.display().to_string()]).await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: virtualcluster default/demo already exists"),
        "{}",
        run.stderr
    );
    let run = kubectl_vc(&kc, &["describe", "missing"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, vc_yaml("bad", "no-such-version")).unwrap_or_else(|e| panic!("{e}"));
    let run = kubectl_vc(&kc, &["create", "-f", &bad.display().to_string()]).await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("ClusterVersionNotFound"),
        "{}",
        run.stderr
    );
    let run = kubectl_vc(&kc, &["kubeconfig", "bad"]).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    let run = kubectl_vc(&kc, &["frobnicate"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);

    // Delete waits until the VirtualCluster is gone; its embedded server is stopped.
    assert_eq!(embedded.running(), 1);
    let run = kubectl_vc(&kc, &["delete", "demo"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("virtualcluster default/demo deleted"),
        "{}",
        run.stdout
    );
    assert_eq!(embedded.running(), 0);
    let run = kubectl_vc(&kc, &["delete", "demo"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let _ = stop_tx.send(());
    let _ = controller.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_times_out_with_exit_code_4_when_nothing_provisions() {
    let (cluster, _client) = start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let manifest = dir.path().join("vc.yaml");
    std::fs::write(&manifest, vc_yaml("lonely", "cv")).unwrap_or_else(|e| panic!("{e}"));
    let run = kubectl_vc(
        cluster.kubeconfig_path(),
        &[
            "create",
            "-f",
            &manifest.display().to_string(),
            "--timeout",
            "1s",
        ],
    )
    .await;
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
}
