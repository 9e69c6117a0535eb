//! A stalled super API server (every request answered 429) does not make the syncer buffer without
//! bound: the unapplied log backlog stops near the disk budget, the tenant's list+watch stops being read
//! (records appended stay well below the pods created), and once the super cluster answers again everything
//! converges. Checked through counts from `/metrics`, never timings.

mod e2e_support;

use anyhow::Result;
use apisim::faults::FaultConfig;
use e2e_support::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

const PODS: usize = 1500;
const BUDGET: u64 = 256 * 1024;
/// What may pass the budget: the batches already admitted when it was reached (a source appends up to 500
/// records per batch, about 1.5 KB each here, and the namespace source too).
const SLACK: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_super_bounds_the_backlog_then_recovers() -> Result<()> {
    let clusters = Clusters::start(1, 1).await?;
    let sup = clusters.super_client().await?;
    let tenant = clusters.tenants[0].client().await?;
    create_namespace(&tenant, "load").await?;

    clusters.sup.faults().set(FaultConfig {
        error_429_fraction: 1.0,
        retry_after_seconds: 1,
        ..FaultConfig::default()
    })?;
    let budget = BUDGET.to_string();
    let mut syncer =
        SyncerProcess::start(&clusters, &clusters.data_dir(), &["--disk-budget", &budget])?;

    // ~1 KB of annotation per pod so the records have weight.
    let filler = "x".repeat(1000);
    futures::stream::iter(0..PODS)
        .map(|i| {
            let (tenant, filler) = (tenant.clone(), filler.clone());
            async move {
                create_pod(
                    &tenant,
                    "load",
                    &format!("p-{i}"),
                    json!({}),
                    json!({"filler": filler}),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;

    // While stalled: the backlog reaches the budget and stays bounded; the tenant watch is not drained.
    let mut max_backlog = 0.0_f64;
    let mut appended = 0.0_f64;
    for _ in 0..30 {
        let text = syncer.scrape().await?;
        max_backlog =
            max_backlog.max(metric_sum(&text, "vc_syncer_log_backlog_bytes").unwrap_or(0.0));
        appended = metric_sum(&text, "vc_syncer_log_appended_records_total").unwrap_or(0.0);
        if max_backlog >= BUDGET as f64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    syncer.check_alive()?;
    // Two more samples a moment apart: still bounded, still not drained.
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let text = syncer.scrape().await?;
        max_backlog =
            max_backlog.max(metric_sum(&text, "vc_syncer_log_backlog_bytes").unwrap_or(0.0));
    }
    println!(
        "stalled: max backlog {max_backlog} bytes, records appended {appended} for {PODS} pods"
    );
    assert!(
        max_backlog >= BUDGET as f64,
        "the backlog never reached the budget: backpressure was not exercised"
    );
    assert!(
        max_backlog <= (BUDGET + SLACK) as f64,
        "backlog {max_backlog} grew past budget + slack"
    );
    assert!(
        appended > 0.0 && appended < PODS as f64,
        "the tenant's pods were all appended ({appended} records) although the log was over budget"
    );

    // The super cluster recovers: everything converges.
    clusters.sup.faults().set(FaultConfig::default())?;
    let ns = clusters.super_ns(0, "load");
    wait_for("all pods synced after the stall", 240, || {
        let (sup, ns) = (sup.clone(), ns.clone());
        async move {
            let n = Api::<Pod>::namespaced(sup, &ns)
                .list(&ListParams::default())
                .await?
                .items
                .len();
            Ok((n == PODS).then_some(()))
        }
    })
    .await?;
    syncer.check_alive()?;
    Ok(())
}
