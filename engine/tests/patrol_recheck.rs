//! The patroller against real API servers (simulated), with the view fed by hand so it can be made to lag:
//! what the view says is missing gets created through injected work; a super pod whose tenant pod is gone is
//! deleted; a super pod whose tenant pod the view has lost (but which still exists) is kept, because the
//! reconciler re-reads the tenant live before it deletes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use syncer::log::View;
use syncer::naming::{cluster_key, super_namespace};
use syncer::patrol::{PatrolConfig, Patroller, Verdict};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::reconcile::{Resources, SyncReconciler, TenantInfo, Tenants};
use testcluster::TestCluster;

/// Polls `f` every 100 ms for at most 60 s.
async fn within<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not reached in 60 s")
}

/// Records the live tenant object in the view, as the tenant watch would have.
async fn observe_tenant_pod(view: &View, key: &str, api: &Api<Pod>, name: &str) -> Result<()> {
    let pod = api.get(name).await?;
    view.record_write(key, "Pod", "web", name, Some(&serde_json::to_value(&pod)?))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_deleted_only_after_a_live_recheck() -> Result<()> {
    let super_cluster = TestCluster::start().await.context("super")?;
    let tenant_cluster = TestCluster::start().await.context("tenant")?;
    let super_client = super_cluster.client().await?;
    let tenant_client = tenant_cluster.client().await?;
    let key = cluster_key("team", "vc1", "3f0c2a9e-8a0e-4d1b-9d1e-0c6a2b4e5f71");
    let tenants = Tenants::new();
    tenants.insert(
        TenantInfo {
            cluster_key: key.clone(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        },
        tenant_client.clone(),
    );
    // Namespaces and pods only: the test is about pods, not about the kinds pod rewriting waits for.
    let resources = Resources::from_names(&["Namespace", "Pod"])?;
    let reconciler = SyncReconciler::new(
        super_client.clone(),
        tenants.clone(),
        tokio::runtime::Handle::current(),
    )
    .with_resources(resources.clone());
    let dir = tempfile::tempdir()?;
    let pipeline = Pipeline::start(
        PipelineConfig {
            shards: 2,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(500),
            ..PipelineConfig::new(dir.path())
        },
        Arc::new(reconciler),
    )?;
    let view = pipeline.view();
    // No super LIST here: the view is all the patroller sees.
    let patroller = Patroller::new(
        &pipeline,
        None,
        tenants.clone(),
        &resources,
        PatrolConfig::default(),
    );
    assert_eq!(patroller.kind_names(), vec!["Namespace", "Pod"]);

    // Tenant objects the view knows about (as the tenant watch would have recorded them).
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "web"}}))?;
    let ns = Api::<Namespace>::all(tenant_client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    view.record_write(
        &key,
        "Namespace",
        "",
        "web",
        Some(&serde_json::to_value(&ns)?),
    )?;
    let tenant_pods: Api<Pod> = Api::namespaced(tenant_client.clone(), "web");
    for name in ["keep", "ghost"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}
        }))?;
        tenant_pods.create(&PostParams::default(), &pod).await?;
        observe_tenant_pod(&view, &key, &tenant_pods, name).await?;
    }

    // Pass 1: nothing in the super cluster yet: three tenant objects are missing their copies.
    let report = patroller.pass(false).await;
    assert_eq!(report.count(Verdict::Missing), 3, "{report:?}");
    assert_eq!(report.enqueued, 3);
    assert_eq!(report.tenant_objects, 3);
    let super_pods: Api<Pod> = Api::namespaced(super_client.clone(), &super_namespace(&key, "web"));
    let keep_uid = within("super copies created through injected work", || async {
        let keep = super_pods.get_opt("keep").await?;
        let ghost = super_pods.get_opt("ghost").await?;
        Ok(match (keep, ghost) {
            (Some(k), Some(_)) => k.metadata.uid,
            _ => None,
        })
    })
    .await?;

    // The tenant deletes `ghost` (and the view hears of it); the view *loses* `keep`, which still exists
    // in the tenant cluster (a lagging view). Both look the same from the view: orphans.
    tenant_pods
        .delete("ghost", &DeleteParams::default().grace_period(0))
        .await?;
    within("ghost gone from the tenant", || async {
        Ok(tenant_pods.get_opt("ghost").await?.is_none().then_some(()))
    })
    .await?;
    for name in ["keep", "ghost"] {
        view.record_write(&key, "Pod", "web", name, None)?;
    }
    let report = patroller.pass(false).await;
    let orphans: Vec<&str> = report
        .found
        .iter()
        .filter(|f| f.verdict == Verdict::Orphan)
        .map(|f| f.key.name.as_str())
        .collect();
    assert_eq!(orphans, vec!["ghost", "keep"], "{report:?}");

    within("the real orphan is deleted", || async {
        Ok(super_pods.get_opt("ghost").await?.is_none().then_some(()))
    })
    .await?;
    // The re-check of `keep` read the tenant pod live and recorded it in the view.
    within("the live re-check restored keep in the view", || async {
        Ok(view.get(&key, "Pod", "web", "keep")?.map(|_| ()))
    })
    .await?;
    let keep = super_pods.get_opt("keep").await?;
    assert_eq!(
        keep.and_then(|k| k.metadata.uid),
        Some(keep_uid),
        "the super pod of an existing tenant pod is never deleted on the view's word"
    );

    // With the view caught up, nothing is missing or orphaned any more.
    let report = patroller.pass(false).await;
    assert_eq!(report.count(Verdict::Missing), 0, "{report:?}");
    assert_eq!(report.count(Verdict::Orphan), 0, "{report:?}");
    pipeline.shutdown();
    Ok(())
}
