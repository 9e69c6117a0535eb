//! The native provisioner against a simulated super cluster: objects, readiness from StatefulSet status,
//! idempotence (no write on a second reconcile), validation without leftovers, the service-account key
//! surviving a re-apply, and finalizer-driven deletion through the running controller.

mod support;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use support::*;
use vc_api::conditions::{self, reasons};
use vc_api::secrets as names;
use vc_api::{Phase, VirtualCluster};
use vc_manager::provision::native::Native;
use vc_manager::reconcile::{Context, reconcile};

async fn reconcile_now(ctx: &Arc<Context>, ns: &str, name: &str) {
    let vc = get_vc(&ctx.client, ns, name)
        .await
        .unwrap_or_else(|| panic!("vc {ns}/{name} missing"));
    reconcile(Arc::new(vc), ctx.clone())
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
}

fn cluster_ns(vc: &VirtualCluster) -> String {
    vc.status
        .as_ref()
        .and_then(|s| s.cluster_namespace.clone())
        .unwrap_or_else(|| panic!("no clusterNamespace"))
}

#[tokio::test]
async fn provisions_waits_for_statefulsets_then_runs_and_second_reconcile_writes_nothing() {
    let (cluster, client) = super_cluster().await;
    let sim = cluster.simulator().unwrap_or_else(|| panic!("simulator"));
    let ctx = context(&client, Arc::new(Native));
    create_cv(&client, "cv-native").await;
    create_vc(&client, "default", "vc1", "cv-native", |_| {}).await;

    reconcile_now(&ctx, "default", "vc1").await;
    let vc = get_vc(&client, "default", "vc1")
        .await
        .unwrap_or_else(|| panic!("vc"));
    let status = vc.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(Phase::Provisioning), "{status:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some(reasons::WAITING_FOR_COMPONENTS)
    );
    assert!(vc.finalizers().iter().any(|f| f == vc_api::FINALIZER));
    let root = cluster_ns(&vc);
    assert_eq!(
        root,
        syncer::naming::cluster_key("default", "vc1", &vc.uid().unwrap_or_default())
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&root)
            .await
            .ok()
            .flatten()
            .is_some()
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), &root)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=vc-manager"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut secret_names: Vec<String> = secrets.items.iter().map(|s| s.name_any()).collect();
    secret_names.sort();
    assert_eq!(
        secret_names,
        vec![
            names::ADMIN_KUBECONFIG,
            names::APISERVER_CA,
            names::CONTROLLER_MANAGER_KUBECONFIG,
            names::ETCD_CA,
            names::FRONT_PROXY_CA,
            names::ROOT_CA,
            names::SERVICE_ACCOUNT,
        ]
    );
    let sts = Api::<StatefulSet>::namespaced(client.clone(), &root);
    for name in ["etcd", "apiserver", "controller-manager"] {
        let s = sts
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("sts {name}: {e}"));
        assert_eq!(
            s.labels().get(names::LABEL_VC_UID),
            vc.uid().as_ref(),
            "sts {name} labelled for its VC"
        );
    }
    // Nothing changed: a second reconcile while waiting writes nothing.
    let before = sim.revision();
    reconcile_now(&ctx, "default", "vc1").await;
    assert_eq!(
        sim.revision(),
        before,
        "second reconcile while waiting wrote"
    );

    // The StatefulSets become ready (as their controller would report it).
    for name in ["etcd", "apiserver", "controller-manager"] {
        mark_ready(&client, &root, name).await;
    }
    reconcile_now(&ctx, "default", "vc1").await;
    let vc = get_vc(&client, "default", "vc1")
        .await
        .unwrap_or_else(|| panic!("vc"));
    let status = vc.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(Phase::Running), "{status:?}");
    assert_eq!(status.observed_generation, vc.metadata.generation);
    let ready =
        conditions::get(&status.conditions, conditions::READY).unwrap_or_else(|| panic!("Ready"));
    assert_eq!(ready.status, "True");
    let registered = conditions::get(&status.conditions, conditions::REGISTERED)
        .unwrap_or_else(|| panic!("Registered"));
    assert_eq!(
        (registered.status.as_str(), registered.reason.as_str()),
        ("False", reasons::NO_SYNCER)
    );

    // Idempotent: reconciling the same state again writes nothing.
    let before = sim.revision();
    reconcile_now(&ctx, "default", "vc1").await;
    reconcile_now(&ctx, "default", "vc1").await;
    assert_eq!(
        sim.revision(),
        before,
        "reconciling a Running VC wrote to the super cluster"
    );

    // The admin kubeconfig verifies the tenant root CA and names the apiserver Service; the serving
    // certificate covers the Service's ClusterIP.
    let admin = secret_value(
        &client,
        &root,
        names::ADMIN_KUBECONFIG,
        names::ADMIN_KUBECONFIG_KEY,
    )
    .await
    .unwrap_or_else(|| panic!("admin kubeconfig"));
    let root_ca = secret_value(&client, &root, names::ROOT_CA, names::TLS_CRT)
        .await
        .unwrap_or_else(|| panic!("root ca"));
    let (server, ca) =
        vc_manager::kubeconfig::server_and_ca(&admin).unwrap_or_else(|| panic!("parse"));
    assert_eq!(ca, root_ca);
    assert_eq!(server, format!("https://apiserver-svc.{root}:6443"));
    assert!(!admin.contains("insecure-skip-tls-verify"));
    let svc = Api::<Service>::namespaced(client.clone(), &root)
        .get("apiserver-svc")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    let serving = secret_value(&client, &root, names::APISERVER_CA, names::TLS_CRT)
        .await
        .unwrap_or_else(|| panic!("serving cert"));
    let info = vc_manager::pki::cert_info(&serving).unwrap_or_else(|| panic!("parse cert"));
    assert!(
        info.ips.iter().any(|ip| ip.to_string() == cluster_ip),
        "{cluster_ip} not in {:?}",
        info.ips
    );
    assert!(vc_manager::pki::signed_by(&serving, &root_ca));
}

#[tokio::test]
async fn reapply_with_a_new_pki_lifetime_reissues_certificates_but_keeps_the_service_account_key() {
    let (_cluster, client) = super_cluster().await;
    let ctx = context(&client, Arc::new(Native));
    create_cv(&client, "cv-sa").await;
    create_vc(&client, "default", "vc-sa", "cv-sa", |_| {}).await;
    reconcile_now(&ctx, "default", "vc-sa").await;
    let vc = get_vc(&client, "default", "vc-sa")
        .await
        .unwrap_or_else(|| panic!("vc"));
    let root = cluster_ns(&vc);
    let sa_before = secret_value(&client, &root, names::SERVICE_ACCOUNT, names::TLS_KEY).await;
    let cert_before = secret_value(&client, &root, names::APISERVER_CA, names::TLS_CRT).await;
    assert!(sa_before.is_some() && cert_before.is_some());

    // Re-apply with another certificate lifetime.
    Api::<VirtualCluster>::namespaced(client.clone(), "default")
        .patch(
            "vc-sa",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"pkiExpireDays": 30}})),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    reconcile_now(&ctx, "default", "vc-sa").await;
    let cert_after = secret_value(&client, &root, names::APISERVER_CA, names::TLS_CRT)
        .await
        .unwrap_or_default();
    assert_ne!(
        Some(cert_after.clone()),
        cert_before,
        "certificate re-issued"
    );
    let info = vc_manager::pki::cert_info(&cert_after).unwrap_or_else(|| panic!("parse"));
    assert_eq!((info.not_after - info.not_before).whole_days(), 30);
    let sa_after = secret_value(&client, &root, names::SERVICE_ACCOUNT, names::TLS_KEY).await;
    assert_eq!(
        sa_after, sa_before,
        "the service-account key must never be regenerated"
    );
}

async fn managed_namespaces(client: &kube::Client) -> usize {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=vc-manager"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .len()
}

#[tokio::test]
async fn invalid_virtual_clusters_end_in_error_without_leftovers() {
    let (_cluster, client) = super_cluster().await;
    let ctx = context(&client, Arc::new(Native));
    create_cv(&client, "cv-ok").await;
    create_vc(&client, "default", "no-cv", "does-not-exist", |_| {}).await;
    create_vc(&client, "default", "bad-cidr", "cv-ok", |vc| {
        vc.spec.service_cidr = Some("10.0.0.0/33".into());
    })
    .await;
    let long = "x".repeat(60);
    create_vc(&client, "default", &long, "cv-ok", |_| {}).await;
    for (name, reason) in [
        ("no-cv", reasons::CLUSTER_VERSION_NOT_FOUND),
        ("bad-cidr", reasons::INVALID_SERVICE_CIDR),
        (long.as_str(), reasons::NAME_TOO_LONG),
    ] {
        reconcile_now(&ctx, "default", name).await;
        let vc = get_vc(&client, "default", name)
            .await
            .unwrap_or_else(|| panic!("vc"));
        let status = vc.status.clone().unwrap_or_default();
        assert_eq!(status.phase, Some(Phase::Error), "{name}: {status:?}");
        assert_eq!(status.reason.as_deref(), Some(reason), "{name}");
        let valid = conditions::get(&status.conditions, conditions::VALID)
            .unwrap_or_else(|| panic!("{name}: Valid condition"));
        assert_eq!(
            (valid.status.as_str(), valid.reason.as_str()),
            ("False", reason)
        );
        assert!(
            vc.finalizers().is_empty(),
            "{name}: no finalizer on an invalid VC"
        );
    }
    assert_eq!(
        managed_namespaces(&client).await,
        0,
        "an invalid VC left a namespace"
    );
    let secrets = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=vc-manager"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(secrets.items.is_empty());
    // A ClusterVersion without an apiserver template is refused for the native provisioner.
    let mut cv = create_cv(&client, "cv-broken").await;
    cv.spec.api_server = None;
    Api::<vc_api::ClusterVersion>::all(client.clone())
        .replace("cv-broken", &Default::default(), &cv)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    create_vc(&client, "default", "broken", "cv-broken", |_| {}).await;
    reconcile_now(&ctx, "default", "broken").await;
    let vc = get_vc(&client, "default", "broken")
        .await
        .unwrap_or_else(|| panic!("vc"));
    assert_eq!(
        vc.status.and_then(|s| s.reason).as_deref(),
        Some(reasons::INVALID_CLUSTER_VERSION)
    );
    assert_eq!(managed_namespaces(&client).await, 0);
}

#[tokio::test]
async fn controller_reacts_to_statefulset_status_and_deletion_removes_everything() {
    let (_cluster, client) = super_cluster().await;
    let ctx = context(&client, Arc::new(Native));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(vc_manager::controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));
    // The VirtualCluster first names a ClusterVersion that does not exist yet: Error, then creating
    // the ClusterVersion wakes it.
    create_vc(&client, "default", "vc-ctl", "cv-late", |_| {}).await;
    wait_for("phase Error", || async {
        (phase(&client, "default", "vc-ctl").await == "Error").then_some(())
    })
    .await;
    create_cv(&client, "cv-late").await;
    let root = wait_for("clusterNamespace and StatefulSets", || async {
        let vc = get_vc(&client, "default", "vc-ctl").await?;
        let root = vc.status?.cluster_namespace?;
        let sts = Api::<StatefulSet>::namespaced(client.clone(), &root);
        let n = sts.list(&ListParams::default()).await.ok()?.items.len();
        (n == 3).then_some(root)
    })
    .await;
    assert_eq!(phase(&client, "default", "vc-ctl").await, "Provisioning");
    for name in ["etcd", "apiserver", "controller-manager"] {
        mark_ready(&client, &root, name).await;
    }
    wait_for("phase Running", || async {
        (phase(&client, "default", "vc-ctl").await == "Running").then_some(())
    })
    .await;

    // A tenant namespace as the syncer would have made it: deleted with the VC.
    let tenant_ns: Namespace = serde_json::from_value(json!({"metadata": {
        "name": syncer::naming::super_namespace(&root, "default"),
        "labels": {"tenancy.x-k8s.io/vcname": "vc-ctl", "tenancy.x-k8s.io/vcnamespace": "default"},
        "annotations": {"tenancy.x-k8s.io/cluster": root.clone()},
    }}))
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &tenant_ns)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    Api::<VirtualCluster>::namespaced(client.clone(), "default")
        .delete("vc-ctl", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("VC and its namespaces gone", || async {
        let vc_gone = get_vc(&client, "default", "vc-ctl").await.is_none();
        let namespaces = Api::<Namespace>::all(client.clone());
        let root_gone = namespaces.get_opt(&root).await.ok()?.is_none();
        let tenant_gone = namespaces
            .get_opt(&syncer::naming::super_namespace(&root, "default"))
            .await
            .ok()?
            .is_none();
        (vc_gone && root_gone && tenant_gone).then_some(())
    })
    .await;
    let _ = stop_tx.send(());
    let _ = controller.await;
}
