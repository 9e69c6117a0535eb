//! The patroller in the running `syncer` binary, against a super cluster whose watches are cut the moment
//! they open (the simulator's `watchCutAfterEvents: 0` fault): the syncer's initial LIST works, its super
//! watch never delivers an event, so changes made behind its back reach it only through the patroller's
//! super LIST. A super pod deleted by hand is re-created, a label edited by hand is restored, and a super
//! pod carrying our marks for a tenant pod that does not exist is deleted, each within a few patrol
//! periods.

mod e2e_support;

use std::collections::BTreeMap;

use anyhow::Result;
use apisim::faults::FaultConfig;
use e2e_support::{
    Clusters, SyncerProcess, create_namespace, create_pod, label, metric_sum, wait_for,
};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use syncer::naming::{
    ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID, ANNOTATION_VC_NAME,
    ANNOTATION_VC_NAMESPACE, LABEL_CONTROLLED,
};

/// Patrol period of the syncer under test.
const PERIOD_SECS: u64 = 3;
/// Deadline of each repair: a few periods (generous for a loaded 2-core machine).
const DEADLINE_SECS: u64 = 12 * PERIOD_SECS;

/// A timed-out wait, with the syncer's log if it died meanwhile.
fn explain(syncer: &mut SyncerProcess, e: anyhow::Error) -> anyhow::Error {
    match syncer.check_alive() {
        Err(dead) => dead.context(format!("{e:#}")),
        Ok(()) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_behind_a_blind_super_watch_is_repaired_by_the_patroller() -> Result<()> {
    // No simulated nodes: super pods stay unbound, so a deleted super pod is re-created (not mirrored).
    let clusters = Clusters::start(1, 0).await?;
    clusters.sup.faults().set(FaultConfig {
        watch_cut_after_events: Some(0),
        ..FaultConfig::default()
    })?;
    let data_dir = clusters.data_dir();
    let period = format!("{PERIOD_SECS}s");
    let mut syncer = SyncerProcess::start(
        &clusters,
        &data_dir,
        &[
            "--patrol-interval",
            &period,
            "--patrol-super-list-every",
            "1",
        ],
    )?;
    let tenant = clusters.tenants[0].client().await?;
    let sup = clusters.super_client().await?;
    create_namespace(&tenant, "web").await?;
    for name in ["gone", "edited"] {
        create_pod(&tenant, "web", name, json!({"app": name}), json!({})).await?;
    }
    let super_ns = clusters.super_ns(0, "web");
    let super_pods: Api<Pod> = Api::namespaced(sup.clone(), &super_ns);
    let before = wait_for("both pods synced down", 60, || async {
        let mut uids = BTreeMap::new();
        for name in ["gone", "edited"] {
            if let Some(p) = super_pods.get_opt(name).await? {
                uids.insert(name, p.metadata.uid.unwrap_or_default());
            }
        }
        Ok((uids.len() == 2).then_some(uids))
    })
    .await
    .map_err(|e| explain(&mut syncer, e))?;

    // Behind the syncer's back (its super watch sees nothing): delete one copy, edit the other's label, and
    // plant an orphan that carries our marks for a tenant pod that does not exist.
    super_pods
        .delete("gone", &DeleteParams::default().grace_period(0))
        .await?;
    super_pods
        .patch(
            "edited",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "hand-edited"}}})),
        )
        .await?;
    let spec = &clusters.specs[0];
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "orphan",
            "labels": {LABEL_CONTROLLED: "true"},
            "annotations": {
                ANNOTATION_CLUSTER: clusters.key(0),
                ANNOTATION_NAMESPACE: "web",
                ANNOTATION_UID: "0d7c5b1e-0000-4000-8000-000000000001",
                ANNOTATION_VC_NAME: spec.name,
                ANNOTATION_VC_NAMESPACE: spec.namespace,
            }
        },
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))?;
    super_pods.create(&PostParams::default(), &orphan).await?;

    wait_for(
        "the deleted super pod re-created",
        DEADLINE_SECS,
        || async {
            Ok(super_pods
                .get_opt("gone")
                .await?
                .and_then(|p| p.metadata.uid)
                .filter(|uid| Some(uid) != before.get("gone"))
                .map(|_| ()))
        },
    )
    .await
    .map_err(|e| explain(&mut syncer, e))?;
    wait_for("the edited label restored", DEADLINE_SECS, || async {
        let p = super_pods.get("edited").await?;
        Ok((label(&p, "app") == Some("edited")).then_some(()))
    })
    .await?;
    wait_for("the orphan deleted", DEADLINE_SECS, || async {
        Ok(super_pods.get_opt("orphan").await?.is_none().then_some(()))
    })
    .await?;
    assert_eq!(
        super_pods.get("edited").await?.metadata.uid.as_ref(),
        before.get("edited"),
        "the edited copy is updated in place, not replaced"
    );

    // The patroller's own account of it.
    let text = syncer.scrape().await?;
    let corrections = metric_sum(&text, "vc_syncer_patrol_view_corrections_total").unwrap_or(0.0);
    assert!(
        corrections >= 3.0,
        "the super LIST found the deletion, the edit and the orphan: {corrections}"
    );
    assert!(metric_sum(&text, "vc_syncer_patrol_last_pass_timestamp_seconds").unwrap_or(0.0) > 0.0);
    assert!(metric_sum(&text, "vc_syncer_patrol_pass_seconds_count").unwrap_or(0.0) >= 1.0);
    assert!(metric_sum(&text, "vc_syncer_patrol_objects_scanned_total").unwrap_or(0.0) >= 1.0);
    assert!(
        text.contains("# HELP vc_syncer_patrol_findings_total"),
        "described"
    );
    assert!(
        syncer.terminate(30)?,
        "clean shutdown with the patroller running"
    );
    Ok(())
}
