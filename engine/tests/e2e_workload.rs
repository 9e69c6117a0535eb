//! A tenant workload end to end: the `syncer` binary against a simulated super cluster with its scheduler and
//! kubelet on, and a simulated tenant. The test plays the tenant's controller-manager (a Deployment, the
//! ReplicaSet it owns and the pods that ReplicaSet owns) and its DNS add-on (`kube-system/kube-dns`).
//!
//! Asserted: the pods reach Running in the tenant, bound to virtual nodes; their super copies live in the
//! translated namespace with the rewrites (explicit dnsConfig at the super ClusterIP of the tenant's kube-dns,
//! the tenant's own service-account token in an Opaque super secret, the tenant root CA renamed, affinity
//! namespaces translated, downward-API namespace/uid read from the syncer's annotations); the tenant's owner
//! references are kept as an annotation and not as ownerReferences (a super garbage collector would delete a
//! copy whose owner uid does not exist in the super cluster); a Service gets its super ClusterIP in the tenant;
//! an Event about a super pod shows up in the tenant namespace about the tenant pod.

mod e2e_support;

use anyhow::{Context, Result};
use e2e_support::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Node, Pod, PodAffinityTerm, Secret, Service, ServiceAccount,
};
use kube::api::{Api, PostParams};
use serde_json::json;

const NS: &str = "shop";
const PODS: [&str; 2] = ["web-7d9c5b8f4-k2x9p", "web-7d9c5b8f4-q8m4z"];
const ANN_NAMESPACE: &str = "tenancy.x-k8s.io/namespace";
const ANN_UID: &str = "tenancy.x-k8s.io/uid";
const ANN_OWNERS: &str = "tenancy.x-k8s.io/ownerReferences";
const ANN_CLUSTER_IP: &str = "transparency.tenancy.x-k8s.io/clusterIP";

fn owner(kind: &str, name: &str, uid: Option<&String>) -> serde_json::Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
}

/// A pod as a ReplicaSet controller writes it from a realistic template.
fn workload_pod(name: &str, rs_uid: Option<&String>) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "web", "pod-template-hash": "7d9c5b8f4"},
                     "ownerReferences": owner("ReplicaSet", "web-7d9c5b8f4", rs_uid)},
        "spec": {
            "serviceAccountName": "web",
            "dnsPolicy": "ClusterFirst",
            "initContainers": [{"name": "migrate", "image": "registry.example/web:1.4",
                                "command": ["/bin/migrate"],
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]}],
            "containers": [{
                "name": "web", "image": "registry.example/web:1.4",
                "ports": [{"containerPort": 8080}],
                "env": [
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                ],
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/web"},
                    {"name": "credentials", "mountPath": "/etc/credentials"},
                    {"name": "kube-api-access-7xk2q", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                     "readOnly": true},
                ],
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "credentials", "secret": {"secretName": "web-credentials"}},
                {"name": "kube-api-access-7xk2q", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
            "affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}],
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "cache"}}, "namespaces": [NS],
                    "topologyKey": "topology.kubernetes.io/zone"}}],
            }},
        }
    })
}

/// Sets up what the tenant has before its workload: DNS add-on, namespace, service account, configuration.
async fn tenant_basics(t: &kube::Client) -> Result<()> {
    create::<Service>(
        t,
        "kube-system",
        json!({"metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
               "spec": {"selector": {"k8s-app": "kube-dns"},
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
    )
    .await?;
    create_namespace(t, NS).await?;
    create::<ServiceAccount>(t, NS, json!({"metadata": {"name": "web"}})).await?;
    // `kube-root-ca.crt` is published into every namespace by the tenant API server itself.
    create::<ConfigMap>(
        t,
        NS,
        json!({"metadata": {"name": "web-config"}, "data": {"web.yaml": "listen: 8080\n"}}),
    )
    .await?;
    create::<Secret>(
        t,
        NS,
        json!({"metadata": {"name": "web-credentials"}, "type": "Opaque",
               "data": {"password": "aHVudGVyMg=="}}),
    )
    .await?;
    Ok(())
}

/// The Deployment → ReplicaSet → pods chain, as the tenant's controllers write it.
async fn tenant_workload(t: &kube::Client) -> Result<()> {
    let template = workload_pod("", None);
    let deployment: Deployment = create(
        t,
        NS,
        json!({"metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]}}}),
    )
    .await?;
    let rs: ReplicaSet = create(
        t,
        NS,
        json!({"metadata": {"name": "web-7d9c5b8f4",
                            "labels": {"app": "web", "pod-template-hash": "7d9c5b8f4"},
                            "ownerReferences": owner("Deployment", "web", deployment.metadata.uid.as_ref())},
               "spec": {"replicas": 2,
                        "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9c5b8f4"}},
                        "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "7d9c5b8f4"}},
                                     "spec": template["spec"]}}}),
    )
    .await?;
    for name in PODS {
        create::<Pod>(t, NS, workload_pod(name, rs.metadata.uid.as_ref())).await?;
    }
    Ok(())
}

fn cluster_ip(svc: &Service) -> Option<String> {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.clone())
}

fn running(p: &Pod) -> bool {
    let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    bound && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn anti_affinity_terms(p: &Pod) -> (Vec<PodAffinityTerm>, Vec<PodAffinityTerm>) {
    let anti = p
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.clone())
        .unwrap_or_default();
    (
        anti.required_during_scheduling_ignored_during_execution
            .unwrap_or_default(),
        anti.preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.pod_affinity_term)
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deployment_runs_with_its_pods_rewritten_and_reports_back() -> Result<()> {
    let clusters = Clusters::start(1, 2).await?;
    let sup = clusters.super_client().await?;
    let t = clusters.tenants[0].client().await?;
    let sns = clusters.super_ns(0, NS);
    tenant_basics(&t).await?;
    let data = clusters.data_dir();
    let _syncer = SyncerProcess::start(&clusters, &data, &[])?;
    let web: Service = create(
        &t,
        NS,
        json!({"metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
    .await?;
    tenant_workload(&t).await?;

    // The pods run in the tenant, on virtual nodes.
    let mut tenant_pods = Vec::new();
    for name in PODS {
        tenant_pods.push(wait_obj::<Pod>(&t, NS, name, "tenant pod Running", running).await?);
    }
    for p in &tenant_pods {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .context("node")?;
        let vn = Api::<Node>::all(t.clone()).get(&node).await?;
        assert_eq!(
            lab(&vn, "tenancy.x-k8s.io/virtualnode").as_deref(),
            Some("true"),
            "{node} is a virtual node"
        );
    }

    // The super copies and their rewrites.
    let dns_super_ip = cluster_ip(
        &wait_obj::<Service>(
            &sup,
            &clusters.super_ns(0, "kube-system"),
            "kube-dns",
            "super kube-dns",
            |s| cluster_ip(s).is_some(),
        )
        .await?,
    )
    .context("kube-dns super IP")?;
    for tenant_pod in &tenant_pods {
        let name = tenant_pod.metadata.name.as_deref().context("name")?;
        let sp: Pod = wait_obj(&sup, &sns, name, "super pod", |_| true).await?;
        assert_eq!(
            ann(&sp, ANN_NAMESPACE).as_deref(),
            Some(NS),
            "tenant namespace mark"
        );
        assert_eq!(ann(&sp, ANN_UID), tenant_pod.metadata.uid);
        // Owner references: kept as an annotation, not as references to a uid the super cluster lacks.
        assert!(
            sp.metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty),
            "super pod must not carry tenant ownerReferences: {:?}",
            sp.metadata.owner_references
        );
        let owners = ann(&sp, ANN_OWNERS).context("owner references annotation")?;
        let owners: serde_json::Value = serde_json::from_str(&owners)?;
        assert_eq!(owners[0]["kind"], "ReplicaSet");
        assert_eq!(owners[0]["name"], "web-7d9c5b8f4");
        let spec = sp.spec.clone().context("super pod spec")?;
        // Cluster DNS: explicit, at the super ClusterIP of the tenant's kube-dns.
        assert_eq!(spec.dns_policy.as_deref(), Some("None"));
        let dns = spec.dns_config.clone().context("dnsConfig")?;
        assert_eq!(dns.nameservers, Some(vec![dns_super_ip.clone()]));
        assert_eq!(
            dns.searches,
            Some(vec![
                format!("{NS}.svc.cluster.local"),
                "svc.cluster.local".into(),
                "cluster.local".into()
            ])
        );
        // The tenant's own token, never a super one.
        assert_eq!(spec.automount_service_account_token, Some(false));
        let access = spec
            .volumes
            .as_ref()
            .and_then(|v| v.iter().find(|v| v.name == "kube-api-access-7xk2q"))
            .and_then(|v| v.projected.clone())
            .context("projected volume")?;
        let sources = access.sources.unwrap_or_default();
        assert!(sources.iter().all(|s| s.service_account_token.is_none()));
        assert!(
            sources
                .iter()
                .filter_map(|s| s.secret.as_ref())
                .any(|s| s.name == "vc-token-web"),
            "token from the tenant token secret: {sources:?}"
        );
        assert!(
            sources
                .iter()
                .filter_map(|s| s.config_map.as_ref())
                .any(|c| c.name == "tenant-kube-root-ca.crt"),
            "tenant root CA renamed: {sources:?}"
        );
        // Downward API: tenant values through the syncer's annotations.
        let env = spec.containers[0].env.clone().unwrap_or_default();
        let field = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value_from.as_ref())
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.clone())
        };
        assert_eq!(
            field("POD_NAMESPACE").as_deref(),
            Some("metadata.annotations['tenancy.x-k8s.io/namespace']")
        );
        assert_eq!(
            field("POD_UID").as_deref(),
            Some("metadata.annotations['tenancy.x-k8s.io/uid']")
        );
        assert_eq!(
            spec.init_containers.as_ref().map(Vec::len),
            Some(1),
            "the init container is kept"
        );
        // Affinity: namespaces translated; the pod's own namespace named explicitly.
        let (required, preferred) = anti_affinity_terms(&sp);
        assert_eq!(required[0].namespaces, Some(vec![sns.clone()]));
        assert_eq!(preferred[0].namespaces, Some(vec![sns.clone()]));
    }
    // What the pods reference was synced too: the token secret holds a tenant token, the volumes' sources
    // exist in the super namespace.
    let token: Secret = wait_obj(&sup, &sns, "vc-token-web", "token secret", |_| true).await?;
    assert_eq!(token.type_.as_deref(), Some("Opaque"));
    assert!(token.data.as_ref().is_some_and(|d| d.contains_key("token")));
    wait_obj::<ConfigMap>(&sup, &sns, "web-config", "super web-config", |_| true).await?;
    wait_obj::<ConfigMap>(
        &sup,
        &sns,
        "tenant-kube-root-ca.crt",
        "super root CA",
        |_| true,
    )
    .await?;
    wait_obj::<Secret>(&sup, &sns, "web-credentials", "super secret", |_| true).await?;
    // Workload controllers' objects are not copied: the super cluster must not run its own replicas.
    assert!(
        Api::<ReplicaSet>::namespaced(sup.clone(), &sns)
            .list(&Default::default())
            .await?
            .items
            .is_empty()
    );

    // The Service gets its super ClusterIP in the tenant.
    let super_web: Service = wait_obj(&sup, &sns, "web", "super service", |s| {
        cluster_ip(s).is_some()
    })
    .await?;
    let super_ip = cluster_ip(&super_web).context("super IP")?;
    let tenant_web: Service = wait_obj(&t, NS, "web", "clusterIP annotation in the tenant", |s| {
        ann(s, ANN_CLUSTER_IP).as_deref() == Some(super_ip.as_str())
    })
    .await?;
    assert_eq!(
        cluster_ip(&tenant_web),
        cluster_ip(&web),
        "the tenant's own spec.clusterIP is immutable and stays"
    );

    // An Event about a super pod shows up in the tenant namespace, about the tenant pod.
    let super_pod: Pod = Api::namespaced(sup.clone(), &sns).get(PODS[0]).await?;
    let event_name = format!("{}.18a1f0c2d3e4b5a6", PODS[0]);
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": event_name},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": sns, "name": PODS[0],
                           "uid": super_pod.metadata.uid, "fieldPath": "spec.containers{web}"},
        "reason": "Started", "message": "Started container web", "type": "Normal", "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "kubelet",
                   "host": super_pod.spec.as_ref().and_then(|s| s.node_name.clone())}
    }))?;
    Api::<Event>::namespaced(sup.clone(), &sns)
        .create(&PostParams::default(), &ev)
        .await?;
    let copy: Event = wait_obj(&t, NS, &event_name, "tenant event", |_| true)
        .await
        .inspect_err(|_| print_syncer_log(&data))?;
    assert_eq!(copy.involved_object.namespace.as_deref(), Some(NS));
    assert_eq!(copy.involved_object.name.as_deref(), Some(PODS[0]));
    assert_eq!(copy.involved_object.uid, tenant_pods[0].metadata.uid);
    assert_eq!(copy.reason.as_deref(), Some("Started"));
    Ok(())
}
