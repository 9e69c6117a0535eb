//! The syncer's gRPC API end to end: the `syncer` binary as a child process serving mutual TLS on loopback
//! with the PKI it generated in its data directory, simulated super and tenant clusters.
//!
//! * Lifecycle: register → the tenant's pods sync; the same spec again changes nothing; translation both
//!   ways; a deleted pod is invalidated on the translation stream; restart → still served, same
//!   registration; unregister → the super namespaces are deleted and the tenant leaves List and Watch;
//!   register again → its pods (bound ones of the first registration and a new one) are synced again.
//! * Refusals: clients without a certificate, with a certificate of another CA or in plain text; malformed
//!   requests (INVALID_ARGUMENT), unknown tenants (NOT_FOUND), a statically configured VC (FAILED_PRECONDITION).

mod e2e_support;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e_support::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams};
use serde_json::json;
use tenancy_proto::pki::CertificateAuthority;
use tenancy_proto::tls::{self, DEFAULT_SERVER_NAME, TlsMaterial};
use tenancy_proto::v1;
use tenancy_proto::v1::health_client::HealthClient;
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use tenancy_proto::v1::translation_client::TranslationClient;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn spec_of(clusters: &Clusters, i: usize) -> Result<v1::TenantSpec> {
    let s = &clusters.specs[i];
    Ok(v1::TenantSpec {
        vc: Some(v1::VirtualClusterRef::new(&s.namespace, &s.name, &s.uid)),
        kubeconfig: std::fs::read_to_string(clusters.tenants[i].kubeconfig_path())?,
        ..Default::default()
    })
}

/// The syncer's log (stderr), printed when a step times out.
fn print_log(data: &Path) {
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(80).collect();
    eprintln!("syncer log (last lines):");
    for line in tail.into_iter().rev() {
        eprintln!("{line}");
    }
}

fn register(spec: &v1::TenantSpec) -> v1::RegisterRequest {
    v1::RegisterRequest {
        spec: Some(spec.clone()),
    }
}

async fn super_pod(sup: &kube::Client, ns: &str, name: &str) -> Result<Option<Pod>> {
    Ok(Api::<Pod>::namespaced(sup.clone(), ns)
        .get_opt(name)
        .await?)
}

async fn status_of(
    registry: &mut TenantRegistryClient<Channel>,
    key: &str,
) -> Result<Option<v1::TenantStatus>> {
    Ok(registry
        .list(v1::ListRequest {})
        .await?
        .into_inner()
        .tenants
        .into_iter()
        .find(|t| t.cluster_key == key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_tenants_sync_unregister_cleans_up_and_registrations_survive_restart()
-> Result<()> {
    let clusters = Clusters::start(2, 1).await?;
    // vc-1 is configured; vc-2 comes only through the registry.
    std::fs::remove_file(clusters.tenants_dir().join("vc-2.yaml"))?;
    let sup = clusters.super_client().await?;
    let t2 = clusters.tenants[1].client().await?;
    let key = clusters.key(1);
    let super_ns = clusters.super_ns(1, "app");
    let data = clusters.data_dir();
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut syncer = SyncerProcess::start(&clusters, &data, &["--grpc-addr", &addr])?;
    let channel = grpc_channel(&data, &addr).await?;
    let mut registry = TenantRegistryClient::new(channel.clone());
    let mut translation = TranslationClient::new(channel.clone());

    let spec = spec_of(&clusters, 1)?;
    let first = registry.register(register(&spec)).await?.into_inner();
    assert_eq!(first.cluster_key, key);
    assert!(first.changed);
    let again = registry.register(register(&spec)).await?.into_inner();
    assert!(!again.changed, "the same spec again must be a no-op");

    create_namespace(&t2, "app").await?;
    create_pod(&t2, "app", "p1", json!({}), json!({})).await?;
    create_pod(&t2, "app", "p2", json!({}), json!({})).await?;
    wait_for("vc-2's pods in the super cluster", 60, || {
        let (sup, ns) = (sup.clone(), super_ns.clone());
        async move {
            let p1 = super_pod(&sup, &ns, "p1").await?;
            let p2 = super_pod(&sup, &ns, "p2").await?;
            Ok((p1.is_some() && p2.is_some()).then_some(()))
        }
    })
    .await?;
    let status = wait_for("vc-2 syncing with 3 objects", 60, || {
        let mut registry = registry.clone();
        let key = key.clone();
        async move {
            Ok(status_of(&mut registry, &key)
                .await?
                .filter(|s| s.phase == v1::TenantPhase::Syncing as i32 && s.objects_synced >= 3))
        }
    })
    .await?;
    let registered_at = status.registered_at_ms;
    assert!(registered_at > 0);
    assert!(
        status_of(&mut registry, &clusters.key(0)).await?.is_some(),
        "the configured tenant is listed too"
    );

    // Translation both ways, from the view.
    let located = wait_for("p1 translated to its super pod", 60, || {
        let mut translation = translation.clone();
        let key = key.clone();
        async move {
            Ok(translation
                .to_super(v1::ToSuperRequest {
                    cluster_key: key,
                    namespace: "app".into(),
                    pod: "p1".into(),
                })
                .await
                .ok()
                .map(tonic::Response::into_inner))
        }
    })
    .await?;
    assert_eq!(
        (located.super_namespace.as_str(), located.super_pod.as_str()),
        (super_ns.as_str(), "p1")
    );
    assert!(!located.super_uid.is_empty() && !located.tenant_uid.is_empty());
    let back = translation
        .to_tenant(v1::ToTenantRequest {
            namespace: super_ns.clone(),
            pod: "p1".into(),
        })
        .await?
        .into_inner();
    assert_eq!(
        (
            back.cluster_key.as_str(),
            back.tenant_namespace.as_str(),
            back.tenant_pod.as_str()
        ),
        (key.as_str(), "app", "p1")
    );

    // Deleting the tenant pod deletes the super pod, which invalidates its translation.
    let mut stream = translation
        .watch_translations(v1::WatchTranslationsRequest {})
        .await?
        .into_inner();
    let mut snapshot = Vec::new();
    loop {
        let msg = stream
            .message()
            .await?
            .context("stream ended in the snapshot")?;
        if let Some(v1::translation_event::Event::TenantUpserted(id)) = msg.event {
            snapshot.push(id.cluster_key);
        }
        if msg.snapshot_complete {
            break;
        }
    }
    assert!(snapshot.contains(&key) && snapshot.contains(&clusters.key(0)));
    Api::<Pod>::namespaced(t2.clone(), "app")
        .delete("p1", &DeleteParams::default())
        .await?;
    let invalidated = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let msg = stream
                .message()
                .await?
                .context("translation stream ended")?;
            if let Some(v1::translation_event::Event::PodInvalidated(loc)) = msg.event
                && loc.tenant_pod == "p1"
            {
                return anyhow::Ok(loc);
            }
        }
    })
    .await
    .context("no invalidation of p1 within 60 s")??;
    assert_eq!(invalidated.super_namespace, super_ns);

    // Restart: the registration is durable and still served.
    assert!(syncer.terminate(30)?, "graceful shutdown");
    let _syncer = SyncerProcess::start(&clusters, &data, &["--grpc-addr", &addr])?;
    let channel = grpc_channel(&data, &addr).await?;
    let mut registry = TenantRegistryClient::new(channel.clone());
    let mut translation = TranslationClient::new(channel);
    create_pod(&t2, "app", "p3", json!({}), json!({})).await?;
    wait_for("p3 synced after the restart", 60, || {
        let (sup, ns) = (sup.clone(), super_ns.clone());
        async move { Ok(super_pod(&sup, &ns, "p3").await?.map(|_| ())) }
    })
    .await
    .inspect_err(|_| print_log(&data))?;
    let status = status_of(&mut registry, &key)
        .await?
        .context("registration lost in the restart")?;
    assert!(status.registered_at_ms >= registered_at);
    let same = registry.register(register(&spec)).await?.into_inner();
    assert!(!same.changed, "a restart keeps the registration as it was");

    // Unregister: the tenant's super namespaces go, and it leaves List and Watch.
    let mut watch = registry
        .watch(v1::WatchRequest {
            min_interval_ms: 200,
        })
        .await?
        .into_inner();
    let gone = registry
        .unregister(v1::UnregisterRequest {
            vc: spec.vc.clone(),
            allow_missing: false,
        })
        .await?
        .into_inner();
    assert!(gone.existed);
    wait_for("vc-2's super namespace deleted", 60, || {
        let (sup, ns) = (sup.clone(), super_ns.clone());
        async move {
            let left = Api::<Namespace>::all(sup).get_opt(&ns).await?;
            Ok(left.is_none().then_some(()))
        }
    })
    .await?;
    let removed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let msg = watch.message().await?.context("registry watch ended")?;
            if let Some(v1::tenant_event::Event::Removed(vc)) = msg.event {
                return anyhow::Ok(vc);
            }
        }
    })
    .await
    .context("no removal on the registry watch within 60 s")??;
    assert_eq!(Some(removed), spec.vc);
    assert!(status_of(&mut registry, &key).await?.is_none());
    let err = translation
        .to_super(v1::ToSuperRequest {
            cluster_key: key.clone(),
            namespace: "app".into(),
            pod: "p2".into(),
        })
        .await
        .err()
        .context("an unregistered tenant must not translate")?;
    assert_eq!(err.code(), Code::NotFound);

    // Register the same VC again: its sources start from scratch, so the pods it still has (p2, p3) and a
    // new one (p4) are synced into a fresh super namespace. The cleanup may still be finishing: UNAVAILABLE
    // until it is done.
    let again = wait_for("vc-2 registered again", 60, || {
        let mut registry = registry.clone();
        let spec = spec.clone();
        async move {
            match registry.register(register(&spec)).await {
                Ok(r) => Ok(Some(r.into_inner())),
                Err(s) if s.code() == Code::Unavailable => Ok(None),
                Err(s) => Err(s.into()),
            }
        }
    })
    .await?;
    assert_eq!(again.cluster_key, key);
    assert!(again.changed, "a re-registration starts the tenant again");
    create_pod(&t2, "app", "p4", json!({}), json!({})).await?;
    wait_for(
        "vc-2's old and new pods in the super cluster again",
        60,
        || {
            let (sup, ns) = (sup.clone(), super_ns.clone());
            async move {
                for pod in ["p2", "p3", "p4"] {
                    if super_pod(&sup, &ns, pod).await?.is_none() {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        },
    )
    .await
    .inspect_err(|_| print_log(&data))?;
    wait_for("vc-2 syncing again", 60, || {
        let mut registry = registry.clone();
        let key = key.clone();
        async move {
            Ok(status_of(&mut registry, &key)
                .await?
                .filter(|s| s.phase == v1::TenantPhase::Syncing as i32 && s.objects_synced >= 4))
        }
    })
    .await?;

    Ok(())
}

fn code<T>(r: std::result::Result<T, tonic::Status>) -> Result<Code> {
    match r {
        Ok(_) => bail!("expected an error"),
        Err(s) => Ok(s.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_unauthenticated_clients_and_bad_requests() -> Result<()> {
    let clusters = Clusters::start(1, 1).await?;
    let data = clusters.data_dir();
    let addr = format!("127.0.0.1:{}", free_port()?);
    let _syncer = SyncerProcess::start(&clusters, &data, &["--grpc-addr", &addr])?;
    let channel = grpc_channel(&data, &addr).await?;
    let health = HealthClient::new(channel.clone())
        .check(v1::HealthCheckRequest {})
        .await?
        .into_inner();
    assert_eq!(
        health.status,
        v1::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(health.tenants, 1);

    // Mutual TLS: a client without a certificate, with one from another CA, or in plain text is refused.
    let ca_pem = std::fs::read_to_string(data.join("grpc/ca.pem"))?;
    let no_cert = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .domain_name(DEFAULT_SERVER_NAME);
    let other = CertificateAuthority::generate()?;
    let intruder = other.issue_client("intruder")?;
    let foreign = TlsMaterial::new(&ca_pem, intruder.cert_pem, intruder.key_pem)?
        .client_config(DEFAULT_SERVER_NAME);
    for (what, tls) in [
        ("no client certificate", Some(no_cert)),
        ("a certificate of another CA", Some(foreign)),
        ("plain text", None),
    ] {
        let refused = match tls::connect(&addr, tls).await {
            Err(_) => true,
            Ok(ch) => HealthClient::new(ch)
                .check(v1::HealthCheckRequest {})
                .await
                .is_err(),
        };
        assert!(refused, "a client with {what} must be refused");
    }

    let mut registry = TenantRegistryClient::new(channel.clone());
    let mut translation = TranslationClient::new(channel);
    let good = spec_of(&clusters, 0)?;

    // INVALID_ARGUMENT.
    assert_eq!(
        code(registry.register(v1::RegisterRequest { spec: None }).await)?,
        Code::InvalidArgument
    );
    let mut bad_name = good.clone();
    bad_name.vc = Some(v1::VirtualClusterRef::new("team", "Not_A_Label", "u"));
    assert_eq!(
        code(registry.register(register(&bad_name)).await)?,
        Code::InvalidArgument
    );
    let mut bad_kubeconfig = good.clone();
    bad_kubeconfig.vc = Some(v1::VirtualClusterRef::new("team", "vc-x", "u"));
    bad_kubeconfig.kubeconfig = "clusters: [[[".into();
    assert_eq!(
        code(registry.register(register(&bad_kubeconfig)).await)?,
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            registry
                .unregister(v1::UnregisterRequest {
                    vc: None,
                    allow_missing: true
                })
                .await
        )?,
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            translation
                .to_super(v1::ToSuperRequest {
                    cluster_key: clusters.key(0),
                    namespace: "default".into(),
                    pod: String::new(),
                })
                .await
        )?,
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            translation
                .pods_on_node(v1::PodsOnNodeRequest {
                    cluster_key: String::new(),
                    node_name: String::new(),
                })
                .await
        )?,
        Code::InvalidArgument
    );

    // NOT_FOUND.
    let unknown = v1::VirtualClusterRef::new("team", "nobody", "u");
    assert_eq!(
        code(
            registry
                .unregister(v1::UnregisterRequest {
                    vc: Some(unknown.clone()),
                    allow_missing: false,
                })
                .await
        )?,
        Code::NotFound
    );
    let missing_ok = registry
        .unregister(v1::UnregisterRequest {
            vc: Some(unknown),
            allow_missing: true,
        })
        .await?
        .into_inner();
    assert!(!missing_ok.existed);
    assert_eq!(
        code(
            translation
                .to_super(v1::ToSuperRequest {
                    cluster_key: "no-such-tenant".into(),
                    namespace: "default".into(),
                    pod: "p".into(),
                })
                .await
        )?,
        Code::NotFound
    );
    assert_eq!(
        code(
            translation
                .to_tenant(v1::ToTenantRequest {
                    namespace: "kube-system".into(),
                    pod: "not-synced".into(),
                })
                .await
        )?,
        Code::NotFound
    );

    // FAILED_PRECONDITION: the configured VC cannot be re-registered with another uid or unregistered.
    let mut other_uid = good.clone();
    other_uid.vc = good.vc.clone().map(|mut vc| {
        vc.uid = "another-uid".into();
        vc
    });
    assert_eq!(
        code(registry.register(register(&other_uid)).await)?,
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            registry
                .unregister(v1::UnregisterRequest {
                    vc: good.vc.clone(),
                    allow_missing: false,
                })
                .await
        )?,
        Code::FailedPrecondition
    );
    let health = HealthClient::new(grpc_channel(&data, &addr).await?)
        .check(v1::HealthCheckRequest {})
        .await?
        .into_inner();
    assert_eq!(health.tenants, 1, "refused requests changed nothing");
    Ok(())
}
