//! End to end: the `vc-manager` binary (embedded provisioner) registering tenants over mutual TLS with a
//! real syncer (in-process: sled log, shards, sources, gRPC API on loopback with the PKI it generates),
//! both on one simulated super cluster.
//!
//! vc-manager is started before the syncer (it waits for the syncer's TLS files). A ClusterVersion and two
//! VirtualClusters are applied; both become Running and Registered; a pod created
//! in each tenant through its admin kubeconfig (TLS verified against the tenant's root CA) appears in the
//! super cluster in `super_namespace(cluster key, ns)`; the syncer's TenantRegistry lists both tenants as
//! syncing. Deleting one VirtualCluster removes every super object of that tenant (namespaces, pods, the
//! root namespace) while the other tenant keeps its objects and keeps syncing.

mod support;
#[path = "support/syncer.rs"]
mod syncer_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use support::*;
use syncer_support::*;
use tenancy_proto::roles::Role;
use tenancy_proto::v1;
use vc_api::VirtualCluster;

/// The `vc-manager` binary as a child process; killed on drop. Its log goes to a file printed on failure.
struct VcManager {
    child: Child,
    log: PathBuf,
}

impl VcManager {
    fn start(super_kubeconfig: &Path, data: &Path, syncer_addr: &str, tls_dir: &Path) -> Self {
        std::fs::create_dir_all(data).unwrap_or_else(|e| panic!("{e}"));
        let log = data.join("vc-manager.log");
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_vc-manager"))
            .arg("--kubeconfig")
            .arg(super_kubeconfig)
            .args(["--provisioner", "embedded", "--data-dir"])
            .arg(data)
            .args(["--syncer-addr", syncer_addr, "--syncer-tls-dir"])
            .arg(tls_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start vc-manager: {e}"));
        Self { child, log }
    }

    fn print_log(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("vc-manager log (last lines):");
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("{line}");
        }
    }
}

impl Drop for VcManager {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn super_pod_exists(client: &kube::Client, ns: &str, name: &str) -> bool {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Namespaces of the super cluster that belong to tenant `key`: its root namespace and every namespace
/// the syncer made for it (annotated with the cluster key).
async fn super_namespaces_of(client: &kube::Client, key: &str) -> Vec<String> {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list namespaces: {e}"))
        .items
        .into_iter()
        .filter(|ns| {
            ns.name_any() == key
                || ns
                    .annotations()
                    .get(tenancy_naming::ANNOTATION_CLUSTER)
                    .map(String::as_str)
                    == Some(key)
        })
        .map(|ns| ns.name_any())
        .collect()
}

async fn pods_of(client: &kube::Client, key: &str) -> Vec<String> {
    Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list pods: {e}"))
        .items
        .into_iter()
        .filter(|p| p.namespace().unwrap_or_default().starts_with(key))
        .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_clusters_register_sync_and_deleting_one_removes_only_its_super_objects() {
    let (cluster, client) = super_cluster().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let syncer_data = dir.path().join("syncer");
    // vc-manager first: the syncer's TLS directory does not exist yet, vc-manager waits for it.
    let addr = free_addr();
    let _manager = VcManager::start(
        cluster.kubeconfig_path(),
        &dir.path().join("vc-manager"),
        &addr,
        &syncer_data.join("grpc"),
    );
    let syncer = start_syncer_on(&client, &syncer_data, &addr).await;
    create_cv(&client, "cv-e2e").await;
    create_vc(&client, "default", "vc-a", "cv-e2e", |_| {}).await;
    create_vc(&client, "default", "vc-b", "cv-e2e", |_| {}).await;
    let a = running_and_registered(&client, "vc-a").await;
    let b = running_and_registered(&client, "vc-b").await;
    let key_of = |vc: &VirtualCluster| {
        let key = vc
            .status
            .as_ref()
            .and_then(|s| s.cluster_namespace.clone())
            .unwrap_or_else(|| panic!("no clusterNamespace"));
        assert_eq!(
            key,
            tenancy_naming::cluster_key("default", &vc.name_any(), &vc.uid().unwrap_or_default())
        );
        key
    };
    let (key_a, key_b) = (key_of(&a), key_of(&b));
    assert_ne!(key_a, key_b);

    // A pod in each tenant, through the written kubeconfigs, shows up in the super cluster.
    let tenant_a = tenant_client(&client, &key_a).await;
    let tenant_b = tenant_client(&client, &key_b).await;
    create_app_pod(&tenant_a, "pod-a").await;
    create_app_pod(&tenant_b, "pod-b").await;
    let super_ns_a = tenancy_naming::super_namespace(&key_a, "app");
    let super_ns_b = tenancy_naming::super_namespace(&key_b, "app");
    wait_for("both tenant pods in the super cluster", || async {
        (super_pod_exists(&client, &super_ns_a, "pod-a").await
            && super_pod_exists(&client, &super_ns_b, "pod-b").await)
            .then_some(())
    })
    .await;
    assert!(!super_pod_exists(&client, &super_ns_a, "pod-b").await);
    assert!(!super_pod_exists(&client, &super_ns_b, "pod-a").await);

    // The syncer's registry lists both as syncing, with objects synced.
    let registry = registry_client(&addr, &syncer_data.join("grpc"), Role::Viewer).await;
    wait_for("both tenants syncing in TenantRegistry.List", || {
        let mut registry = registry.clone();
        let (key_a, key_b) = (key_a.clone(), key_b.clone());
        async move {
            let listed = tenants_listed(&mut registry).await;
            let syncing = |key: &str| {
                listed.iter().any(|t| {
                    t.cluster_key == key
                        && t.phase == v1::TenantPhase::Syncing as i32
                        && t.objects_synced > 0
                })
            };
            (syncing(&key_a) && syncing(&key_b)).then_some(())
        }
    })
    .await;

    // Deleting vc-a removes all of its super objects; vc-b's stay.
    Api::<VirtualCluster>::namespaced(client.clone(), "default")
        .delete("vc-a", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete vc-a: {e}"));
    wait_for("vc-a and every super object of it gone", || async {
        let vc_gone = get_vc(&client, "default", "vc-a").await.is_none();
        let namespaces = super_namespaces_of(&client, &key_a).await;
        let pods = pods_of(&client, &key_a).await;
        (vc_gone && namespaces.is_empty() && pods.is_empty()).then_some(())
    })
    .await;
    // The syncer finishes its removal (phase Removing until its namespaces are gone) and forgets vc-a.
    let listed = wait_for("vc-a gone from TenantRegistry.List", || {
        let mut registry = registry.clone();
        let key_a = key_a.clone();
        async move {
            let listed = tenants_listed(&mut registry).await;
            listed
                .iter()
                .all(|t| t.cluster_key != key_a)
                .then_some(listed)
        }
    })
    .await;
    assert!(listed.iter().any(|t| t.cluster_key == key_b), "{listed:?}");
    assert!(super_pod_exists(&client, &super_ns_b, "pod-b").await);
    let b_namespaces = super_namespaces_of(&client, &key_b).await;
    assert!(
        b_namespaces.contains(&key_b) && b_namespaces.contains(&super_ns_b),
        "{b_namespaces:?}"
    );
    assert_eq!(phase(&client, "default", "vc-b").await, "Running");

    // vc-b keeps syncing.
    create_app_pod(&tenant_b, "pod-b2").await;
    wait_for("vc-b's new pod in the super cluster", || async {
        super_pod_exists(&client, &super_ns_b, "pod-b2")
            .await
            .then_some(())
    })
    .await;

    syncer.shutdown().await;
}
