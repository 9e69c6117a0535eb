//! The patroller: periodic anti-entropy between each tenant and the super cluster.
//!
//! ```text
//!  every --patrol-interval (jittered):
//!    every Nth pass: paged LIST of super objects (controlled=true) ──diff vs view──► log records ─┐
//!    walk the view: super copies indexed by tenant key, tenant objects streamed past ─► findings   │
//!                                                                                        │         │
//!                                               WorkInjector::inject(key) ◄──────────────┘         │
//!                                                        ▼                                         ▼
//!                                             the key's shard (fair, coalesced) ──► Reconciler (live re-check)
//! ```
//!
//! * [`diff`]: pairing of tenant objects and super copies, verdicts (missing / orphan / different).
//! * [`scan`]: one kind's walk of the view, judged by the kind's [`Resource::check`].
//! * [`superlist`]: the super-side LIST that corrects a view the super watch left stale.
//!
//! The patroller never writes to an API server itself: a finding only enqueues the tenant object's work key,
//! and the reconciler (which re-reads live before deleting anything decided from an absence) repairs it.
//! Design and cadence: `docs/patroller.md`.

pub mod diff;
pub mod scan;
pub mod superlist;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use tokio::sync::watch;

use crate::log::{LogSink, View};
use crate::pipeline::{InjectError, Pipeline, WorkInjector};
use crate::reconcile::resource::Resource;
use crate::reconcile::{Lookup, Resources, TenantInfo, Tenants};
use crate::source::{ClusterRole, ServedTenants, SuperKey};
pub use diff::{Finding, Verdict};

/// Counter: drift found, by `kind` and `class` (`missing` | `orphan` | `different`).
pub const FINDINGS_TOTAL: &str = "vc_syncer_patrol_findings_total";
/// Counter: work keys the patroller enqueued for repair, by `kind`.
pub const REPAIRS_ENQUEUED_TOTAL: &str = "vc_syncer_patrol_repairs_enqueued_total";
/// Counter: repairs not enqueued because the shard stayed busy (found again next pass), by `kind`.
pub const REPAIRS_DEFERRED_TOTAL: &str = "vc_syncer_patrol_repairs_deferred_total";
/// Histogram: duration of one pass (super LIST included when it ran).
pub const PASS_SECONDS: &str = "vc_syncer_patrol_pass_seconds";
/// Counter: objects compared, by `kind` and `side` (`tenant` | `super`).
pub const OBJECTS_SCANNED_TOTAL: &str = "vc_syncer_patrol_objects_scanned_total";
/// Gauge: Unix time at which the last pass finished.
pub const LAST_PASS_TIMESTAMP: &str = "vc_syncer_patrol_last_pass_timestamp_seconds";
/// Counter: records the super LIST appended because the view was stale, by `kind` and `event`
/// (`added` | `modified` | `deleted`).
pub const VIEW_CORRECTIONS_TOTAL: &str = "vc_syncer_patrol_view_corrections_total";
/// Counter: failed super LISTs or view walks, by `kind` and `stage` (`super_list` | `view`).
pub const ERRORS_TOTAL: &str = "vc_syncer_patrol_errors_total";

/// Registers the descriptions of the patroller's metrics.
pub fn describe_metrics() {
    describe_counter!(
        FINDINGS_TOTAL,
        "Drift found by the patroller, by kind and class (missing, orphan, different)."
    );
    describe_counter!(
        REPAIRS_ENQUEUED_TOTAL,
        "Work keys the patroller enqueued for the reconciler, by kind."
    );
    describe_counter!(
        REPAIRS_DEFERRED_TOTAL,
        "Repairs not enqueued because the shard stayed busy (found again by the next pass), by kind."
    );
    describe_histogram!(
        PASS_SECONDS,
        Unit::Seconds,
        "Duration of one patrol pass (view walk, plus the super LIST when it ran)."
    );
    describe_counter!(
        OBJECTS_SCANNED_TOTAL,
        "Objects the patroller compared, by kind and side (tenant, super)."
    );
    describe_gauge!(
        LAST_PASS_TIMESTAMP,
        Unit::Seconds,
        "Unix time at which the last patrol pass finished."
    );
    describe_counter!(
        VIEW_CORRECTIONS_TOTAL,
        "Records the patroller's super LIST appended because the view missed a change, by kind and event."
    );
    describe_counter!(
        ERRORS_TOTAL,
        "Failed patrol stages, by kind and stage (super_list, view)."
    );
}

/// Tuning of the patroller. `Default` is what the binary uses.
#[derive(Clone, Debug)]
pub struct PatrolConfig {
    /// Time between passes (before jitter). Default 60 s, like the original.
    pub interval: Duration,
    /// Each wait is `interval` ± up to this fraction of it (0..=0.5), so many syncers do not patrol in
    /// step. Default 0.1.
    pub jitter: f64,
    /// Every how many passes the super LIST runs (1 = every pass, 0 = never). Default 5 (every 5 min).
    pub super_list_every: u32,
    /// Objects per page of the super LIST. Default 500.
    pub page_size: u32,
    /// Longest wait for room in a busy shard before a repair is deferred to the next pass. Default 1 s.
    pub inject_timeout: Duration,
}

impl Default for PatrolConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            jitter: 0.1,
            super_list_every: 5,
            page_size: 500,
            inject_timeout: Duration::from_secs(1),
        }
    }
}

/// Whether the patroller walks `resource`: kinds copied down (tenant objects watched, super copies found by
/// the syncer's marks). Upward and cluster-wide kinds have no tenant-object/super-copy pairs to compare.
#[must_use]
pub fn patrols(resource: &dyn Resource) -> bool {
    let spec = resource.spec();
    spec.tenant_watch.is_on() && spec.super_watch.is_on() && spec.super_key == SuperKey::Marks
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassReport {
    /// Findings by (kind, class).
    pub findings: BTreeMap<(String, &'static str), usize>,
    /// Every finding, in kind then key order.
    pub found: Vec<Finding>,
    /// Work keys enqueued.
    pub enqueued: usize,
    /// Repairs deferred because a shard stayed busy.
    pub deferred: usize,
    /// Tenant objects compared.
    pub tenant_objects: usize,
    /// Super copies compared.
    pub super_objects: usize,
    /// Whether the super LIST ran.
    pub super_listed: bool,
    /// Records the super LIST appended.
    pub corrections: usize,
    /// Stages that failed (logged and counted; the pass went on).
    pub errors: usize,
    /// How long the pass took.
    pub duration: Duration,
}

impl PassReport {
    /// Findings of one class over every kind.
    #[must_use]
    pub fn count(&self, verdict: Verdict) -> usize {
        self.found.iter().filter(|f| f.verdict == verdict).count()
    }
}

/// The patroller of one syncer.
#[derive(Clone)]
pub struct Patroller {
    view: View,
    sink: LogSink,
    injector: WorkInjector,
    super_client: Option<kube::Client>,
    tenants: Tenants,
    kinds: Vec<Arc<dyn Resource>>,
    cfg: PatrolConfig,
}

impl std::fmt::Debug for Patroller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patroller")
            .field("kinds", &self.kind_names())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Patroller {
    /// A patroller of the enabled `resources` it can patrol (see [`patrols`]) on `pipeline`'s view, for the
    /// tenants registered in `tenants` at each pass, enqueueing repairs on the pipeline's shards. Without
    /// `super_client` the super LIST never runs (view walks only).
    #[must_use]
    pub fn new(
        pipeline: &Pipeline,
        super_client: Option<kube::Client>,
        tenants: Tenants,
        resources: &Resources,
        cfg: PatrolConfig,
    ) -> Self {
        Self {
            view: pipeline.view(),
            sink: pipeline.sink(),
            injector: pipeline.injector(),
            super_client,
            tenants,
            kinds: resources
                .iter()
                .filter(|r| patrols(r.as_ref()))
                .cloned()
                .collect(),
            cfg,
        }
    }

    /// The kinds patrolled.
    #[must_use]
    pub fn kind_names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|r| r.kind()).collect()
    }

    /// The registered tenants, by cluster key.
    fn tenant_infos(&self) -> HashMap<String, Arc<TenantInfo>> {
        self.tenants
            .cluster_keys()
            .into_iter()
            .filter_map(|key| match self.tenants.lookup(&key) {
                Lookup::Active(tenant) => Some((key, tenant.info)),
                Lookup::Removed | Lookup::Unknown => None,
            })
            .collect()
    }

    /// Runs passes every interval (jittered) until `shutdown` turns true or its sender is dropped. The first
    /// pass comes one interval after start (the watches have listed by then), with the super LIST.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        for kind in &self.kinds {
            crate::metrics::zero_init_patrol(kind.kind());
        }
        let mut pass: u64 = 0;
        loop {
            let wait = jittered(self.cfg.interval, self.cfg.jitter, pass);
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
                () = tokio::time::sleep(wait) => {}
            }
            let every = u64::from(self.cfg.super_list_every);
            let with_list = every > 0 && pass.is_multiple_of(every);
            pass += 1;
            let report = self.pass(with_list).await;
            tracing::debug!(
                pass,
                tenant_objects = report.tenant_objects,
                super_objects = report.super_objects,
                found = report.found.len(),
                enqueued = report.enqueued,
                corrections = report.corrections,
                duration_ms = report.duration.as_millis() as u64,
                "patrol pass"
            );
        }
        tracing::debug!("patroller stopped");
    }

    /// One pass: the super LIST first when `with_super_list` (so the walk sees a corrected view), then the
    /// view walk of every kind, each finding enqueued. Failures are logged and counted; the pass goes on.
    pub async fn pass(&self, with_super_list: bool) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport::default();
        let tenants = self.tenant_infos();
        if with_super_list && let Some(client) = &self.super_client {
            report.super_listed = true;
            let served: HashSet<String> = tenants.keys().cloned().collect();
            let role = ClusterRole::Super {
                tenants: ServedTenants::new(served),
            };
            for resource in &self.kinds {
                let spec = resource.spec();
                let kind = resource.kind();
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &spec.resource);
                match superlist::verify(
                    &api,
                    kind,
                    spec.super_watch.selector(),
                    &role,
                    &self.view,
                    &self.sink,
                    self.cfg.page_size,
                )
                .await
                {
                    Ok(c) => {
                        report.corrections += c.total();
                        for (event, n) in [
                            ("added", c.added),
                            ("modified", c.modified),
                            ("deleted", c.deleted),
                        ] {
                            if n > 0 {
                                metrics::counter!(VIEW_CORRECTIONS_TOTAL, "kind" => kind, "event" => event)
                                    .increment(n as u64);
                            }
                        }
                        if c.total() > 0 {
                            tracing::info!(
                                kind,
                                added = c.added,
                                modified = c.modified,
                                deleted = c.deleted,
                                "super LIST found changes the view missed"
                            );
                        }
                    }
                    Err(error) => {
                        report.errors += 1;
                        metrics::counter!(ERRORS_TOTAL, "kind" => kind, "stage" => "super_list")
                            .increment(1);
                        tracing::warn!(kind, error = %error_chain(&error), "patrol: super LIST failed");
                    }
                }
            }
        }
        let walker = self.clone();
        let walked =
            tokio::task::spawn_blocking(move || walker.walk_and_enqueue(&tenants, report)).await;
        let mut report = match walked {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "patrol walk panicked");
                PassReport {
                    errors: 1,
                    ..PassReport::default()
                }
            }
        };
        report.duration = started.elapsed();
        metrics::histogram!(PASS_SECONDS).record(report.duration.as_secs_f64());
        metrics::gauge!(LAST_PASS_TIMESTAMP).set(unix_seconds());
        report
    }

    /// The view walk and the enqueueing (blocking: sled reads and a bounded channel).
    fn walk_and_enqueue(
        &self,
        tenants: &HashMap<String, Arc<TenantInfo>>,
        mut report: PassReport,
    ) -> PassReport {
        for resource in &self.kinds {
            let kind = resource.kind();
            let scanned = match scan::scan_kind(&self.view, resource.as_ref(), tenants) {
                Ok(scanned) => scanned,
                Err(error) => {
                    report.errors += 1;
                    metrics::counter!(ERRORS_TOTAL, "kind" => kind, "stage" => "view").increment(1);
                    tracing::error!(kind, error = %error_chain(&error), "patrol: view walk failed");
                    continue;
                }
            };
            report.tenant_objects += scanned.counts.tenant_objects;
            report.super_objects += scanned.counts.super_objects;
            metrics::counter!(OBJECTS_SCANNED_TOTAL, "kind" => kind, "side" => "tenant")
                .increment(scanned.counts.tenant_objects as u64);
            metrics::counter!(OBJECTS_SCANNED_TOTAL, "kind" => kind, "side" => "super")
                .increment(scanned.counts.super_objects as u64);
            let mut enqueued = 0u64;
            let mut deferred = 0u64;
            for finding in &scanned.findings {
                *report
                    .findings
                    .entry((kind.to_owned(), finding.verdict.label()))
                    .or_default() += 1;
                match self
                    .injector
                    .inject(finding.key.clone(), self.cfg.inject_timeout)
                {
                    Ok(()) => enqueued += 1,
                    Err(InjectError::Full(shard)) => {
                        deferred += 1;
                        tracing::debug!(shard, key = ?finding.key, "patrol: shard busy, repair deferred");
                    }
                    Err(InjectError::Closed) => {
                        deferred += 1;
                    }
                }
            }
            for ((k, class), n) in &report.findings {
                if k == kind {
                    metrics::counter!(FINDINGS_TOTAL, "kind" => kind, "class" => *class)
                        .increment(*n as u64);
                }
            }
            if enqueued > 0 {
                metrics::counter!(REPAIRS_ENQUEUED_TOTAL, "kind" => kind).increment(enqueued);
            }
            if deferred > 0 {
                metrics::counter!(REPAIRS_DEFERRED_TOTAL, "kind" => kind).increment(deferred);
            }
            report.enqueued += enqueued as usize;
            report.deferred += deferred as usize;
            report.found.extend(scanned.findings);
        }
        report
    }
}

/// Starts [`Patroller::run`] on the current runtime.
pub fn spawn(patroller: Patroller, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(patroller.run(shutdown))
}

/// `interval` ± up to `jitter` × `interval`, varied by `salt` and the clock.
fn jittered(interval: Duration, jitter: f64, salt: u64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.5);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = u64::from(nanos) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // A fraction in [-1, 1].
    let unit = (mixed % 2001) as f64 / 1000.0 - 1.0;
    interval.mul_f64((1.0 + unit * jitter).max(0.0))
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_fraction() {
        let interval = Duration::from_secs(60);
        for salt in 0..200 {
            let d = jittered(interval, 0.1, salt);
            assert!(
                d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
                "{d:?}"
            );
        }
        assert_eq!(jittered(interval, 0.0, 7), interval);
        let wide = jittered(interval, 5.0, 3);
        assert!(wide >= Duration::from_secs(30) && wide <= Duration::from_secs(90));
    }
}
