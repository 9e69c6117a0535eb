//! The dynamic tenant set of a running syncer: which tenants are served, their sources, and the steps of
//! registering and unregistering one.
//!
//! * **Register** (new tenant): validate → build its client → persist the registration (flushed) → add it
//!   to the reconcilers' registry and to the super sources' served set → start one list+watch source per
//!   synced kind. The same spec again is a no-op (`changed = false`); a changed spec replaces the client and
//!   restarts the tenant's sources (view and resume points are kept).
//! * **Unregister**: persist "removing" → stop the tenant's sources → tombstone it in the registry (its
//!   queued work is dropped) → in the background, delete its super namespaces (found by the `vcname` /
//!   `vcnamespace` labels and checked against the `tenancy.x-k8s.io/cluster` annotation) until none is left →
//!   stop serving its super objects, forget its view entries, resume points and the super view entries of its
//!   namespaces → delete the registration. A restart during the cleanup resumes it.
//! * Tenants from the configuration are served for the whole run and cannot be unregistered.
//! * A registered tenant (new, re-added, or restored at start-up) gets the public super objects copied in by a
//!   background task ([`super::publics`]); the Register call does not wait for it.
//!
//! One async mutex serialises these steps; status reads take it briefly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use tenancy_proto::v1;
use tokio::sync::{Mutex, broadcast, watch};
use tokio::task::JoinSet;

use super::spec::{self, Origin, SpecError};
use super::store::{RegistrationStore, StoreError, StoredRegistration};
use crate::app::record_served_keys;
use crate::naming;
use crate::pipeline::Pipeline;
use crate::reconcile::Tenants;
use crate::record::SUPER_CLUSTER;
use crate::source::{
    self, ClusterRole, KindSpec, PipelineLog, ServedTenants, SourceConfig, Sources, WatchTarget,
};

/// A refused or failed lifecycle request; each maps to one gRPC status code.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Malformed request.
    #[error("{0}")]
    InvalidArgument(String),
    /// Unknown tenant or object.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the tenant's current state (other uid, configured statically, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Not now (shutting down, tenant still being removed).
    #[error("{0}")]
    Unavailable(String),
    /// The syncer's own storage failed.
    #[error("{0}")]
    Internal(String),
}

impl From<SpecError> for ControlError {
    fn from(e: SpecError) -> Self {
        Self::InvalidArgument(e.to_string())
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Something peers watching the syncer need to hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlEvent {
    /// A tenant was registered or its identity material changed.
    TenantUpserted {
        /// Cluster key.
        cluster_key: String,
        /// Its kubelet-client CA (PEM, may be empty).
        kubelet_client_ca_pem: String,
    },
    /// A tenant was unregistered (its cleanup may still run).
    TenantRemoved {
        /// Cluster key.
        cluster_key: String,
    },
    /// A translated pod went away or changed identity.
    PodInvalidated(v1::PodLocation),
}

/// What the tenant set is built from.
pub struct TenantSetDeps {
    /// The running pipeline (view, resume points, weights, per-tenant stats).
    pub pipeline: Arc<Pipeline>,
    /// The reconcilers' tenant registry.
    pub registry: Tenants,
    /// Cluster keys the super sources map.
    pub served: ServedTenants,
    /// Client of the super cluster (for deleting an unregistered tenant's namespaces).
    pub super_client: kube::Client,
    /// Synced kinds (one source per kind per tenant).
    pub kinds: Vec<KindSpec>,
    /// Source tuning.
    pub source_cfg: SourceConfig,
    /// Durable registrations.
    pub store: RegistrationStore,
    /// Data directory (the `served-tenants` file).
    pub data_dir: PathBuf,
    /// Cleanup retry: first delay (doubles up to 5 s).
    pub cleanup_retry: Duration,
}

struct Running {
    stop: watch::Sender<bool>,
    sources: Sources,
    ever_up: AtomicBool,
}

enum State {
    Active(Running),
    /// Registered but its client could not be built (e.g. a kubeconfig referring to a file that is gone).
    Broken(String),
    Removing(Arc<parking_lot::Mutex<String>>),
}

struct Entry {
    spec: v1::TenantSpec,
    origin: Origin,
    registered_at_ms: i64,
    state: State,
}

impl Entry {
    fn vc(&self) -> v1::VirtualClusterRef {
        self.spec.vc.clone().unwrap_or_default()
    }
}

struct Inner {
    deps: TenantSetDeps,
    kind_names: Vec<String>,
    entries: Mutex<BTreeMap<String, Entry>>,
    events: broadcast::Sender<ControlEvent>,
    stopping: watch::Sender<bool>,
    cleanups: parking_lot::Mutex<JoinSet<()>>,
}

/// The served tenants and their lifecycle. Cheap to clone.
#[derive(Clone)]
pub struct TenantSet {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn same_vc(a: &v1::VirtualClusterRef, b: &v1::VirtualClusterRef) -> bool {
    a.namespace == b.namespace && a.name == b.name
}

impl TenantSet {
    /// An empty set.
    pub fn new(deps: TenantSetDeps) -> Self {
        let kind_names = deps.kinds.iter().map(|k| k.kind.clone()).collect();
        let (events, _) = broadcast::channel(1024);
        let (stopping, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                deps,
                kind_names,
                entries: Mutex::new(BTreeMap::new()),
                events,
                stopping,
                cleanups: parking_lot::Mutex::new(JoinSet::new()),
            }),
        }
    }

    /// Subscribes to lifecycle events (and pod invalidations).
    pub fn subscribe(&self) -> broadcast::Receiver<ControlEvent> {
        self.inner.events.subscribe()
    }

    /// The sender of lifecycle events (the super-pod tap publishes invalidations through it).
    pub fn events(&self) -> broadcast::Sender<ControlEvent> {
        self.inner.events.clone()
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.inner.deps.pipeline
    }

    /// A receiver that turns `true` when [`TenantSet::shutdown`] is called.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// Whether [`TenantSet::shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    fn emit(&self, event: ControlEvent) {
        // No subscriber is fine.
        let _ = self.inner.events.send(event);
    }

    fn start_sources(
        &self,
        key: &str,
        vc: &v1::VirtualClusterRef,
        client: kube::Client,
    ) -> Result<Running, ControlError> {
        let d = &self.inner.deps;
        let log = PipelineLog::new(&d.pipeline, &[key.to_string()], &self.inner.kind_names)
            .map_err(|e| ControlError::Internal(format!("resume points of {key}: {e}")))?;
        let (stop, stop_rx) = watch::channel(false);
        let target = WatchTarget {
            role: ClusterRole::Tenant {
                cluster_key: key.to_string(),
            },
            client,
            vc_label: Some(vc.to_string()),
        };
        let sources = source::spawn(vec![target], &d.kinds, log, d.source_cfg.clone(), stop_rx);
        Ok(Running {
            stop,
            sources,
            ever_up: AtomicBool::new(false),
        })
    }

    fn activate(&self, key: &str, spec: &v1::TenantSpec, client: kube::Client) {
        let d = &self.inner.deps;
        d.registry.insert(spec::tenant_info(key, spec), client);
        d.served.insert(key);
        d.pipeline.set_tenant_weight(key, spec.weight.max(1));
    }

    /// Copies the public super objects into a tenant that was just (re-)registered, in the background, for
    /// as long as this registration's sources run.
    fn copy_public_objects(&self, key: &str, state: &State) {
        let State::Active(running) = state else {
            return;
        };
        let d = &self.inner.deps;
        super::publics::spawn(
            d.pipeline.view(),
            d.registry.clone(),
            key.to_owned(),
            self.inner.kind_names.clone(),
            running.stop.subscribe(),
            self.stopping(),
        );
    }

    fn record_served(&self, entries: &BTreeMap<String, Entry>) {
        let keys: Vec<&str> = entries.keys().map(String::as_str).collect();
        if let Err(error) = record_served_keys(&self.inner.deps.data_dir, &keys) {
            tracing::error!(%error, "failed to record the served tenants");
        }
    }

    /// Serves a tenant from the configuration (fixed for the run) with DNS domain `cluster_domain`.
    pub async fn add_configured(
        &self,
        key: String,
        vc: v1::VirtualClusterRef,
        client: kube::Client,
        cluster_domain: String,
    ) -> Result<(), ControlError> {
        let spec = v1::TenantSpec {
            vc: Some(vc.clone()),
            cluster_domain,
            ..Default::default()
        };
        let mut entries = self.inner.entries.lock().await;
        if entries.contains_key(&key) {
            return Err(ControlError::FailedPrecondition(format!(
                "cluster key {key} is configured twice"
            )));
        }
        self.activate(&key, &spec, client.clone());
        let running = self.start_sources(&key, &vc, client)?;
        entries.insert(
            key.clone(),
            Entry {
                spec,
                origin: Origin::Config,
                registered_at_ms: now_ms(),
                state: State::Active(running),
            },
        );
        self.record_served(&entries);
        Ok(())
    }

    /// Serves the registrations persisted by an earlier run (and resumes unfinished removals).
    pub async fn restore(&self, stored: Vec<StoredRegistration>) {
        for reg in stored {
            let key = reg.cluster_key.clone();
            let vc = reg.spec.vc.clone().unwrap_or_default();
            let mut entries = self.inner.entries.lock().await;
            if entries.contains_key(&key) {
                tracing::warn!(cluster = %key, "registered tenant is also configured; serving the configured one");
                continue;
            }
            let state = if reg.removing {
                self.inner.deps.registry.remove(&key);
                self.inner.deps.served.insert(&key);
                let message = Arc::new(parking_lot::Mutex::new("resuming removal".to_string()));
                self.spawn_cleanup(key.clone(), vc.clone(), Arc::clone(&message));
                State::Removing(message)
            } else {
                match spec::client_from_yaml(&reg.spec.kubeconfig).await {
                    Ok(client) => {
                        self.activate(&key, &reg.spec, client.clone());
                        let state = match self.start_sources(&key, &vc, client) {
                            Ok(running) => State::Active(running),
                            Err(e) => State::Broken(e.to_string()),
                        };
                        self.copy_public_objects(&key, &state);
                        state
                    }
                    Err(e) => {
                        tracing::error!(cluster = %key, error = %e, "registered tenant cannot be served");
                        State::Broken(e.to_string())
                    }
                }
            };
            tracing::info!(cluster = %key, vc = %vc, removing = reg.removing, "restored registration");
            entries.insert(
                key,
                Entry {
                    spec: reg.spec,
                    origin: Origin::Registered,
                    registered_at_ms: reg.registered_at_ms,
                    state,
                },
            );
            self.record_served(&entries);
        }
    }

    /// Registers (or updates) a tenant. Returns its cluster key and whether anything changed.
    pub async fn register(&self, spec: v1::TenantSpec) -> Result<(String, bool), ControlError> {
        let key = spec::validate(&spec)?;
        let vc = spec.vc.clone().unwrap_or_default();
        if self.is_stopping() {
            return Err(ControlError::Unavailable(
                "the syncer is shutting down".into(),
            ));
        }
        let mut entries = self.inner.entries.lock().await;
        if let Some((other, e)) = entries
            .iter()
            .find(|(k, e)| **k != key && same_vc(&e.vc(), &vc))
        {
            return Err(ControlError::FailedPrecondition(format!(
                "VC {vc} is registered with uid {:?} as cluster key {other}; unregister it first",
                e.vc().uid
            )));
        }
        let registered_at_ms = match entries.get(&key) {
            Some(e) => {
                let current = e.vc();
                if !same_vc(&current, &vc) || current.uid != vc.uid {
                    return Err(ControlError::FailedPrecondition(format!(
                        "cluster key {key} belongs to VC {current} (uid {:?})",
                        current.uid
                    )));
                }
                if e.origin == Origin::Config {
                    return Err(ControlError::FailedPrecondition(format!(
                        "VC {vc} is configured statically; it cannot be registered"
                    )));
                }
                match &e.state {
                    State::Removing(_) => {
                        return Err(ControlError::Unavailable(format!(
                            "VC {vc} is still being removed; retry once it is gone"
                        )));
                    }
                    State::Active(_) if e.spec == spec => return Ok((key, false)),
                    _ => {}
                }
                e.registered_at_ms
            }
            None => now_ms(),
        };
        let client = spec::client_from_yaml(&spec.kubeconfig).await?;
        if !entries.contains_key(&key) {
            forget_stale_super_entries(&self.inner.deps.pipeline, &key, &self.inner.deps.kinds)
                .map_err(|e| ControlError::Internal(format!("view of {key}: {e}")))?;
        }
        self.inner.deps.store.put(&StoredRegistration {
            cluster_key: key.clone(),
            spec: spec.clone(),
            registered_at_ms,
            removing: false,
        })?;
        if let Some(Entry {
            state: State::Active(old),
            ..
        }) = entries.remove(&key)
        {
            stop(old).await;
        }
        self.activate(&key, &spec, client.clone());
        let state = match self.start_sources(&key, &vc, client) {
            Ok(running) => State::Active(running),
            Err(e) => State::Broken(e.to_string()),
        };
        self.copy_public_objects(&key, &state);
        let ca = spec.kubelet_client_ca_pem.clone();
        entries.insert(
            key.clone(),
            Entry {
                spec,
                origin: Origin::Registered,
                registered_at_ms,
                state,
            },
        );
        self.record_served(&entries);
        drop(entries);
        tracing::info!(cluster = %key, vc = %vc, "tenant registered");
        self.emit(ControlEvent::TenantUpserted {
            cluster_key: key.clone(),
            kubelet_client_ca_pem: ca,
        });
        Ok((key, true))
    }

    /// Unregisters a tenant: stops its sources and starts removing its super namespaces. Returns whether it
    /// was registered.
    pub async fn unregister(
        &self,
        vc: &v1::VirtualClusterRef,
        allow_missing: bool,
    ) -> Result<bool, ControlError> {
        spec::validate_ref(Some(vc), false)?;
        let mut entries = self.inner.entries.lock().await;
        let Some((key, entry)) = entries.iter_mut().find(|(_, e)| same_vc(&e.vc(), vc)) else {
            if allow_missing {
                return Ok(false);
            }
            return Err(ControlError::NotFound(format!("VC {vc} is not registered")));
        };
        let key = key.clone();
        let current = entry.vc();
        if !vc.uid.is_empty() && vc.uid != current.uid {
            return Err(ControlError::FailedPrecondition(format!(
                "VC {vc} is registered with uid {:?}, not {:?}",
                current.uid, vc.uid
            )));
        }
        if entry.origin == Origin::Config {
            return Err(ControlError::FailedPrecondition(format!(
                "VC {vc} is configured statically; remove it from the configuration instead"
            )));
        }
        if matches!(entry.state, State::Removing(_)) {
            return Ok(true);
        }
        self.inner.deps.store.put(&StoredRegistration {
            cluster_key: key.clone(),
            spec: entry.spec.clone(),
            registered_at_ms: entry.registered_at_ms,
            removing: true,
        })?;
        let message = Arc::new(parking_lot::Mutex::new(
            "deleting super namespaces".to_string(),
        ));
        let previous = std::mem::replace(&mut entry.state, State::Removing(Arc::clone(&message)));
        if let State::Active(running) = previous {
            stop(running).await;
        }
        // Work still queued for it is dropped from now on.
        self.inner.deps.registry.remove(&key);
        drop(entries);
        tracing::info!(cluster = %key, vc = %vc, "tenant unregistered; removing its super namespaces");
        self.emit(ControlEvent::TenantRemoved {
            cluster_key: key.clone(),
        });
        self.spawn_cleanup(key, current, message);
        Ok(true)
    }

    fn spawn_cleanup(
        &self,
        key: String,
        vc: v1::VirtualClusterRef,
        message: Arc<parking_lot::Mutex<String>>,
    ) {
        let set = self.clone();
        self.inner
            .cleanups
            .lock()
            .spawn(async move { set.cleanup(key, vc, message).await });
    }

    async fn cleanup(
        self,
        key: String,
        vc: v1::VirtualClusterRef,
        message: Arc<parking_lot::Mutex<String>>,
    ) {
        let mut stopping = self.inner.stopping.subscribe();
        let mut delay = self.inner.deps.cleanup_retry;
        loop {
            match delete_super_namespaces(&self.inner.deps.super_client, &key, &vc).await {
                Ok(0) => break,
                Ok(left) => *message.lock() = format!("waiting for {left} super namespaces to go"),
                Err(e) => {
                    tracing::warn!(cluster = %key, error = %e, "deleting super namespaces failed; retrying");
                    *message.lock() = format!("deleting super namespaces failed: {e}");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        self.finish_removal(&key).await;
    }

    async fn finish_removal(&self, key: &str) {
        let d = &self.inner.deps;
        // Its queued work is being dropped (tombstone); let the shards drain it so no entry of a forgotten
        // tenant outlives it in the log (bounded wait).
        for _ in 0..100 {
            if d.pipeline.tenant_stats().figures(key).backlog == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut entries = self.inner.entries.lock().await;
        d.served.remove(key);
        if let Err(error) = purge_views(&d.pipeline, key, &d.kinds) {
            tracing::error!(cluster = %key, %error, "failed to forget the removed tenant's view entries");
        }
        if let Err(error) = d.store.delete(key) {
            tracing::error!(cluster = %key, %error, "failed to delete the registration; the removal resumes at the next start");
            return;
        }
        entries.remove(key);
        self.record_served(&entries);
        tracing::info!(cluster = %key, "tenant removed");
    }

    /// Whether `cluster_key` is served and not being removed.
    pub async fn is_active(&self, cluster_key: &str) -> bool {
        self.inner
            .entries
            .lock()
            .await
            .get(cluster_key)
            .is_some_and(|e| !matches!(e.state, State::Removing(_)))
    }

    /// Identity material of every served tenant (not being removed), by cluster key.
    pub async fn identities(&self) -> Vec<v1::TenantIdentity> {
        self.inner
            .entries
            .lock()
            .await
            .iter()
            .filter(|(_, e)| !matches!(e.state, State::Removing(_)))
            .map(|(k, e)| v1::TenantIdentity {
                cluster_key: k.clone(),
                kubelet_client_ca_pem: e.spec.kubelet_client_ca_pem.clone(),
            })
            .collect()
    }

    /// Number of tenants (including those being removed).
    pub async fn len(&self) -> usize {
        self.inner.entries.lock().await.len()
    }

    /// Whether no tenant is served.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Tenants whose watches are all established.
    pub async fn up(&self) -> usize {
        self.inner
            .entries
            .lock()
            .await
            .values()
            .filter(|e| matches!(&e.state, State::Active(r) if r.sources.clusters_up() == 1))
            .count()
    }

    /// The backlog and lag figures of every tenant (including those being removed), by VC label
    /// (`<namespace>/<name>`), for the per-VC gauges.
    pub async fn vc_figures(&self) -> Vec<(String, crate::shard::TenantFigures)> {
        let entries = self.inner.entries.lock().await;
        let stats = self.inner.deps.pipeline.tenant_stats();
        entries
            .iter()
            .map(|(key, e)| (e.vc().to_string(), stats.figures(key)))
            .collect()
    }

    /// The status of every tenant, sorted by cluster key.
    pub async fn statuses(&self) -> Vec<v1::TenantStatus> {
        let entries = self.inner.entries.lock().await;
        let pipeline = &self.inner.deps.pipeline;
        let stats = pipeline.tenant_stats();
        let view = pipeline.view();
        entries
            .iter()
            .map(|(key, e)| {
                let (phase, message) = match &e.state {
                    State::Active(r) => {
                        if r.sources.clusters_up() == 1 {
                            r.ever_up.store(true, Ordering::Relaxed);
                            (v1::TenantPhase::Syncing, String::new())
                        } else if r.ever_up.load(Ordering::Relaxed) {
                            (
                                v1::TenantPhase::Degraded,
                                "a watch was lost; retrying".to_string(),
                            )
                        } else {
                            (v1::TenantPhase::Connecting, String::new())
                        }
                    }
                    State::Broken(m) => (v1::TenantPhase::Degraded, m.clone()),
                    State::Removing(m) => (v1::TenantPhase::Removing, m.lock().clone()),
                };
                let figures = stats.figures(key);
                v1::TenantStatus {
                    vc: e.spec.vc.clone(),
                    cluster_key: key.clone(),
                    phase: phase as i32,
                    objects_synced: objects_synced(&view, key, &self.inner.deps.kinds),
                    backlog: figures.backlog,
                    lag_p50_ms: figures.lag_p50_ms,
                    lag_p99_ms: figures.lag_p99_ms,
                    registered_at_ms: e.registered_at_ms,
                    message,
                }
            })
            .collect()
    }

    /// Marks the set as stopping: API streams end, new registrations are refused.
    pub fn begin_shutdown(&self) {
        let _ = self.inner.stopping.send(true);
    }

    /// Stops every tenant's sources and the cleanups (unfinished removals resume at the next start).
    pub async fn shutdown(&self) {
        let _ = self.inner.stopping.send(true);
        let mut entries = self.inner.entries.lock().await;
        for entry in entries.values_mut() {
            if let State::Active(_) = entry.state {
                let State::Active(running) =
                    std::mem::replace(&mut entry.state, State::Broken("stopped".into()))
                else {
                    continue;
                };
                stop(running).await;
            }
        }
        drop(entries);
        let mut cleanups = std::mem::take(&mut *self.inner.cleanups.lock());
        cleanups.abort_all();
        while cleanups.join_next().await.is_some() {}
    }
}

async fn stop(running: Running) {
    let _ = running.stop.send(true);
    running.sources.join().await;
}

/// Tenant objects whose super copy the view holds: the tenant's super namespaces and the objects of every
/// namespaced synced kind in them (keys counted, nothing decoded but the namespaces).
fn objects_synced(view: &crate::log::View, key: &str, kinds: &[KindSpec]) -> u64 {
    let Ok(namespaces) = view.names(key, "Namespace") else {
        return 0;
    };
    let mut n = 0u64;
    for (_, ns) in namespaces {
        let super_ns = naming::super_namespace(key, &ns);
        if matches!(
            view.get(SUPER_CLUSTER, "Namespace", "", &super_ns),
            Ok(Some(_))
        ) {
            n += 1;
        }
        for kind in kinds
            .iter()
            .filter(|k| k.namespaced && k.tenant_watch.is_on())
        {
            n += view
                .count_namespace(SUPER_CLUSTER, &kind.kind, &super_ns)
                .unwrap_or(0) as u64;
        }
    }
    n
}

/// Deletes the super namespaces of tenant `key` (labelled with its VC, annotated with its cluster key);
/// returns how many still exist (terminating ones included).
async fn delete_super_namespaces(
    client: &kube::Client,
    key: &str,
    vc: &v1::VirtualClusterRef,
) -> Result<usize, kube::Error> {
    let api = Api::<Namespace>::all(client.clone());
    let selector = format!(
        "{}={},{}={},{}=true",
        naming::ANNOTATION_VC_NAME,
        vc.name,
        naming::ANNOTATION_VC_NAMESPACE,
        vc.namespace,
        naming::LABEL_CONTROLLED
    );
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    let mut left = 0;
    for ns in list.items {
        let ours = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(naming::ANNOTATION_CLUSTER))
            .is_some_and(|c| c == key);
        if !ours {
            continue;
        }
        left += 1;
        if ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: ns.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => tracing::info!(namespace = %name, cluster = %key, "deleting super namespace"),
            Err(kube::Error::Api(s)) if s.code == 404 => left -= 1,
            Err(e) => return Err(e),
        }
    }
    Ok(left)
}

/// Forgets a removed tenant in the log: its own view entries and resume points, and the super view entries
/// of its super namespaces.
fn purge_views(
    pipeline: &Pipeline,
    key: &str,
    kinds: &[KindSpec],
) -> Result<(), crate::log::LogError> {
    let view = pipeline.view();
    let mut super_namespaces: Vec<String> = view
        .names(key, "Namespace")?
        .into_iter()
        .map(|(_, ns)| naming::super_namespace(key, &ns))
        .collect();
    pipeline.forget_cluster(key)?;
    super_namespaces.extend(marked_super_namespaces(&view, key)?);
    forget_super_namespaces(&view, &super_namespaces, kinds)
}

/// Super namespaces in the view whose marks name tenant `key`.
fn marked_super_namespaces(
    view: &crate::log::View,
    key: &str,
) -> Result<Vec<String>, crate::log::LogError> {
    Ok(view
        .list(SUPER_CLUSTER, "Namespace")?
        .into_iter()
        .filter(|(_, _, o)| {
            naming::tenant_identity_from_json(&o.object).is_some_and(|id| id.cluster_key == key)
        })
        .map(|(_, name, _)| name)
        .collect())
}

/// Before a tenant is (re-)registered: super view entries left from an earlier registration (events of its
/// super objects that were read before it stopped being served and appended after its cleanup) would make
/// the reconcilers believe in objects that are gone. Drops every super entry whose marks name `key`, looking
/// only at namespaces that can belong to it (a super namespace of `key` starts with the first 57 characters
/// of `<key>-`; keys are scanned without decoding). The super watch reports what really exists.
fn forget_stale_super_entries(
    pipeline: &Pipeline,
    key: &str,
    kinds: &[KindSpec],
) -> Result<(), crate::log::LogError> {
    let view = pipeline.view();
    let mut prefix = format!("{key}-");
    prefix.truncate(57);
    let ours = |object: &serde_json::Value| {
        naming::tenant_identity_from_json(object).is_some_and(|id| id.cluster_key == key)
    };
    for kind in kinds.iter().filter(|k| k.namespaced) {
        for (ns, name) in view.names(SUPER_CLUSTER, &kind.kind)? {
            if !ns.starts_with(&prefix) {
                continue;
            }
            if let Some(stored) = view.get(SUPER_CLUSTER, &kind.kind, &ns, &name)?
                && ours(&stored.object)
            {
                view.record_write(SUPER_CLUSTER, &kind.kind, &ns, &name, None)?;
            }
        }
    }
    for (_, name) in view.names(SUPER_CLUSTER, "Namespace")? {
        if !name.starts_with(&prefix) {
            continue;
        }
        if let Some(stored) = view.get(SUPER_CLUSTER, "Namespace", "", &name)?
            && ours(&stored.object)
        {
            view.record_write(SUPER_CLUSTER, "Namespace", "", &name, None)?;
        }
    }
    Ok(())
}

fn forget_super_namespaces(
    view: &crate::log::View,
    super_namespaces: &[String],
    kinds: &[KindSpec],
) -> Result<(), crate::log::LogError> {
    for super_ns in super_namespaces {
        for kind in kinds.iter().filter(|k| k.namespaced) {
            for (name, _) in view.list_namespace(SUPER_CLUSTER, &kind.kind, super_ns)? {
                view.record_write(SUPER_CLUSTER, &kind.kind, super_ns, &name, None)?;
            }
        }
        view.record_write(SUPER_CLUSTER, "Namespace", "", super_ns, None)?;
    }
    Ok(())
}
