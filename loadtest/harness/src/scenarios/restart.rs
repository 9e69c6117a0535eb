//! `restart`: a burst through the syncer; SIGKILL the syncer once a fraction of it is synced; create and
//! delete more pods while it is down; restart it on the same data directory; measure the time to converge
//! and compare every tenant pod with its super copy (lost and duplicated must be zero).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use rand::seq::IndexedRandom;
use serde_json::json;

use super::compare::{Comparison, compare};
use super::phase::{UpPath, analyze};
use super::{Ctx, Observers, cleanup, wait_super_namespaces};
use crate::cli::RestartArgs;
use crate::env::Env;
use crate::observe::wait_until;
use crate::report::{Report, ms, num};
use crate::syncer_proc::SyncerProcess;
use crate::workload::{Lane, create_pods, ensure_namespaces, plan, rng};

/// The `restart` scenario.
pub async fn run(ctx: &Ctx, a: &RestartArgs, report: &mut Report) -> Result<()> {
    let g = &ctx.global;
    let shape = &a.shape;
    let env = Env::start(g, shape.vcs, &ctx.work).await?;
    let ns = ctx.ns_names("n", shape.namespaces);
    let all: Vec<usize> = (0..env.tenants.len()).collect();
    let obs = Observers::start(ctx, &env, &all, HashSet::new()).await;
    let result = async {
        for t in &env.tenants {
            ensure_namespaces(&t.client, &ns, &ctx.run).await?;
        }
        let lanes = Arc::new(env.tenant_lanes(&all, &ns));
        let launch = env.launch(g, ctx.work.join("syncer-data"), ctx.out.join("syncer.log"))?;
        let mut child = SyncerProcess::start(&launch)?;
        child.wait_up(env.tenants.len(), Duration::from_secs(600), &ctx.stop).await?;
        let super_ns: Vec<String> = lanes.iter().map(|l| l.super_namespace.clone()).collect();
        wait_super_namespaces(ctx, &env, &super_ns, g.settle_timeout).await?;

        let jobs = plan(lanes.len(), shape.pods, g.seed, 1);
        let total = jobs.len();
        let burst = tokio::spawn(create_pods(
            lanes.clone(),
            jobs,
            ctx.run.clone(),
            false,
            g.concurrency,
            shape.rate,
            None,
            ctx.stop.clone(),
        ));
        let kill_after = ((total as f64) * a.kill_at.clamp(0.0, 1.0)).ceil() as usize;
        let book = obs.book.clone();
        let reached = wait_until(g.settle_timeout, &ctx.stop, || {
            book.seen[0].load(std::sync::atomic::Ordering::Relaxed) >= kill_after
        })
        .await;
        let synced_at_kill = obs.book.seen[0].load(std::sync::atomic::Ordering::Relaxed);
        child.kill9()?;
        let killed_at = Instant::now();
        ctx.say(&format!(
            "SIGKILL after {synced_at_kill}/{total} super copies (target {kill_after}, reached: {reached})"
        ));
        let written = burst.await.context("burst task")?;
        // While down: more creates, and deletes of pods from the burst.
        let mut r = rng(g.seed, 2);
        let mut extra_jobs = Vec::new();
        for (t, tenant_lanes) in lanes.chunks(shape.namespaces.max(1)).enumerate() {
            let _ = tenant_lanes;
            for k in 0..a.create_while_down {
                extra_jobs.push((t * shape.namespaces, format!("down{k}-{}", crate::workload::token(&mut r, 5))));
            }
        }
        let extra = create_pods(
            lanes.clone(),
            extra_jobs,
            ctx.run.clone(),
            false,
            g.concurrency,
            0.0,
            None,
            ctx.stop.clone(),
        )
        .await;
        let mut deleted = 0usize;
        for t in 0..env.tenants.len() {
            let of_tenant: Vec<_> = written
                .iter()
                .filter(|w| w.done.is_some() && w.lane / shape.namespaces.max(1) == t)
                .collect();
            for w in of_tenant.choose_multiple(&mut r, a.delete_while_down) {
                let lane: &Lane = &lanes[w.lane];
                Api::<Pod>::namespaced(lane.client.clone(), &lane.namespace)
                    .delete(&w.name, &DeleteParams::default().grace_period(0))
                    .await
                    .with_context(|| format!("delete {}/{}", lane.namespace, w.name))?;
                deleted += 1;
            }
        }
        let down_for = killed_at.elapsed();
        let mut child = SyncerProcess::start(&launch)?;
        let restarted_at = Instant::now();
        let mut last = Comparison::default();
        let mut converged = None;
        let deadline = restarted_at + g.settle_timeout;
        while Instant::now() < deadline && !ctx.stop.is_stopped() {
            last = compare(ctx, &env, &all, &HashSet::new()).await?;
            if last.lost == 0 && last.duplicated == 0 && last.tenant_pods > 0 {
                converged = Some(restarted_at.elapsed().as_secs_f64());
                break;
            }
            ctx.stop.sleep(Duration::from_millis(250)).await;
        }
        let up_after_restart = child
            .wait_up(env.tenants.len(), Duration::from_secs(60), &ctx.stop)
            .await
            .ok()
            .map(|d| d.as_secs_f64());
        // A final comparison after convergence: nothing drifts afterwards (no late duplicate).
        if converged.is_some() {
            ctx.stop.sleep(Duration::from_secs(1)).await;
            last = compare(ctx, &env, &all, &HashSet::new()).await?;
        }
        let mut all_written = written.clone();
        all_written.extend(extra.iter().cloned());
        let phase = analyze(&lanes, &all_written, &obs.book, &UpPath::None);
        child.terminate(Duration::from_secs(30)).await?;
        anyhow::Ok((total, synced_at_kill, extra.len(), deleted, down_for, converged, up_after_restart, last, phase))
    }
    .await;
    obs.shutdown().await;
    cleanup(ctx, &env).await;
    env.shutdown().await;
    let (total, at_kill, created_down, deleted_down, down_for, converged, up_after, cmp, phase) =
        result?;
    report.row("restart", "burst pods", total.to_string());
    report.row(
        "restart",
        "super copies when SIGKILLed",
        at_kill.to_string(),
    );
    report.row(
        "restart",
        "created / deleted while down",
        format!("{created_down} / {deleted_down}"),
    );
    report.row(
        "restart",
        "syncer down for (s)",
        num(Some(down_for.as_secs_f64()), 2),
    );
    report.row("restart", "restart -> converged (s)", num(converged, 2));
    report.row(
        "restart",
        "restart -> all tenants watching (s)",
        num(up_after, 2),
    );
    report.row(
        "compare",
        "tenant pods / super copies",
        format!("{} / {}", cmp.tenant_pods, cmp.super_pods),
    );
    report.row("compare", "lost", cmp.lost.to_string());
    report.row("compare", "duplicated", cmp.duplicated.to_string());
    report.row(
        "lag",
        "down p50 / p99 (incl. the outage)",
        format!("{} / {}", ms(phase.down.p50), ms(phase.down.p99)),
    );
    report.results = json!({
        "burst_pods": total,
        "super_copies_at_kill": at_kill,
        "created_while_down": created_down,
        "deleted_while_down": deleted_down,
        "down_seconds": down_for.as_secs_f64(),
        "restart_to_converged_seconds": converged,
        "restart_to_all_tenants_up_seconds": up_after,
        "converged": converged.is_some(),
        "comparison": cmp,
        "down": phase.down,
    });
    report.notes.push(
        "converged: every tenant pod of the run has exactly one super copy carrying its uid, and no super copy \
         is left without its tenant pod (pods deleted while the syncer was down included). Lost = tenant pods \
         without a copy; duplicated = super copies without a live tenant pod of that uid. Measured from the \
         restart (process spawn), polling every 250 ms."
            .into(),
    );
    Ok(())
}
