//! The namespace and pod reconcilers against two API servers (super and tenant).

mod reconcile_support;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use reconcile_support::{Env, eventually, nginx};
use serde_json::json;
use syncer::naming::{
    ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID, ANNOTATION_VC_NAME, LABEL_CONTROLLED,
};

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_is_created_down_with_marks_and_without_tenant_token() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let t = env.create_tenant_pod(nginx("web", "nginx")).await?;
    env.reconcile(&env.pod_key("web", "nginx")).await?;

    let s = env
        .super_pods("web")
        .get("nginx")
        .await
        .context("super pod")?;
    assert_eq!(
        s.metadata.namespace.as_deref(),
        Some(env.super_ns("web").as_str())
    );
    assert_eq!(annotation(&s, ANNOTATION_UID), t.metadata.uid.as_deref());
    assert_eq!(annotation(&s, ANNOTATION_CLUSTER), Some(env.key()));
    assert_eq!(annotation(&s, ANNOTATION_NAMESPACE), Some("web"));
    assert_eq!(label(&s, ANNOTATION_VC_NAME), Some("vc1"));
    assert_eq!(label(&s, LABEL_CONTROLLED), Some("true"));
    assert_eq!(label(&s, "app"), Some("nginx"));
    let spec = s.spec.clone().unwrap_or_default();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(node_name(&s), None);
    assert_ne!(s.metadata.uid, t.metadata.uid);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_marks_do_not_reach_the_super_copy() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let mut pod = nginx("web", "forger");
    pod["metadata"]["annotations"] = json!({
        "tenancy.x-k8s.io/uid": "uid-of-a-victim",
        "tenancy.x-k8s.io/cluster": "victim-cluster",
        "tenancy.x-k8s.io/ownerReferences": "[{\"kind\":\"Forged\"}]",
        "transparency.tenancy.x-k8s.io/clusterIP": "10.0.0.1",
        "opaque.example.com/billing": "free",
        "note": "kept"
    });
    pod["metadata"]["labels"] = json!({
        "tenancy.x-k8s.io/vcname": "victim",
        "tenancy.x-k8s.io/controlled": "false",
        "tenancy.x-k8s.io/super.public": "true",
        "app": "forger"
    });
    let t = env.create_tenant_pod(pod).await?;
    env.reconcile(&env.pod_key("web", "forger")).await?;

    let s = env.super_pods("web").get("forger").await?;
    assert_eq!(annotation(&s, ANNOTATION_UID), t.metadata.uid.as_deref());
    assert_eq!(annotation(&s, ANNOTATION_CLUSTER), Some(env.key()));
    assert_eq!(annotation(&s, "opaque.example.com/billing"), None);
    assert_eq!(annotation(&s, "tenancy.x-k8s.io/ownerReferences"), None);
    assert_eq!(
        annotation(&s, "transparency.tenancy.x-k8s.io/clusterIP"),
        None
    );
    assert_eq!(label(&s, "tenancy.x-k8s.io/super.public"), None);
    assert_eq!(annotation(&s, "note"), Some("kept"));
    assert_eq!(label(&s, ANNOTATION_VC_NAME), Some("vc1"));
    assert_eq!(label(&s, LABEL_CONTROLLED), Some("true"));
    assert_eq!(label(&s, "app"), Some("forger"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_binding_flow_up_then_a_second_reconcile_writes_nothing() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    let s = env.run_super_pod("web", "nginx", "node-a").await?;

    env.reconcile(&key).await?;
    let t = env.tenant_pods("web").get("nginx").await?;
    assert_eq!(node_name(&t), Some("node-a"));
    let status = t.status.clone().unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.7"));
    assert_eq!(status.host_ip.as_deref(), Some("192.168.10.2"));
    let cs = status.container_statuses.unwrap_or_default();
    assert_eq!(cs.first().map(|c| c.ready), Some(true));
    assert_eq!(
        status
            .conditions
            .map(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        Some(true)
    );
    let _ = s;

    // Everything is in sync: another reconcile (view refreshed first) changes nothing anywhere.
    env.settle(&key, 3).await?;
    env.observe(&key).await?;
    let before = env.revisions().await?;
    env.reconcile(&key).await?;
    env.reconcile(&key).await?;
    assert_eq!(
        env.revisions().await?,
        before,
        "an in-sync pod must cause no write"
    );
    Ok(())
}

/// The binding is followed by a live read of the tenant pod; a tenant write that landed in between (here: a
/// label the user changed after the view was filled) must survive the metadata update that follows the bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_label_written_before_the_bind_is_not_reverted() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    let running = env.run_super_pod("web", "nginx", "node-a").await?;
    // The tenant already has the super status (written up before), but is not bound yet: the plan is
    // bind, then the metadata update (the super namespace the copy lives in).
    let tenant = env.tenant_pods("web");
    let mut t = tenant.get("nginx").await?;
    t.status = running.status.clone();
    tenant
        .replace_status("nginx", &PostParams::default(), &t)
        .await?;
    env.observe(&key).await?;
    // The user relabels the pod; the view has not seen it yet.
    let mut t = tenant.get("nginx").await?;
    t.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("generation".into(), "2".into());
    tenant.replace("nginx", &PostParams::default(), &t).await?;
    env.reconcile_only(&key).await?;

    let t = tenant.get("nginx").await?;
    assert_eq!(node_name(&t), Some("node-a"), "bound");
    assert!(
        annotation(&t, "tenancy.x-k8s.io/super-namespace-uid").is_some(),
        "the metadata update ran: {:?}",
        t.metadata.annotations
    );
    assert_eq!(
        label(&t, "generation"),
        Some("2"),
        "the user's label must not be reverted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_label_and_deadline_changes_flow_down() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    env.run_super_pod("web", "nginx", "node-a").await?;
    env.settle(&key, 4).await?;

    let api = env.tenant_pods("web");
    let mut t = api.get("nginx").await?;
    if let Some(spec) = t.spec.as_mut() {
        if let Some(c) = spec.containers.first_mut() {
            c.image = Some("nginx:1.28".into());
        }
        spec.active_deadline_seconds = Some(600);
    }
    t.metadata.labels = Some([("app".to_owned(), "nginx-v2".to_owned())].into());
    api.replace("nginx", &PostParams::default(), &t).await?;
    env.reconcile(&key).await?;

    let s = env.super_pods("web").get("nginx").await?;
    let spec = s.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.containers.first().and_then(|c| c.image.as_deref()),
        Some("nginx:1.28")
    );
    assert_eq!(spec.active_deadline_seconds, Some(600));
    assert_eq!(label(&s, "app"), Some("nginx-v2"));
    assert_eq!(label(&s, LABEL_CONTROLLED), Some("true"));
    assert_eq!(node_name(&s), Some("node-a"), "the super binding is kept");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preset_node_name_is_rejected_with_one_event() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let mut pod = nginx("web", "pinned");
    pod["spec"]["nodeName"] = json!("some-node");
    env.create_tenant_pod(pod).await?;
    let key = env.pod_key("web", "pinned");
    env.reconcile(&key).await?;
    env.reconcile(&key).await?;

    assert!(env.super_pods("web").get_opt("pinned").await?.is_none());
    let events = env.tenant_events("web", "pinned").await?;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.reason.as_deref(), Some("NotSupported"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_super_pod_of_someone_else_is_left_alone() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    // Someone else's pod holds the name in the super namespace.
    let foreign: Pod = serde_json::from_value(json!({
        "metadata": {"name": "nginx", "annotations": {
            ANNOTATION_CLUSTER: "another-tenant", ANNOTATION_NAMESPACE: "web", ANNOTATION_UID: "x"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}
    }))?;
    let foreign = env
        .super_pods("web")
        .create(&PostParams::default(), &foreign)
        .await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    // The view now knows the foreign pod too: still nothing happens to it.
    env.reconcile(&key).await?;
    env.tenant_pods("web")
        .delete("nginx", &DeleteParams::default())
        .await?;
    env.reconcile(&key).await?;

    let s = env.super_pods("web").get("nginx").await?;
    assert_eq!(s.metadata.uid, foreign.metadata.uid);
    assert_eq!(
        s.metadata.resource_version,
        foreign.metadata.resource_version
    );
    let events = env.tenant_events("web", "nginx").await?;
    assert_eq!(
        events
            .iter()
            .map(|e| e.reason.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["SuperNameConflict"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_deletion_deletes_super_pod_then_finishes_the_tenant_pod() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    env.run_super_pod("web", "nginx", "node-a").await?;
    env.settle(&key, 4).await?;

    // The tenant deletes a bound pod: it becomes Terminating with a grace period.
    let tenant_api = env.tenant_pods("web");
    tenant_api
        .delete(
            "nginx",
            &DeleteParams {
                grace_period_seconds: Some(7),
                ..DeleteParams::default()
            },
        )
        .await?;
    env.reconcile(&key).await?;
    let s = env.super_pods("web").get("nginx").await?;
    assert!(
        s.metadata.deletion_timestamp.is_some(),
        "super pod is terminating"
    );
    assert_eq!(s.metadata.deletion_grace_period_seconds, Some(7));
    assert!(
        tenant_api.get_opt("nginx").await?.is_some(),
        "tenant pod waits for the super pod"
    );

    // The super kubelet finishes; the tenant pod follows.
    env.super_pods("web")
        .delete(
            "nginx",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await?;
    env.reconcile(&key).await?;
    eventually(|| async { Ok(tenant_api.get_opt("nginx").await?.is_none().then_some(())) }).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_tenant_pod_deleted_removes_the_super_pod() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    assert!(env.super_pods("web").get_opt("nginx").await?.is_some());
    env.tenant_pods("web")
        .delete("nginx", &DeleteParams::default())
        .await?;
    env.reconcile(&key).await?;
    assert!(env.super_pods("web").get_opt("nginx").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_super_pod_deletes_bound_tenant_pod_and_recreates_unbound() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };

    // Bound: the super cluster deletes the pod, the tenant pod goes too.
    env.create_tenant_pod(nginx("web", "bound")).await?;
    let bound = env.pod_key("web", "bound");
    env.reconcile(&bound).await?;
    env.run_super_pod("web", "bound", "node-a").await?;
    env.settle(&bound, 4).await?;
    env.super_pods("web").delete("bound", &now).await?;
    env.reconcile(&bound).await?;
    assert!(env.tenant_pods("web").get_opt("bound").await?.is_none());

    // Not bound yet: the super pod is created again.
    let t = env.create_tenant_pod(nginx("web", "pending")).await?;
    let pending = env.pod_key("web", "pending");
    env.reconcile(&pending).await?;
    let first = env.super_pods("web").get("pending").await?;
    env.super_pods("web").delete("pending", &now).await?;
    env.reconcile(&pending).await?;
    let second = env.super_pods("web").get("pending").await?;
    assert_ne!(first.metadata.uid, second.metadata.uid);
    assert_eq!(
        annotation(&second, ANNOTATION_UID),
        t.metadata.uid.as_deref()
    );
    assert!(env.tenant_pods("web").get_opt("pending").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_tenant_pod_replaces_the_stale_super_copy() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let old = env.create_tenant_pod(nginx("web", "web-0")).await?;
    let key = env.pod_key("web", "web-0");
    env.reconcile(&key).await?;
    // Deleted and re-created under the same name before the syncer saw the deletion.
    env.tenant_pods("web")
        .delete("web-0", &DeleteParams::default())
        .await?;
    let new = env.create_tenant_pod(nginx("web", "web-0")).await?;
    assert_ne!(old.metadata.uid, new.metadata.uid);
    env.settle(&key, 4).await?;
    let s = env.super_pods("web").get("web-0").await?;
    assert_eq!(annotation(&s, ANNOTATION_UID), new.metadata.uid.as_deref());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tenant_pod_is_reported_not_retried() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    // A view entry that is not a Pod (as a buggy or hostile API server could send).
    let bad = json!({"metadata": {"name": "bad", "namespace": "web", "uid": "bad-uid", "resourceVersion": "1"},
        "spec": {"containers": "not-a-list"}});
    env.view
        .record_write(env.key(), "Pod", "web", "bad", Some(&bad))?;
    env.reconcile_only(&env.pod_key("web", "bad")).await?;
    let events = env.tenant_events("web", "bad").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason.as_deref(), Some("InvalidPod"));
    assert!(env.super_pods("web").get_opt("bad").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_is_retried_and_removed_tenant_is_dropped() -> Result<()> {
    let env = Env::start().await?;
    let mut key = env.pod_key("web", "nginx");
    key.cluster = "not-registered".into();
    let err = env.reconcile_only(&key).await.err().map(|e| e.code);
    assert_eq!(err, Some("unknown_tenant"));
    env.reconciler.tenants().remove("not-registered");
    assert!(env.reconcile_only(&key).await.is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_waits_for_its_super_namespace() -> Result<()> {
    let env = Env::start().await?;
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "late"}}))?;
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.tenant_client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    env.create_tenant_pod(nginx("late", "p")).await?;
    let key = env.pod_key("late", "p");
    let err = env.reconcile(&key).await.err().map(|e| e.code);
    assert_eq!(err, Some("not_found"));
    env.reconcile(&env.namespace_key("late")).await?;
    env.reconcile(&key).await?;
    assert!(env.super_pods("late").get_opt("p").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_from_a_stale_view_never_hits_the_new_owner_of_the_name() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    // Behind the view's back: our super pod is replaced by someone else's, and the tenant pod goes away.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    env.super_pods("web").delete("nginx", &now).await?;
    let foreign: Pod = serde_json::from_value(json!({"metadata": {"name": "nginx"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}}))?;
    let foreign = env
        .super_pods("web")
        .create(&PostParams::default(), &foreign)
        .await?;
    env.tenant_pods("web").delete("nginx", &now).await?;
    // The view still holds our old super pod; it only learns that the tenant pod is gone.
    env.view
        .record_write(env.key(), "Pod", "web", "nginx", None)?;
    env.reconcile_only(&key).await?;

    let s = env.super_pods("web").get("nginx").await?;
    assert_eq!(
        s.metadata.uid, foreign.metadata.uid,
        "the uid precondition protected the new pod"
    );
    assert!(s.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_is_not_placed_in_a_super_namespace_of_someone_else() -> Result<()> {
    let env = Env::start().await?;
    // The super namespace name is taken by a namespace the syncer did not create.
    let super_ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": env.super_ns("web")}}))?;
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.super_client.clone())
        .create(&PostParams::default(), &super_ns)
        .await?;
    let tenant_ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "web"}}))?;
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.tenant_client.clone())
        .create(&PostParams::default(), &tenant_ns)
        .await?;
    env.reconcile(&env.namespace_key("web")).await?;
    env.create_tenant_pod(nginx("web", "nginx")).await?;
    env.reconcile(&env.pod_key("web", "nginx")).await?;

    assert!(env.super_pods("web").get_opt("nginx").await?.is_none());
    let events = env.tenant_events("web", "nginx").await?;
    assert_eq!(
        events.first().and_then(|e| e.reason.as_deref()),
        Some("SuperNameConflict")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absence_in_a_lagging_view_deletes_nothing() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let t = env.create_tenant_pod(nginx("web", "nginx")).await?;
    let key = env.pod_key("web", "nginx");
    env.reconcile(&key).await?;
    let s = env.run_super_pod("web", "nginx", "node-a").await?;
    env.settle(&key, 4).await?;
    let super_ns = env.super_ns("web");

    // The view has not seen the super pod (e.g. a fresh view filled by relists in another order): the
    // bound tenant pod looks orphaned, but a live read shows its super pod.
    env.view.record_write(
        syncer::record::SUPER_CLUSTER,
        "Pod",
        &super_ns,
        "nginx",
        None,
    )?;
    env.reconcile_only(&key).await?;
    let live_t = env.tenant_pods("web").get_opt("nginx").await?;
    assert_eq!(live_t.and_then(|p| p.metadata.uid), t.metadata.uid);

    // The view has not seen the tenant pod: the super pod looks orphaned, but the tenant pod is there.
    env.observe(&key).await?;
    env.view
        .record_write(env.key(), "Pod", "web", "nginx", None)?;
    env.reconcile_only(&key).await?;
    let live_s = env.super_pods("web").get_opt("nginx").await?;
    assert_eq!(live_s.and_then(|p| p.metadata.uid), s.metadata.uid);
    assert!(
        env.super_pods("web")
            .get("nginx")
            .await?
            .metadata
            .deletion_timestamp
            .is_none()
    );
    Ok(())
}
