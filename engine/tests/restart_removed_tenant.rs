//! A tenant removed from the configuration between runs: the log still holds unapplied work for it (the
//! super cluster was stalled when the syncer was killed). The restarted syncer drops that work instead of
//! retrying it forever: the backlog drains to zero and the remaining tenant keeps syncing.

mod e2e_support;

use anyhow::{Result, bail};
use apisim::faults::FaultConfig;
use e2e_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_of_a_removed_tenant_is_dropped_after_restart() -> Result<()> {
    let clusters = Clusters::start(2, 1).await?;
    let sup = clusters.super_client().await?;
    let t1 = clusters.tenants[0].client().await?;
    let t2 = clusters.tenants[1].client().await?;
    create_namespace(&t1, "a").await?;
    create_namespace(&t2, "b").await?;
    let data = clusters.data_dir();

    // Stall the super cluster so vc-2's pods stay unapplied in the log, then kill -9.
    clusters.sup.faults().set(FaultConfig {
        error_429_fraction: 1.0,
        retry_after_seconds: 1,
        ..FaultConfig::default()
    })?;
    let mut first = SyncerProcess::start(&clusters, &data, &[])?;
    for i in 0..10 {
        create_pod(&t2, "b", &format!("p{i}"), json!({}), json!({})).await?;
    }
    let backlog = wait_for("vc-2's pods in the log, unapplied", 30, || {
        let first = &first;
        async move {
            let b = first
                .metric_sum("vc_syncer_log_backlog_records")
                .await?
                .unwrap_or(0.0);
            Ok((b >= 10.0).then_some(b))
        }
    })
    .await?;
    first.kill9()?;
    println!("killed with {backlog} unapplied records");

    // vc-2 leaves the configuration; the super cluster recovers; restart on the same data dir.
    std::fs::remove_file(clusters.tenants_dir().join("vc-2.yaml"))?;
    clusters.sup.faults().set(FaultConfig::default())?;
    let second = SyncerProcess::start(&clusters, &data, &[])?;
    create_pod(&t1, "a", "still-synced", json!({}), json!({})).await?;
    let ns1 = clusters.super_ns(0, "a");
    wait_for("vc-1 still syncing", 60, || {
        let (sup, ns1) = (sup.clone(), ns1.clone());
        async move {
            Ok(Api::<Pod>::namespaced(sup, &ns1)
                .get_opt("still-synced")
                .await?
                .map(|_| ()))
        }
    })
    .await?;
    wait_for(
        "backlog drained (removed tenant's work dropped)",
        60,
        || {
            let second = &second;
            async move {
                let b = second.metric_sum("vc_syncer_log_backlog_records").await?;
                Ok((b == Some(0.0)).then_some(()))
            }
        },
    )
    .await?;
    // Nothing was created for the removed tenant.
    let ns2 = clusters.super_ns(1, "b");
    let leaked = Api::<Pod>::namespaced(sup.clone(), &ns2)
        .list(&Default::default())
        .await?
        .items
        .len();
    if leaked != 0 {
        bail!("{leaked} super pods were created for the removed tenant");
    }
    Ok(())
}
