//! The process provisioner with real binaries.
//!
//! * The etcd half (needs `ETCD_BIN`; CI sets it to Debian's etcd): etcd started by the provisioner's
//!   `start_etcd` with a tenant PKI written by `write_pki` reports healthy over TLS with the etcd client
//!   certificate; the same probe with another tenant's PKI is refused (TLS verified both ways).
//! * The whole provisioner (needs `ETCD_BIN` and `KUBE_APISERVER_BIN`): a VirtualCluster becomes Running
//!   with real etcd + kube-apiserver processes, its admin kubeconfig creates a namespace over verified
//!   TLS, and deleting it stops the processes and removes their files.
//!
//! Each test prints `SKIPPED: ...` and passes when its binaries are not given.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use support::*;
use vc_api::{Phase, VirtualCluster};
use vc_manager::pki::{PkiSettings, Sans, SecretSet};
use vc_manager::provision::process::{
    Binaries, ENV_ETCD_BIN, ENV_KUBE_APISERVER_BIN, Process, etcd_health, start_etcd, write_pki,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// A fresh tenant PKI (the Secrets vc-manager would store) with etcd valid on loopback.
fn tenant_pki() -> SecretSet {
    let loopback = Sans {
        dns: vec!["localhost".into()],
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    };
    let settings = PkiSettings {
        expire_days: 30,
        apiserver_sans: loopback.clone(),
        etcd_sans: loopback,
        now: time::OffsetDateTime::now_utc(),
    };
    vc_manager::pki::ensure(&settings, &SecretSet::default())
        .unwrap_or_else(|e| panic!("tenant PKI: {e}"))
        .outcome
        .secrets
}

/// Polls `etcd_health` until it succeeds (up to 60 s); the last error otherwise.
async fn healthy_within(url: &str, pki_dir: &Path) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let result = etcd_health(url, pki_dir).await;
        if result.is_ok() || tokio::time::Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn etcd_half_starts_with_the_tenant_pki_and_answers_only_its_client_certificate() {
    let Some(etcd) = std::env::var_os(ENV_ETCD_BIN) else {
        eprintln!(
            "SKIPPED: {ENV_ETCD_BIN} is not set (the process provisioner's etcd half needs etcd)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tenant = dir.path().join("tenant");
    write_pki(&tenant.join("pki"), &tenant_pki()).unwrap_or_else(|e| panic!("{e}"));
    let (mut child, url) = start_etcd(etcd.as_ref(), &tenant, free_port(), free_port())
        .unwrap_or_else(|e| panic!("start etcd: {e}"));
    let health = healthy_within(&url, &tenant.join("pki")).await;
    let log = std::fs::read_to_string(tenant.join("etcd.log")).unwrap_or_default();
    assert!(health.is_ok(), "{health:?}\netcd log:\n{log}");
    assert!(
        tenant.join("etcd").join("member").exists(),
        "etcd keeps its data in <dir>/etcd"
    );

    // Another tenant's PKI: its CA does not verify this etcd, its client certificate is not trusted.
    let other = dir.path().join("other");
    write_pki(&other.join("pki"), &tenant_pki()).unwrap_or_else(|e| panic!("{e}"));
    let refused = etcd_health(&url, &other.join("pki")).await;
    assert!(refused.is_err(), "another tenant's PKI was accepted");

    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_provisioner_runs_a_tenant_on_real_etcd_and_kube_apiserver() {
    let binaries = match Binaries::from_env() {
        Ok(b) => b,
        Err(why) => {
            eprintln!(
                "SKIPPED: the process provisioner needs {ENV_ETCD_BIN} and {ENV_KUBE_APISERVER_BIN} ({why})"
            );
            return;
        }
    };
    let (_cluster, client) = super_cluster().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ctx = context(
        &client,
        Arc::new(Process::new(binaries, dir.path().join("tenants"))),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(vc_manager::controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));
    create_cv(&client, "cv-process").await;
    create_vc(&client, "default", "vc-process", "cv-process", |_| {}).await;
    // A real kube-apiserver takes a while: poll up to 3 minutes.
    let mut vc: Option<VirtualCluster> = None;
    for _ in 0..900 {
        let current = get_vc(&client, "default", "vc-process").await;
        let phase = current.as_ref().and_then(|v| v.status.as_ref()?.phase);
        assert_ne!(phase, Some(Phase::Error), "{current:?}");
        if phase == Some(Phase::Running) {
            vc = current;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let vc = vc.unwrap_or_else(|| panic!("vc-process not Running within 3 minutes"));
    let key = vc
        .status
        .and_then(|s| s.cluster_namespace)
        .unwrap_or_else(|| panic!("no clusterNamespace"));
    let admin = secret_value(
        &client,
        &key,
        vc_api::secrets::ADMIN_KUBECONFIG,
        vc_api::secrets::ADMIN_KUBECONFIG_KEY,
    )
    .await
    .unwrap_or_else(|| panic!("admin kubeconfig"));
    let tenant = vc_manager::kubeconfig::client(&admin)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "team"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    Api::<Namespace>::all(tenant)
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create a namespace in the real tenant: {e}"));
    let files = dir.path().join("tenants").join(&key);
    assert!(files.join("kube-apiserver.log").exists());

    Api::<VirtualCluster>::namespaced(client.clone(), "default")
        .delete("vc-process", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("vc-process deleted and its files removed", || async {
        (get_vc(&client, "default", "vc-process").await.is_none() && !files.exists()).then_some(())
    })
    .await;
    let _ = stop_tx.send(());
    let _ = controller.await;
}
