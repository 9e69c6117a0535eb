//! Per-method authorisation of the syncer's gRPC API: the `syncer` binary as a child process serving
//! mutual TLS on loopback with the PKI it generates in its data directory (one client certificate per
//! role), simulated super and tenant clusters. Each role calls what it may and is refused what it may not
//! with PERMISSION_DENIED; a certificate of the right CA without a role may only call Health.

mod e2e_support;

use anyhow::Result;
use e2e_support::*;
use tenancy_proto::pki::PkiFiles;
use tenancy_proto::roles::Role;
use tenancy_proto::tls::{self, DEFAULT_SERVER_NAME, TlsMaterial};
use tenancy_proto::v1;
use tenancy_proto::v1::health_client::HealthClient;
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use tenancy_proto::v1::translation_client::TranslationClient;
use tonic::Code;
use tonic::transport::Channel;

async fn channel(addr: &str, material: &TlsMaterial) -> Channel {
    tls::connect(addr, Some(material.client_config(DEFAULT_SERVER_NAME)))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The codes of Register, List, ToSuper and Health.Check for a client holding `material`.
async fn codes(addr: &str, material: &TlsMaterial, spec: &v1::TenantSpec) -> [Code; 4] {
    let ch = channel(addr, material).await;
    let mut registry = TenantRegistryClient::new(ch.clone());
    let register = code(
        registry
            .register(v1::RegisterRequest {
                spec: Some(spec.clone()),
            })
            .await,
    );
    let list = code(registry.list(v1::ListRequest {}).await);
    let to_super = code(
        TranslationClient::new(ch.clone())
            .to_super(v1::ToSuperRequest {
                cluster_key: "nobody".into(),
                namespace: "default".into(),
                pod: "p".into(),
            })
            .await,
    );
    let health = code(HealthClient::new(ch).check(v1::HealthCheckRequest {}).await);
    [register, list, to_super, health]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_calls_only_its_methods() -> Result<()> {
    // vc-1 is configured statically; vc-2 may only come through the registry.
    let clusters = Clusters::start(2, 1).await?;
    std::fs::remove_file(clusters.tenants_dir().join("vc-2.yaml"))?;
    let data = clusters.data_dir();
    let addr = format!("127.0.0.1:{}", free_port()?);
    let _syncer = SyncerProcess::start(&clusters, &data, &["--grpc-addr", &addr])?;
    let files = PkiFiles::in_dir(&data.join("grpc"));
    // The binary generated the PKI; wait until its API answers.
    wait_for("the syncer's gRPC API", 60, || {
        let (files, addr) = (files.clone(), addr.clone());
        async move {
            let Ok(material) = files.role_material(Role::Viewer) else {
                return Ok(None);
            };
            let Ok(channel) =
                tls::connect(&addr, Some(material.client_config(DEFAULT_SERVER_NAME))).await
            else {
                return Ok(None);
            };
            Ok(HealthClient::new(channel)
                .check(v1::HealthCheckRequest {})
                .await
                .ok()
                .map(|_| ()))
        }
    })
    .await?;
    let material = |role| {
        files
            .role_material(role)
            .unwrap_or_else(|e| panic!("{role} material: {e}"))
    };
    let s = &clusters.specs[1];
    let spec = v1::TenantSpec {
        vc: Some(v1::VirtualClusterRef::new(&s.namespace, &s.name, &s.uid)),
        kubeconfig: std::fs::read_to_string(clusters.tenants[1].kubeconfig_path())?,
        ..Default::default()
    };
    use Code::{NotFound, Ok as Allowed, PermissionDenied as Denied};

    // vn-agent: may not register; reads the registry and translates (NOT_FOUND: no such pod).
    assert_eq!(
        codes(&addr, &material(Role::VnAgent), &spec).await,
        [Denied, Allowed, NotFound, Allowed]
    );
    // viewer: reads the registry only.
    assert_eq!(
        codes(&addr, &material(Role::Viewer), &spec).await,
        [Denied, Allowed, Denied, Allowed]
    );
    // The refused calls registered nothing (only the configured vc-1 is listed).
    let admin = channel(&addr, &material(Role::Admin)).await;
    let listed = TenantRegistryClient::new(admin.clone())
        .list(v1::ListRequest {})
        .await?
        .into_inner()
        .tenants;
    assert_eq!(listed.len(), 1, "{listed:?}");

    // vc-manager: registers (really: the tenant is listed), may not translate.
    assert_eq!(
        codes(&addr, &material(Role::VcManager), &spec).await,
        [Allowed, Allowed, Denied, Allowed]
    );
    let listed = TenantRegistryClient::new(admin.clone())
        .list(v1::ListRequest {})
        .await?
        .into_inner()
        .tenants;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let denied = TenantRegistryClient::new(channel(&addr, &material(Role::VnAgent)).await)
        .unregister(v1::UnregisterRequest {
            vc: spec.vc.clone(),
            allow_missing: false,
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("a vn-agent unregistered a tenant"));
    assert_eq!(denied.code(), Denied);
    assert!(
        denied.message().contains("vn-agent") && denied.message().contains("Unregister"),
        "{}",
        denied.message()
    );
    let unregistered = TenantRegistryClient::new(channel(&addr, &material(Role::VcManager)).await)
        .unregister(v1::UnregisterRequest {
            vc: spec.vc.clone(),
            allow_missing: false,
        })
        .await
        .unwrap_or_else(|e| panic!("vc-manager unregisters: {e}"))
        .into_inner();
    assert!(unregistered.existed);

    // admin: translation too (NOT_FOUND: no such pod).
    assert_eq!(
        code(
            TranslationClient::new(admin)
                .to_super(v1::ToSuperRequest {
                    cluster_key: "nobody".into(),
                    namespace: "default".into(),
                    pod: "p".into(),
                })
                .await
        ),
        NotFound
    );

    // A certificate of the right CA without a role: Health only.
    let plain = files.authority()?.issue_client("no-role")?;
    let plain = TlsMaterial::new(
        std::fs::read_to_string(&files.ca_cert)?,
        plain.cert_pem,
        plain.key_pem,
    )?;
    assert_eq!(
        codes(&addr, &plain, &spec).await,
        [Denied, Denied, Denied, Allowed]
    );
    Ok(())
}
