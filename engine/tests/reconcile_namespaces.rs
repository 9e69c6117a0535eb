//! The namespace reconciler against two API servers (super and tenant).

mod reconcile_support;

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use reconcile_support::Env;
use serde_json::json;
use syncer::naming::{ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID, LABEL_CONTROLLED};

fn get<'a>(
    map: &'a Option<std::collections::BTreeMap<String, String>>,
    key: &str,
) -> Option<&'a str> {
    map.as_ref()?.get(key).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_is_created_updated_and_deleted_down() -> Result<()> {
    let env = Env::start().await?;
    let tenant_api: Api<Namespace> = Api::all(env.tenant_client.clone());
    let super_api: Api<Namespace> = Api::all(env.super_client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop",
        "labels": {"env": "prod", "tenancy.x-k8s.io/vcname": "forged"}}}))?;
    let t = tenant_api.create(&PostParams::default(), &ns).await?;
    let key = env.namespace_key("shop");
    env.reconcile(&key).await?;

    let super_name = env.super_ns("shop");
    let s = super_api.get(&super_name).await?;
    assert_eq!(
        get(&s.metadata.annotations, ANNOTATION_UID),
        t.metadata.uid.as_deref()
    );
    assert_eq!(
        get(&s.metadata.annotations, ANNOTATION_CLUSTER),
        Some(env.key())
    );
    assert_eq!(
        get(&s.metadata.annotations, ANNOTATION_NAMESPACE),
        Some("shop")
    );
    assert_eq!(get(&s.metadata.labels, "env"), Some("prod"));
    assert_eq!(
        get(&s.metadata.labels, "tenancy.x-k8s.io/vcname"),
        Some("vc1")
    );
    assert_eq!(get(&s.metadata.labels, LABEL_CONTROLLED), Some("true"));

    // In sync: nothing is written again.
    let before = (env.write_count(), env.revisions().await?);
    env.reconcile(&key).await?;
    env.reconcile(&key).await?;
    assert_eq!((env.write_count(), env.revisions().await?), before);

    // A label change flows down.
    let mut t = tenant_api.get("shop").await?;
    t.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("env".into(), "dev".into());
    tenant_api
        .replace("shop", &PostParams::default(), &t)
        .await?;
    env.reconcile(&key).await?;
    let s = super_api.get(&super_name).await?;
    assert_eq!(get(&s.metadata.labels, "env"), Some("dev"));

    // Deleting the tenant namespace deletes the super namespace.
    tenant_api.delete("shop", &DeleteParams::default()).await?;
    env.reconcile(&key).await?;
    let gone_or_terminating = super_api
        .get_opt(&super_name)
        .await?
        .is_none_or(|s| s.metadata.deletion_timestamp.is_some());
    assert!(gone_or_terminating);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_super_namespace_is_left_alone() -> Result<()> {
    let env = Env::start().await?;
    let super_api: Api<Namespace> = Api::all(env.super_client.clone());
    let super_name = env.super_ns("shop");
    let foreign: Namespace = serde_json::from_value(json!({"metadata": {"name": super_name,
        "labels": {"owner": "someone"}}}))?;
    let foreign = super_api.create(&PostParams::default(), &foreign).await?;
    let tenant_api: Api<Namespace> = Api::all(env.tenant_client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop"}}))?;
    tenant_api.create(&PostParams::default(), &ns).await?;
    let key = env.namespace_key("shop");
    env.reconcile(&key).await?;
    tenant_api.delete("shop", &DeleteParams::default()).await?;
    env.reconcile(&key).await?;

    let s = super_api.get(&super_name).await?;
    assert_eq!(s.metadata.uid, foreign.metadata.uid);
    assert_eq!(
        s.metadata.resource_version,
        foreign.metadata.resource_version
    );
    assert!(s.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_the_super_cluster_rejects_is_not_retried() -> Result<()> {
    // A VC name too long for a label value: the super API server refuses the copy with 422.
    let env = Env::start_with(|info| info.vc_name = "v".repeat(70)).await?;
    let tenant_api: Api<Namespace> = Api::all(env.tenant_client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop"}}))?;
    tenant_api.create(&PostParams::default(), &ns).await?;
    let key = env.namespace_key("shop");
    env.reconcile(&key).await?;
    let super_api: Api<Namespace> = Api::all(env.super_client.clone());
    assert!(super_api.get_opt(&env.super_ns("shop")).await?.is_none());
    Ok(())
}
