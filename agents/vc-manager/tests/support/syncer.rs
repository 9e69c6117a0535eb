//! A real syncer in the test process for the end-to-end tests of vc-manager and kubectl-vc: sled log,
//! shards, sources and the gRPC API on loopback with mutual TLS and the PKI it generates in
//! `<data>/grpc/` (one client certificate per role).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use syncer::app::{Syncer, SyncerOptions};
use syncer::grpc::GrpcOptions;
use syncer::pipeline::PipelineConfig;
use syncer::reconcile::{SyncReconciler, Tenants};
use syncer::source::SourceConfig;
use tenancy_proto::pki::PkiFiles;
use tenancy_proto::roles::Role;
use tenancy_proto::tls::{self, DEFAULT_SERVER_NAME};
use tenancy_proto::tonic::transport::Channel;
use tenancy_proto::v1;
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use vc_api::secrets as names;
use vc_api::{Phase, VirtualCluster, conditions};

use crate::support::{get_vc, secret_value, wait_for};

/// Starts a syncer on `super_client` keeping its state in `data`, its gRPC API on a free port.
pub async fn start_syncer(super_client: &kube::Client, data: &Path) -> Syncer {
    start_syncer_on(super_client, data, "127.0.0.1:0").await
}

/// A free TCP port on 127.0.0.1 as `127.0.0.1:<port>`.
pub fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// Starts a syncer on `super_client` keeping its state in `data`, its gRPC API on `addr`.
pub async fn start_syncer_on(super_client: &kube::Client, data: &Path, addr: &str) -> Syncer {
    let grpc = GrpcOptions::with_generated_pki(
        addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}")),
        &data.join("grpc"),
    )
    .unwrap_or_else(|e| panic!("syncer PKI: {e}"));
    let registry = Tenants::new();
    let reconciler = Arc::new(SyncReconciler::new(
        super_client.clone(),
        registry.clone(),
        tokio::runtime::Handle::current(),
    ));
    let mut pipeline = PipelineConfig::new(data.join("log"));
    pipeline.shards = 2;
    Syncer::start(
        super_client.clone(),
        &[],
        registry,
        reconciler,
        SyncerOptions {
            pipeline,
            sources: SourceConfig::default(),
            grpc: Some(grpc),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("start the syncer: {e}"))
}

/// The gRPC address the syncer serves.
pub fn addr_of(syncer: &Syncer) -> String {
    syncer
        .grpc_addr()
        .unwrap_or_else(|| panic!("gRPC API not served"))
        .to_string()
}

/// A TenantRegistry client of the syncer at `addr` with the certificate of `role` from `tls_dir`.
pub async fn registry_client(
    addr: &str,
    tls_dir: &Path,
    role: Role,
) -> TenantRegistryClient<Channel> {
    let material = PkiFiles::in_dir(tls_dir)
        .role_material(role)
        .unwrap_or_else(|e| panic!("{role} material: {e}"));
    let channel = tls::connect(addr, Some(material.client_config(DEFAULT_SERVER_NAME)))
        .await
        .unwrap_or_else(|e| panic!("connect to the syncer: {e}"));
    TenantRegistryClient::new(channel)
}

/// Every tenant `TenantRegistry.List` shows (empty when the call fails).
pub async fn tenants_listed(registry: &mut TenantRegistryClient<Channel>) -> Vec<v1::TenantStatus> {
    registry
        .list(v1::ListRequest {})
        .await
        .map(|r| r.into_inner().tenants)
        .unwrap_or_default()
}

/// The VirtualCluster once Running and registered with the syncer.
pub async fn running_and_registered(client: &kube::Client, name: &str) -> VirtualCluster {
    wait_for(&format!("{name} Running and Registered"), || async {
        let vc = get_vc(client, "default", name).await?;
        let status = vc.status.clone()?;
        let registered = conditions::get(&status.conditions, conditions::REGISTERED)?;
        (status.phase == Some(Phase::Running) && registered.status == "True").then_some(vc)
    })
    .await
}

/// A client of the tenant from the admin kubeconfig vc-manager wrote, after checking that it verifies
/// the tenant's root CA.
pub async fn tenant_client(client: &kube::Client, key: &str) -> kube::Client {
    let admin = secret_value(
        client,
        key,
        names::ADMIN_KUBECONFIG,
        names::ADMIN_KUBECONFIG_KEY,
    )
    .await
    .unwrap_or_else(|| panic!("admin kubeconfig of {key}"));
    let root_ca = secret_value(client, key, names::ROOT_CA, names::TLS_CRT)
        .await
        .unwrap_or_else(|| panic!("root CA of {key}"));
    let (server, ca) =
        vc_manager::kubeconfig::server_and_ca(&admin).unwrap_or_else(|| panic!("parse kubeconfig"));
    assert!(server.starts_with("https://"), "{server}");
    assert_eq!(ca, root_ca, "the kubeconfig trusts the tenant root CA");
    assert!(!admin.contains("insecure-skip-tls-verify"));
    vc_manager::kubeconfig::client(&admin)
        .await
        .unwrap_or_else(|e| panic!("tenant client: {e}"))
}

/// Creates namespace `app` (if missing) and the pod `app/<pod>` in a tenant.
pub async fn create_app_pod(tenant: &kube::Client, pod: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "app"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    match Api::<Namespace>::all(tenant.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create tenant namespace: {e}"),
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod, "namespace": "app"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<Pod>::namespaced(tenant.clone(), "app")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create tenant pod: {e}"));
}
