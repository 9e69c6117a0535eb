//! Crash safety of the whole syncer: the binary runs as a child process against simulators served by this
//! test, is `kill -9`ed at seeded points while tenants create and delete pods, and is restarted on the same
//! data directory each time. At the end every tenant pod has exactly one super pod carrying its uid, no
//! super pod lacks a tenant pod, and a restart with everything in sync writes nothing to the super cluster
//! (the simulator's revision does not move).
//!
//! The seed is `RESTART_SEED` (default fixed), printed so a failure can be replayed.

mod e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use syncer::naming::ANNOTATION_UID;

const PODS_PER_TENANT: usize = 60;
const NAMESPACES: &[&str] = &["alpha", "beta"];

/// A small deterministic generator (SplitMix64) so kill points are reproducible from the seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Creates `PODS_PER_TENANT` pods per tenant (round robin over tenants and namespaces), deleting every
/// seventh one again a little later, with short pauses so the syncer is killed mid-stream.
async fn load(tenants: Vec<kube::Client>) -> Result<()> {
    for i in 0..PODS_PER_TENANT {
        for (t, client) in tenants.iter().enumerate() {
            let ns = NAMESPACES[(i + t) % NAMESPACES.len()];
            create_pod(
                client,
                ns,
                &format!("p-{i}"),
                json!({"i": i.to_string()}),
                json!({}),
            )
            .await?;
            if i >= 3 && (i - 3) % 7 == 0 {
                let victim = i - 3;
                let vns = NAMESPACES[(victim + t) % NAMESPACES.len()];
                Api::<Pod>::namespaced(client.clone(), vns)
                    .delete(
                        &format!("p-{victim}"),
                        &DeleteParams::default().grace_period(0),
                    )
                    .await?;
            }
        }
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Super pods the syncer wrote.
async fn super_pods(sup: &kube::Client) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::all(sup.clone())
        .list(&ListParams::default().labels("tenancy.x-k8s.io/controlled=true"))
        .await?
        .items)
}

/// `Ok(Some(n))` when the super cluster holds exactly one pod per tenant pod, with the tenant pod's uid,
/// and nothing else; `n` = number of pods. `Ok(None)` while not converged.
async fn converged(
    clusters: &Clusters,
    sup: &kube::Client,
    tenants: &[kube::Client],
) -> Result<Option<usize>> {
    let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
    for (i, t) in tenants.iter().enumerate() {
        for p in all_pods(t).await? {
            let ns = p.metadata.namespace.clone().context("namespace")?;
            let name = p.metadata.name.clone().context("name")?;
            let uid = p.metadata.uid.clone().context("uid")?;
            expected.insert((clusters.super_ns(i, &ns), name), uid);
        }
    }
    let mut actual: BTreeMap<(String, String), String> = BTreeMap::new();
    for p in super_pods(sup).await? {
        let key = (
            p.metadata.namespace.clone().context("namespace")?,
            p.metadata.name.clone().context("name")?,
        );
        let uid = annotation(&p, ANNOTATION_UID)
            .unwrap_or_default()
            .to_string();
        if actual.insert(key.clone(), uid).is_some() {
            bail!("two super pods for {key:?}");
        }
    }
    Ok((expected == actual).then_some(expected.len()))
}

fn all_running(pods: &[Pod]) -> bool {
    pods.iter()
        .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_seeded_points_then_converges_and_an_in_sync_restart_writes_nothing() -> Result<()>
{
    let seed: u64 = std::env::var("RESTART_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0001);
    let mut rng = SplitMix(seed);
    let total_pods = PODS_PER_TENANT * 2;
    let mut kill_points: Vec<usize> = (0..3)
        .map(|_| 5 + usize::try_from(rng.below(80)).unwrap_or(0))
        .collect();
    kill_points.sort_unstable();
    println!("RESTART_SEED={seed} kill after N super pods for N in {kill_points:?}");

    let clusters = Clusters::start(2, 2).await?;
    let sup = clusters.super_client().await?;
    let mut tenants = Vec::new();
    for t in &clusters.tenants {
        let c = t.client().await?;
        for ns in NAMESPACES {
            create_namespace(&c, ns).await?;
        }
        tenants.push(c);
    }
    let data = clusters.data_dir();
    let loader = tokio::spawn(load(tenants.clone()));

    for (round, n) in kill_points.iter().enumerate() {
        let mut syncer = SyncerProcess::start(&clusters, &data, &[])?;
        let seen = wait_for(&format!("{n} super pods (round {round})"), 90, || {
            let sup = sup.clone();
            async move {
                let count = super_pods(&sup).await?.len();
                Ok((count >= *n).then_some(count))
            }
        })
        .await?;
        syncer.check_alive()?;
        syncer.kill9()?;
        println!("round {round}: killed with {seen} super pods");
    }
    loader.await.context("load task")??;

    // Final run: everything converges.
    let mut syncer = SyncerProcess::start(&clusters, &data, &[])?;
    let pods = wait_for("convergence after the crashes", 120, || {
        converged(&clusters, &sup, &tenants)
    })
    .await?;
    let deleted = (0..PODS_PER_TENANT)
        .filter(|v| v + 3 < PODS_PER_TENANT && v % 7 == 0)
        .count();
    assert_eq!(pods, total_pods - 2 * deleted, "tenant pod count");
    syncer.check_alive()?;

    // Let the up direction finish too (all pods Running on both sides), then wait for quiescence.
    wait_for("all pods Running on both sides", 60, || {
        let (sup, tenants) = (sup.clone(), tenants.clone());
        async move {
            if !all_running(&super_pods(&sup).await?) {
                return Ok(None);
            }
            for t in &tenants {
                if !all_running(&all_pods(t).await?) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
    })
    .await?;
    let quiet_rev = wait_for("super revision stable for 1 s", 30, || async {
        let before = clusters.sup.revision();
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok((clusters.sup.revision() == before).then_some(before))
    })
    .await?;
    syncer.kill9()?;

    // A restart with everything in sync: it replays and resumes, and writes nothing to the super cluster.
    let restarted = SyncerProcess::start(&clusters, &data, &[])?;
    wait_for(
        "restarted syncer watching both tenants, log drained",
        60,
        || {
            let r = &restarted;
            async move {
                let text = r.scrape().await?;
                let up = metric_sum(&text, "vc_syncer_tenant_up") == Some(2.0);
                let backlog = metric_sum(&text, "vc_syncer_log_backlog_records").unwrap_or(0.0);
                Ok((up && backlog == 0.0).then_some(()))
            }
        },
    )
    .await?;
    // Leave time for anything the restart would (wrongly) do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        clusters.sup.revision(),
        quiet_rev,
        "an in-sync restart wrote to the super cluster"
    );
    let text = restarted.scrape().await?;
    let super_writes: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("vc_syncer_reconcile_writes_total{") && l.contains("side=\"super\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        super_writes, 0.0,
        "reconciler counted super writes after an in-sync restart"
    );
    assert_eq!(converged(&clusters, &sup, &tenants).await?, Some(pods));
    Ok(())
}
