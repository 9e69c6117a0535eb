//! Sources: where events enter the engine. One tokio task per (cluster × synced kind) lists and watches
//! the API server and appends every event, with the new resume point, to the durable log.
//!
//! ```text
//! API server ──list+watch──► watcher (state machine) ──Record batch + resume point──► SourceLog::append
//! ```
//!
//! * [`watcher`]: the list+watch state machine (Empty → Listing → Watching; 410 → relist; errors → backoff).
//! * [`mapping`]: observed object → [`Record`](crate::record::Record) (which tenant object it concerns).
//! * [`relist`]: the diff a relist makes against the view (synthetic `Deleted` records).
//! * [`port`]: the [`SourceLog`] the sources write to, and its implementation on the pipeline's log.
//!
//! Backpressure: `SourceLog::append` awaits while the log is over budget; the source then stops reading the
//! stream, so the API server's TCP stream backs up instead of the syncer's memory growing.
//!
//! What is watched comes from the enabled resources (`crate::reconcile::Resources`): each declares its
//! [`KindSpec`], including how the super side and the tenant side are watched.

pub mod mapping;
pub mod port;
pub mod relist;
pub mod watcher;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::core::ApiResource;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use mapping::{ClusterRole, ServedTenants, SuperKey};
pub use port::{PipelineLog, PortError, SourceLog};

/// How one side (super or tenants) is watched for a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Not watched on that side.
    Off,
    /// Every object of the kind (no selector).
    All,
    /// Only objects matching this label selector (e.g. `tenancy.x-k8s.io/controlled=true`).
    Labels(String),
}

impl Watch {
    /// The label selector to list and watch with (`None` = everything).
    #[must_use]
    pub fn selector(&self) -> Option<&str> {
        match self {
            Watch::Labels(sel) => Some(sel),
            Watch::Off | Watch::All => None,
        }
    }

    /// Whether that side is watched at all.
    #[must_use]
    pub fn is_on(&self) -> bool {
        !matches!(self, Watch::Off)
    }
}

/// One kind the syncer watches: what to list+watch in the super cluster and in every tenant.
///
/// [`KindSpec::of`] gives the usual downward kind: every object in the tenants, only the syncer's own copies
/// (`tenancy.x-k8s.io/controlled=true`) in the super cluster. Upward or cluster-wide kinds set
/// [`KindSpec::super_watch`] / [`KindSpec::tenant_watch`] (e.g. super Nodes with [`Watch::All`], tenants
/// [`Watch::Off`]).
#[derive(Clone, Debug)]
pub struct KindSpec {
    /// Kind, e.g. `Pod` (also the `kind` of records and work keys).
    pub kind: String,
    /// Group/version/plural of the kind, for the dynamic API.
    pub resource: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
    /// How the super cluster is watched. Default: the syncer's copies only
    /// ([`mapping::super_label_selector`]).
    pub super_watch: Watch,
    /// How each tenant cluster is watched. Default: [`Watch::All`].
    pub tenant_watch: Watch,
    /// How a super object of the kind maps to the work key it concerns. Default: [`SuperKey::Marks`].
    pub super_key: SuperKey,
}

impl KindSpec {
    /// The spec of a k8s-openapi resource type, e.g. `KindSpec::of::<Pod>()`.
    pub fn of<K>() -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let resource = ApiResource::erase::<K>(&());
        Self {
            kind: resource.kind.clone(),
            resource,
            namespaced: std::any::TypeId::of::<K::Scope>()
                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
            super_watch: Watch::Labels(mapping::super_label_selector()),
            tenant_watch: Watch::All,
            super_key: SuperKey::Marks,
        }
    }

    /// A kind copied up only: every super object watched (it carries no syncer marks) and mapped by `rule`,
    /// tenants not watched.
    #[must_use]
    pub fn super_only(mut self, rule: SuperKey) -> Self {
        self.super_watch = Watch::All;
        self.super_key = rule;
        self.tenant_watch = Watch::Off;
        self
    }

    /// Sets [`KindSpec::super_key`].
    #[must_use]
    pub fn super_key(mut self, rule: SuperKey) -> Self {
        self.super_key = rule;
        self
    }

    /// Sets [`KindSpec::super_watch`].
    #[must_use]
    pub fn super_watch(mut self, watch: Watch) -> Self {
        self.super_watch = watch;
        self
    }

    /// Sets [`KindSpec::tenant_watch`].
    #[must_use]
    pub fn tenant_watch(mut self, watch: Watch) -> Self {
        self.tenant_watch = watch;
        self
    }

    /// How a cluster of `role` is watched for this kind.
    #[must_use]
    pub fn watch_for(&self, role: &ClusterRole) -> &Watch {
        match role {
            ClusterRole::Super { .. } => &self.super_watch,
            ClusterRole::Tenant { .. } => &self.tenant_watch,
        }
    }
}

/// The kinds watched by default: those of the default resources
/// ([`crate::reconcile::Resources::defaults`]). With a configured set, use
/// [`crate::reconcile::Resources::kinds`] (passed in [`SourceConfig::kinds`]).
pub fn synced_kinds() -> Vec<KindSpec> {
    crate::reconcile::Resources::defaults().kinds()
}

/// Tuning of the list+watch loop. `Default` is what the binary uses.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Objects per list page (`limit`). Default 500, like client-go's reflector.
    pub page_size: u32,
    /// Most events appended in one batch. Default 500.
    pub max_batch: usize,
    /// Server-side watch timeout (`timeoutSeconds`); the watch is re-opened from the last resourceVersion
    /// after it. Default 290 s (client-go picks 5–10 min).
    pub watch_timeout_secs: u32,
    /// First backoff delay after an error. Default 250 ms.
    pub backoff_initial: Duration,
    /// Backoff cap. Default 30 s.
    pub backoff_max: Duration,
    /// The kinds to watch. Default: [`synced_kinds`] (the default resources).
    pub kinds: Vec<KindSpec>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            max_batch: 500,
            watch_timeout_secs: 290,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            kinds: synced_kinds(),
        }
    }
}

impl SourceConfig {
    /// Sets [`SourceConfig::backoff_max`].
    #[must_use]
    pub fn backoff_max(mut self, d: Duration) -> Self {
        self.backoff_max = d;
        self
    }

    /// Sets [`SourceConfig::kinds`] (e.g. `Resources::kinds()` of the configured resources).
    #[must_use]
    pub fn kinds(mut self, kinds: Vec<KindSpec>) -> Self {
        self.kinds = kinds;
        self
    }
}

/// One cluster to watch.
#[derive(Clone)]
pub struct WatchTarget {
    /// Super or tenant (and which tenants the super cluster serves).
    pub role: ClusterRole,
    /// Client for the cluster's API server.
    pub client: kube::Client,
    /// VC name for the `vc_syncer_tenant_up{vc}` gauge (`None` for the super cluster).
    pub vc_label: Option<String>,
}

/// Liveness of the watches of one cluster: how many of its kinds are currently watching.
#[derive(Debug)]
pub struct ClusterHealth {
    vc_label: Option<String>,
    kinds: usize,
    watching: AtomicUsize,
}

impl ClusterHealth {
    fn new(vc_label: Option<String>, kinds: usize) -> Self {
        let health = Self {
            vc_label,
            kinds,
            watching: AtomicUsize::new(0),
        };
        health.publish();
        health
    }

    /// Whether every kind of the cluster has an established watch.
    pub fn is_up(&self) -> bool {
        self.watching.load(Ordering::Relaxed) >= self.kinds
    }

    fn set(&self, was_up: bool, up: bool) {
        match (was_up, up) {
            (false, true) => {
                self.watching.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.watching.fetch_sub(1, Ordering::Relaxed);
            }
            _ => return,
        }
        self.publish();
    }

    fn publish(&self) {
        if let Some(vc) = &self.vc_label {
            metrics::gauge!(crate::metrics::TENANT_UP, "vc" => vc.clone()).set(if self.is_up() {
                1.0
            } else {
                0.0
            });
        }
    }
}

/// The running sources: one task per (cluster × kind). Stop them with the shutdown signal given to
/// [`spawn`], then [`Sources::join`].
pub struct Sources {
    tasks: JoinSet<()>,
    health: Vec<Arc<ClusterHealth>>,
}

impl Sources {
    /// Clusters (super included) whose watches are all established.
    pub fn clusters_up(&self) -> usize {
        self.health.iter().filter(|h| h.is_up()).count()
    }

    /// Tenant clusters whose watches are all established.
    pub fn tenants_up(&self) -> usize {
        self.health
            .iter()
            .filter(|h| h.vc_label.is_some() && h.is_up())
            .count()
    }

    /// Whether the super cluster's watches are all established.
    pub fn super_up(&self) -> bool {
        self.health
            .iter()
            .any(|h| h.vc_label.is_none() && h.is_up())
    }

    /// Clusters watched (super included).
    pub fn clusters(&self) -> usize {
        self.health.len()
    }

    /// Waits for every source task to end (after shutdown was signalled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts one list+watch task per (target × kind) on the current tokio runtime. Tasks stop when `shutdown`
/// becomes `true` (or its sender is dropped).
pub fn spawn<L: SourceLog>(
    targets: Vec<WatchTarget>,
    kinds: &[KindSpec],
    log: L,
    cfg: SourceConfig,
    shutdown: watch::Receiver<bool>,
) -> Sources {
    let mut tasks = JoinSet::new();
    let mut health = Vec::with_capacity(targets.len());
    for target in targets {
        let watched: Vec<&KindSpec> = kinds
            .iter()
            .filter(|k| k.watch_for(&target.role).is_on())
            .collect();
        let cluster_health = Arc::new(ClusterHealth::new(target.vc_label.clone(), watched.len()));
        health.push(cluster_health.clone());
        for kind in watched {
            let w = watcher::KindWatcher::new(
                target.client.clone(),
                target.role.clone(),
                kind.clone(),
                log.clone(),
                cfg.clone(),
                cluster_health.clone(),
            );
            tasks.spawn(w.run(shutdown.clone()));
        }
    }
    Sources { tasks, health }
}
