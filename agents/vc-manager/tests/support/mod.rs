//! Shared by the vc-manager integration tests: a simulated super cluster with the CRDs, the sample
//! ClusterVersion / VirtualCluster from `deploy/vc-manager/samples/`, and polling helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use testcluster::TestCluster;
use vc_api::{ClusterVersion, VirtualCluster};
use vc_manager::provision::Provisioner;
use vc_manager::reconcile::Context;

/// The sample ClusterVersion.
pub const SAMPLE_CV: &str =
    include_str!("../../../../deploy/vc-manager/samples/clusterversion.yaml");
/// The sample VirtualCluster.
pub const SAMPLE_VC: &str =
    include_str!("../../../../deploy/vc-manager/samples/virtualcluster.yaml");

/// Generous deadline for conditions under heavy CPU load.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A simulated super cluster with the CRDs installed.
pub async fn super_cluster() -> (TestCluster, kube::Client) {
    let cluster = TestCluster::start()
        .await
        .unwrap_or_else(|e| panic!("start super cluster: {e}"));
    let client = cluster
        .client()
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    vc_manager::install::install_crds(&client, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("install CRDs: {e}"));
    (cluster, client)
}

/// The reconcile context for `provisioner` with no syncer.
pub fn context(client: &kube::Client, provisioner: Arc<dyn Provisioner>) -> Arc<Context> {
    Arc::new(Context {
        client: client.clone(),
        provisioner,
        registrar: None,
        now: time::OffsetDateTime::now_utc,
    })
}

/// Creates the sample ClusterVersion (named `name`).
pub async fn create_cv(client: &kube::Client, name: &str) -> ClusterVersion {
    let mut cv: ClusterVersion =
        serde_yaml::from_str(SAMPLE_CV).unwrap_or_else(|e| panic!("sample cv: {e}"));
    cv.metadata.name = Some(name.to_string());
    Api::<ClusterVersion>::all(client.clone())
        .create(&PostParams::default(), &cv)
        .await
        .unwrap_or_else(|e| panic!("create cv: {e}"))
}

/// Creates a VirtualCluster `ns/name` from the sample, using ClusterVersion `cv`, with `edit` applied.
pub async fn create_vc(
    client: &kube::Client,
    ns: &str,
    name: &str,
    cv: &str,
    edit: impl FnOnce(&mut VirtualCluster),
) -> VirtualCluster {
    let mut vc: VirtualCluster =
        serde_yaml::from_str(SAMPLE_VC).unwrap_or_else(|e| panic!("sample vc: {e}"));
    vc.metadata.name = Some(name.to_string());
    vc.metadata.namespace = Some(ns.to_string());
    vc.spec.cluster_version_name = cv.to_string();
    edit(&mut vc);
    Api::<VirtualCluster>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &vc)
        .await
        .unwrap_or_else(|e| panic!("create vc: {e}"))
}

/// The VirtualCluster as stored now.
pub async fn get_vc(client: &kube::Client, ns: &str, name: &str) -> Option<VirtualCluster> {
    Api::<VirtualCluster>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get vc: {e}"))
}

/// Phase of `ns/name` as a string ("" when unset, "<gone>" when deleted).
pub async fn phase(client: &kube::Client, ns: &str, name: &str) -> String {
    match get_vc(client, ns, name).await {
        None => "<gone>".into(),
        Some(vc) => vc
            .status
            .and_then(|s| s.phase)
            .map(|p| p.to_string())
            .unwrap_or_default(),
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after [`DEADLINE`] with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes a StatefulSet's status as its controller would once every replica is ready.
pub async fn mark_ready(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let sts = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get sts {ns}/{name}: {e}"));
    let replicas = sts.spec.replicas.unwrap_or(1);
    let status = json!({"status": {
        "replicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "currentReplicas": replicas,
        "updatedReplicas": replicas,
        "observedGeneration": sts.metadata.generation.unwrap_or(1),
    }});
    api.patch_status(
        &sts.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
    .unwrap_or_else(|e| panic!("patch sts status: {e}"));
}

/// A Secret's value as text.
pub async fn secret_value(
    client: &kube::Client,
    ns: &str,
    name: &str,
    key: &str,
) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get secret: {e}"))?;
    let bytes = secret.data?.get(key)?.0.clone();
    String::from_utf8(bytes).ok()
}
