//! What a registration over the gRPC registry carries beyond the tenant's identity, end to end (the `syncer`
//! binary as a child process, simulated super and tenant clusters):
//! * public super objects reach a tenant that joins while the syncer runs (the fan-out of a public object
//!   only runs when the super object changes), and again when the tenant is removed and registered anew;
//! * the VirtualCluster's `clusterDomain` ends the DNS search paths of the tenant's pods.

mod e2e_support;

use anyhow::{Result, bail};
use e2e_support::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tenancy_proto::v1;
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use tonic::Code;

const PUBLIC: &str = "tenancy.x-k8s.io/super.public";
const SUPER_UID: &str = "tenancy.x-k8s.io/super.uid";

async fn create_cluster_object<K>(api: &Api<K>, obj: serde_json::Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(&PostParams::default(), &serde_json::from_value(obj)?)
        .await?;
    Ok(())
}

fn labels(public: bool) -> serde_json::Value {
    if public {
        json!({ PUBLIC: "true" })
    } else {
        json!({})
    }
}

fn copied_from_super(meta: &kube::api::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(SUPER_UID))
}

/// Waits until the tenant has a copy (marked as coming from the super cluster) of every named object.
async fn wait_for_copies<K>(api: &Api<K>, names: &[&str], what: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(what, 60, || async {
        for name in names {
            match api.get_opt(name).await? {
                Some(obj) if copied_from_super(obj.meta()) => {}
                Some(obj) => bail!("{name} in the tenant is not a copy: {:?}", obj.meta()),
                None => return Ok(None),
            }
        }
        Ok(Some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_tenant_gets_public_objects_and_its_cluster_domain() -> Result<()> {
    let clusters = Clusters::start(1, 1).await?;
    // The tenant comes only through the registry.
    std::fs::remove_file(clusters.tenants_dir().join("vc-1.yaml"))?;
    let sup = clusters.super_client().await?;
    let tenant = clusters.tenants[0].client().await?;
    let super_sc: Api<StorageClass> = Api::all(sup.clone());
    let super_pc: Api<PriorityClass> = Api::all(sup.clone());
    let tenant_sc: Api<StorageClass> = Api::all(tenant.clone());
    let tenant_pc: Api<PriorityClass> = Api::all(tenant.clone());
    for (name, public) in [("fast", true), ("private", false)] {
        create_cluster_object(
            &super_sc,
            json!({"metadata": {"name": name, "labels": labels(public)},
                   "provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Delete"}),
        )
        .await?;
    }
    create_cluster_object(
        &super_pc,
        json!({"metadata": {"name": "tenant-high", "labels": labels(true)}, "value": 100_000}),
    )
    .await?;

    let data = clusters.data_dir();
    let addr = format!("127.0.0.1:{}", free_port()?);
    let _syncer = SyncerProcess::start(&clusters, &data, &["--grpc-addr", &addr])?;
    let mut registry = TenantRegistryClient::new(grpc_channel(&data, &addr).await?);
    let s = &clusters.specs[0];
    let spec = v1::TenantSpec {
        vc: Some(v1::VirtualClusterRef::new(&s.namespace, &s.name, &s.uid)),
        kubeconfig: std::fs::read_to_string(clusters.tenants[0].kubeconfig_path())?,
        cluster_domain: "tenant.example".into(),
        ..Default::default()
    };
    let first = registry
        .register(v1::RegisterRequest {
            spec: Some(spec.clone()),
        })
        .await?
        .into_inner();
    assert!(first.changed);
    wait_for_copies(&tenant_sc, &["fast"], "public StorageClass in the tenant")
        .await
        .inspect_err(|_| print_syncer_log(&data))?;
    wait_for_copies(
        &tenant_pc,
        &["tenant-high"],
        "public PriorityClass in the tenant",
    )
    .await?;
    assert_eq!(tenant_pc.get("tenant-high").await?.value, Some(100_000));
    assert!(
        tenant_sc.get_opt("private").await?.is_none(),
        "an object without the public label is not copied"
    );

    // The cluster domain: a pod's DNS search paths end in it.
    create::<Service>(
        &tenant,
        "kube-system",
        json!({"metadata": {"name": "kube-dns"},
               "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [{"port": 53, "protocol": "UDP"}]}}),
    )
    .await?;
    create_namespace(&tenant, "app").await?;
    create_pod(&tenant, "app", "web-0", json!({}), json!({})).await?;
    let super_pod: Pod = wait_obj(
        &sup,
        &clusters.super_ns(0, "app"),
        "web-0",
        "super pod",
        |_| true,
    )
    .await
    .inspect_err(|_| print_syncer_log(&data))?;
    let dns = super_pod
        .spec
        .and_then(|s| s.dns_config)
        .and_then(|d| d.searches);
    assert_eq!(
        dns,
        Some(vec![
            "app.svc.tenant.example".to_owned(),
            "svc.tenant.example".to_owned(),
            "tenant.example".to_owned()
        ])
    );

    // Removed: nothing reaches the tenant any more. Its copies are lost meanwhile, and a new public
    // object appears in the super cluster.
    registry
        .unregister(v1::UnregisterRequest {
            vc: spec.vc.clone(),
            allow_missing: false,
        })
        .await?;
    tenant_sc.delete("fast", &DeleteParams::default()).await?;
    create_cluster_object(
        &super_pc,
        json!({"metadata": {"name": "tenant-low", "labels": labels(true)}, "value": 10}),
    )
    .await?;

    // Registered again (once the removal has finished): every public object is there again.
    wait_for("the tenant registered again", 60, || {
        let mut registry = registry.clone();
        let spec = spec.clone();
        async move {
            match registry
                .register(v1::RegisterRequest { spec: Some(spec) })
                .await
            {
                Ok(r) => Ok(Some(r.into_inner())),
                Err(s) if s.code() == Code::Unavailable => Ok(None),
                Err(s) => Err(s.into()),
            }
        }
    })
    .await?;
    wait_for_copies(
        &tenant_sc,
        &["fast"],
        "public StorageClass back in the tenant",
    )
    .await
    .inspect_err(|_| print_syncer_log(&data))?;
    wait_for_copies(
        &tenant_pc,
        &["tenant-high", "tenant-low"],
        "public PriorityClasses in the tenant after re-registration",
    )
    .await?;
    assert!(tenant_sc.get_opt("private").await?.is_none());
    Ok(())
}
