//! End to end for the kinds beyond Namespace and Pod: the `syncer` binary against a simulated super cluster
//! and a simulated tenant. ConfigMaps, Secrets, ServiceAccounts, PVCs, Services and Endpoints appear in the
//! tenant namespace's super namespace with their rewriting; the super ClusterIP and statuses come back up;
//! deletes and updates follow the tenant; forged reserved labels are stripped; opt-in kinds are synced only
//! when enabled.

mod e2e_support;

use anyhow::{Context, Result};
use e2e_support::*;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_kinds_are_rewritten_down_report_back_up_and_follow_the_tenant() -> Result<()> {
    let clusters = Clusters::start(1, 1).await?;
    let sup = clusters.super_client().await?;
    let t = clusters.tenants[0].client().await?;
    create_namespace(&t, "shop").await?;
    let sns = clusters.super_ns(0, "shop");

    // Tenant objects before the syncer starts (initial lists) ...
    create::<ConfigMap>(&t, "shop", json!({
        "metadata": {"name": "settings", "labels": {"app": "shop", "tenancy.x-k8s.io/vcname": "evil",
            "tenancy.x-k8s.io/controlled": "false"}},
        "data": {"mode": "fast"}})).await?;
    create::<Secret>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "builder-token", "annotations": {
            "kubernetes.io/service-account.name": "builder",
            "kubernetes.io/service-account.uid": "sa-uid-1"}},
        "type": "kubernetes.io/service-account-token",
        "data": {"token": "dG9rZW4=", "namespace": "c2hvcA=="}}),
    )
    .await?;
    create::<ServiceAccount>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "builder"}, "automountServiceAccountToken": true,
        "secrets": [{"name": "builder-token"}], "imagePullSecrets": [{"name": "registry"}]}),
    )
    .await?;
    create::<PersistentVolumeClaim>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-of-the-tenant",
            "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await?;
    let web: Service = create(
        &t,
        "shop",
        json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .await?;
    // Endpoints the tenant's endpoints controller would compute for the selector service: not copied.
    create::<Endpoints>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.1.0.5"}], "ports": [{"port": 8080}]}]}),
    )
    .await?;
    // ... and an opt-in kind, off by default.
    create::<Ingress>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "web"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
    )
    .await?;

    let mut syncer = SyncerProcess::start(&clusters, &clusters.data_dir(), &[])?;

    // Live events after the start: a selector-less service with its own endpoints.
    create::<Service>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "db"}, "spec": {"ports": [{"port": 5432}]}}),
    )
    .await?;
    create::<Endpoints>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "db"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]}),
    )
    .await?;

    // ConfigMap: copied with the tenant's labels, the forged reserved ones replaced by the real marks.
    let cm: ConfigMap = wait_obj(&sup, &sns, "settings", "super configmap", |_| true).await?;
    assert_eq!(lab(&cm, "app").as_deref(), Some("shop"));
    assert_eq!(lab(&cm, "tenancy.x-k8s.io/vcname").as_deref(), Some("vc-1"));
    assert_eq!(
        lab(&cm, "tenancy.x-k8s.io/controlled").as_deref(),
        Some("true")
    );
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str),
        Some("fast")
    );

    // The tenant's root CA, renamed so it does not collide with the super cluster's own.
    let tenant_ca = Api::<ConfigMap>::namespaced(t.clone(), "default")
        .get("kube-root-ca.crt")
        .await?;
    let default_sns = clusters.super_ns(0, "default");
    let ca: ConfigMap = wait_obj(
        &sup,
        &default_sns,
        "tenant-kube-root-ca.crt",
        "renamed root CA",
        |_| true,
    )
    .await?;
    assert_eq!(ca.data, tenant_ca.data);
    assert_eq!(
        ann(&ca, "tenancy.x-k8s.io/name").as_deref(),
        Some("kube-root-ca.crt")
    );

    // Service-account token secret: Opaque, same name and data, account under the reserved prefix.
    let secret: Secret =
        wait_obj(&sup, &sns, "builder-token", "super token secret", |_| true).await?;
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let tenant_secret = Api::<Secret>::namespaced(t.clone(), "shop")
        .get("builder-token")
        .await?;
    assert_eq!(secret.data, tenant_secret.data);
    assert_eq!(
        ann(&secret, "tenancy.x-k8s.io/service-account.name").as_deref(),
        Some("builder")
    );
    assert_eq!(ann(&secret, "kubernetes.io/service-account.name"), None);

    // ServiceAccount: never automounts a super token, no secrets list, pull secrets kept.
    let sa: ServiceAccount =
        wait_obj(&sup, &sns, "builder", "super service account", |_| true).await?;
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert!(sa.secrets.unwrap_or_default().is_empty());
    assert_eq!(sa.image_pull_secrets.unwrap_or_default().len(), 1);

    // PVC: the tenant's volume name is not carried over (the super cluster binds its own).
    let pvc: PersistentVolumeClaim = wait_obj(&sup, &sns, "data", "super claim", |_| true).await?;
    assert_eq!(pvc.spec.as_ref().and_then(|s| s.volume_name.clone()), None);

    // Service: the super ClusterIP comes back as the tenant annotation; the tenant's own IP is immutable
    // and stays what its API server allocated.
    let super_web: Service = wait_obj(&sup, &sns, "web", "super service", |_| true).await?;
    let super_ip = super_web
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .context("super IP")?;
    let tenant_web: Service = wait_obj(
        &t,
        "shop",
        "web",
        "clusterIP annotation in the tenant",
        |s| ann(s, "transparency.tenancy.x-k8s.io/clusterIP").as_deref() == Some(super_ip.as_str()),
    )
    .await?;
    assert_eq!(
        tenant_web.spec.as_ref().and_then(|s| s.cluster_ip.clone()),
        web.spec.as_ref().and_then(|s| s.cluster_ip.clone()),
        "the tenant's spec.clusterIP is never rewritten"
    );

    // Endpoints: those of the selector-less service are copied; the selector service's are not.
    let db_ep: Endpoints = wait_obj(&sup, &sns, "db", "super endpoints of db", |_| true).await?;
    let ips: Vec<String> = db_ep
        .subsets
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.addresses.clone().unwrap_or_default())
        .map(|a| a.ip)
        .collect();
    assert_eq!(ips, vec!["192.0.2.10".to_owned()]);
    assert!(
        Api::<Endpoints>::namespaced(sup.clone(), &sns)
            .get_opt("web")
            .await?
            .is_none(),
        "endpoints of a selector service belong to the super cluster's controller"
    );
    assert!(
        Api::<Ingress>::namespaced(sup.clone(), &sns)
            .get_opt("web")
            .await?
            .is_none(),
        "Ingress is opt-in"
    );

    // Up: the super cluster binds the claim and reports a LoadBalancer address.
    Api::<PersistentVolumeClaim>::namespaced(sup.clone(), &sns)
        .patch_status(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
            "phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}})),
        )
        .await?;
    let claim: PersistentVolumeClaim = wait_obj(
        &t,
        "shop",
        "data",
        "tenant claim Bound",
        |c: &PersistentVolumeClaim| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        },
    )
    .await?;
    let status = claim.status.unwrap_or_default();
    assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert!(status.capacity.unwrap_or_default().contains_key("storage"));
    Api::<Service>::namespaced(sup.clone(), &sns)
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
            "loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}})),
        )
        .await?;
    wait_obj(
        &t,
        "shop",
        "web",
        "LoadBalancer status in the tenant",
        |s: &Service| {
            s.status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| i.iter().any(|i| i.ip.as_deref() == Some("203.0.113.7")))
        },
    )
    .await?;

    // Updates and deletes follow the tenant.
    Api::<ConfigMap>::namespaced(t.clone(), "shop")
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "safe"}})),
        )
        .await?;
    wait_obj(
        &sup,
        &sns,
        "settings",
        "configmap update down",
        |c: &ConfigMap| {
            c.data
                .as_ref()
                .and_then(|d| d.get("mode"))
                .map(String::as_str)
                == Some("safe")
        },
    )
    .await?;
    Api::<ConfigMap>::namespaced(t.clone(), "shop")
        .delete("settings", &DeleteParams::default())
        .await?;
    Api::<Secret>::namespaced(t.clone(), "shop")
        .delete("builder-token", &DeleteParams::default())
        .await?;
    Api::<Service>::namespaced(t.clone(), "shop")
        .delete("db", &DeleteParams::default())
        .await?;
    wait_gone::<ConfigMap>(&sup, &sns, "settings", "super configmap deleted").await?;
    wait_gone::<Secret>(&sup, &sns, "builder-token", "super secret deleted").await?;
    wait_gone::<Service>(&sup, &sns, "db", "super service deleted").await?;
    // Nothing was refused or reported along the way (a translation the super cluster rejects would be).
    let text = syncer.scrape().await?;
    assert_eq!(
        metric_sum(&text, "vc_syncer_reconcile_reports_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    // What the tenant did not delete is still there.
    assert!(
        Api::<ServiceAccount>::namespaced(sup.clone(), &sns)
            .get_opt("builder")
            .await?
            .is_some()
    );

    syncer.check_alive()?;
    assert!(syncer.terminate(30)?, "syncer did not stop on SIGTERM");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_in_kinds_sync_when_enabled() -> Result<()> {
    let clusters = Clusters::start(1, 1).await?;
    let sup = clusters.super_client().await?;
    let t = clusters.tenants[0].client().await?;
    create_namespace(&t, "shop").await?;
    let sns = clusters.super_ns(0, "shop");
    let mut syncer = SyncerProcess::start(
        &clusters,
        &clusters.data_dir(),
        &[
            "--resources",
            "default,Ingress,NetworkPolicy,PodDisruptionBudget",
        ],
    )?;

    create::<Ingress>(&t, "shop", json!({
        "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})).await?;
    create::<NetworkPolicy>(&t, "shop", json!({
        "metadata": {"name": "from-monitoring"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]}}))
    .await?;
    create::<PodDisruptionBudget>(
        &t,
        "shop",
        json!({
        "metadata": {"name": "web"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
    )
    .await?;

    wait_obj(&sup, &sns, "web", "super PDB", |p: &PodDisruptionBudget| {
        p.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .and_then(|s| s.match_labels)
            == Some([("app".to_owned(), "web".to_owned())].into())
    })
    .await?;
    let np: NetworkPolicy = wait_obj(
        &sup,
        &sns,
        "from-monitoring",
        "super network policy",
        |_| true,
    )
    .await?;
    let sel = np
        .spec
        .and_then(|s| s.ingress)
        .and_then(|i| i.into_iter().next())
        .and_then(|r| r.from)
        .and_then(|f| f.into_iter().next())
        .and_then(|p| p.namespace_selector)
        .and_then(|s| s.match_labels)
        .context("namespace selector")?;
    assert_eq!(
        sel.get("kubernetes.io/metadata.name"),
        Some(&clusters.super_ns(0, "monitoring")),
        "tenant namespace name translated to its super namespace"
    );
    assert_eq!(
        sel.get("tenancy.x-k8s.io/vcname").map(String::as_str),
        Some("vc-1")
    );

    wait_obj(&sup, &sns, "web", "super ingress", |_: &Ingress| true).await?;
    Api::<Ingress>::namespaced(sup.clone(), &sns)
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
            "loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}})),
        )
        .await?;
    wait_obj(
        &t,
        "shop",
        "web",
        "ingress status in the tenant",
        |i: &Ingress| {
            i.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| {
                    i.iter()
                        .any(|i| i.hostname.as_deref() == Some("lb.example.com"))
                })
        },
    )
    .await?;
    Api::<Ingress>::namespaced(t.clone(), "shop")
        .delete("web", &DeleteParams::default())
        .await?;
    wait_gone::<Ingress>(&sup, &sns, "web", "super ingress deleted").await?;
    let text = syncer.scrape().await?;
    assert_eq!(
        metric_sum(&text, "vc_syncer_reconcile_reports_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    syncer.check_alive()?;
    assert!(syncer.terminate(30)?, "syncer did not stop on SIGTERM");
    Ok(())
}
