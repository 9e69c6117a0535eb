//! The running syncer: one [`Pipeline`] (log + shards + reconciler) fed by one source per
//! (cluster × synced kind), the dynamic tenant set ([`TenantSet`]) and, optionally, the gRPC API.
//! Used by the `syncer` binary, for real clusters and for the embedded default.
//!
//! Start-up order: open the log (replaying unapplied entries to the reconciler), load the durable
//! registrations, forget tenants served by the previous run but neither configured nor registered any more,
//! start the sources of every configured and registered tenant, then the super cluster's sources (so no
//! super event of a served tenant is dropped as unknown), then the gRPC API. Shutdown order: the API, the
//! tenant and super sources (no more appends), then the pipeline (the shards finish what they hold, the
//! writer flushes).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use parking_lot::Mutex;
use tenancy_proto::v1;
use tokio::sync::watch;

use crate::config::TenantSpec;
use crate::control::store::{self, RegistrationStore};
use crate::control::tap::InvalidationTap;
use crate::control::{TenantSet, TenantSetDeps};
use crate::grpc::{ApiContext, GrpcError, GrpcOptions, GrpcServer};
use crate::naming;
use crate::patrol::{self, PatrolConfig, Patroller};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, PipelineStats};
use crate::reconcile::Tenants;
use crate::record::SUPER_CLUSTER;
use crate::shard::Reconciler;
use crate::source::{
    self, ClusterRole, PipelineLog, ServedTenants, SourceConfig, Sources, WatchTarget,
};

/// Errors while starting the syncer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A kubeconfig could not be read.
    #[error("failed to read kubeconfig {path}")]
    ReadKubeconfig {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A client could not be built from a kubeconfig.
    #[error("failed to build a client from kubeconfig {path}")]
    Client {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The pipeline (log, shards) did not start.
    #[error("failed to start the pipeline")]
    Pipeline(#[source] PipelineError),
    /// The resume points could not be read.
    #[error("failed to read resume points")]
    ResumePoints(#[source] crate::log::LogError),
    /// A removed tenant's view entries and resume points could not be dropped.
    #[error("failed to forget removed tenant {cluster}")]
    Forget {
        /// Its cluster key.
        cluster: String,
        /// Cause.
        #[source]
        source: crate::log::LogError,
    },
    /// The list of served tenants in the data directory could not be read or written.
    #[error("failed to access {path}")]
    ServedTenants {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The durable registrations could not be read.
    #[error("failed to read the tenant registrations")]
    Registrations(#[source] store::StoreError),
    /// A configured tenant could not be served.
    #[error("failed to serve configured tenant {cluster}: {message}")]
    Tenant {
        /// Its cluster key.
        cluster: String,
        /// What went wrong.
        message: String,
    },
    /// The gRPC API did not start.
    #[error("failed to start the gRPC API")]
    Grpc(#[source] GrpcError),
}

/// File in the data directory listing the cluster keys the last run served (one per line).
pub const SERVED_TENANTS_FILE: &str = "served-tenants";

fn previously_served(data_dir: &Path) -> Result<Vec<String>, AppError> {
    let path = data_dir.join(SERVED_TENANTS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AppError::ServedTenants {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Cluster keys the previous run on `data_dir` served that are not in `current`: their unapplied log entries
/// must be dropped (register them as removed in the tenant registry before the pipeline replays) and their
/// view entries and resume points forgotten (see [`Syncer::start`], which does both, also for tenants that
/// were registered over gRPC).
pub fn removed_since_last_run(
    data_dir: &Path,
    current: &[TenantConnection],
) -> Result<Vec<String>, AppError> {
    let current: HashSet<&str> = current.iter().map(|t| t.cluster_key.as_str()).collect();
    Ok(previously_served(data_dir)?
        .into_iter()
        .filter(|k| !current.contains(k.as_str()))
        .collect())
}

/// Records the served cluster keys in `<data_dir>/served-tenants` (atomically replaced).
pub fn record_served_keys(data_dir: &Path, keys: &[&str]) -> Result<(), AppError> {
    let path = data_dir.join(SERVED_TENANTS_FILE);
    let tmp = data_dir.join(format!("{SERVED_TENANTS_FILE}.tmp"));
    let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    let err = |source| AppError::ServedTenants {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// A tenant with its client, ready to be synced.
#[derive(Clone)]
pub struct TenantConnection {
    /// The VC identity.
    pub spec: TenantSpec,
    /// Cluster key computed from the spec (see [`naming::cluster_key`]).
    pub cluster_key: String,
    /// Client for the tenant's API server.
    pub client: kube::Client,
    /// The tenant's DNS domain (`spec.clusterDomain`; `--cluster-domain` for configured tenants).
    pub cluster_domain: String,
}

impl TenantConnection {
    /// Connects to the tenant described by `spec` (reads its kubeconfig).
    pub async fn connect(spec: TenantSpec) -> Result<Self, AppError> {
        let client = client_from_kubeconfig(&spec.kubeconfig).await?;
        let cluster_key = naming::cluster_key(&spec.namespace, &spec.name, &spec.uid);
        Ok(Self {
            spec,
            cluster_key,
            client,
            cluster_domain: crate::reconcile::DEFAULT_CLUSTER_DOMAIN.to_owned(),
        })
    }
}

/// A client for the cluster of a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, AppError> {
    let shown = path.display().to_string();
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| AppError::ReadKubeconfig {
        path: shown.clone(),
        source,
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| AppError::ReadKubeconfig {
            path: shown.clone(),
            source,
        })?;
    kube::Client::try_from(config).map_err(|source| AppError::Client {
        path: shown,
        source,
    })
}

/// A snapshot for the status line and for tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncerStatus {
    /// Tenants served.
    pub tenants: usize,
    /// Tenants whose watches are all established.
    pub tenants_up: usize,
    /// Whether the super cluster's watches are all established.
    pub super_up: bool,
    /// The pipeline's counters.
    pub pipeline: PipelineStats,
}

/// How the syncer runs (everything but the clusters).
pub struct SyncerOptions {
    /// The log and shards.
    pub pipeline: PipelineConfig,
    /// The sources.
    pub sources: SourceConfig,
    /// The gRPC API; `None` = not served.
    pub grpc: Option<GrpcOptions>,
}

/// A running syncer.
pub struct Syncer {
    pipeline: Arc<Pipeline>,
    tenants: TenantSet,
    super_sources: Arc<Mutex<Option<Sources>>>,
    super_stop: watch::Sender<bool>,
    grpc: Option<GrpcServer>,
    patrol: Option<tokio::task::JoinHandle<()>>,
}

impl Syncer {
    /// Opens the log, starts the shards with `reconciler` (which must look tenants up in `registry`), serves
    /// the `configured` tenants and the durable registrations, starts the super cluster's sources and the gRPC
    /// API, on the current tokio runtime. Tenants the previous run served that are neither configured nor
    /// registered any more are tombstoned in `registry` and their view entries and resume points dropped.
    pub async fn start(
        super_client: kube::Client,
        configured: &[TenantConnection],
        registry: Tenants,
        reconciler: Arc<dyn Reconciler>,
        opts: SyncerOptions,
    ) -> Result<Self, AppError> {
        let data_dir = opts.pipeline.data_dir.clone();
        let pipeline =
            Arc::new(Pipeline::start(opts.pipeline, reconciler).map_err(AppError::Pipeline)?);
        let store = RegistrationStore::new(
            pipeline
                .open_tree(store::TREE)
                .map_err(AppError::ResumePoints)?,
        );
        let stored = store.load().map_err(AppError::Registrations)?;
        let mut current: HashSet<String> =
            configured.iter().map(|t| t.cluster_key.clone()).collect();
        current.extend(stored.iter().map(|r| r.cluster_key.clone()));
        for cluster in previously_served(&data_dir)?
            .into_iter()
            .filter(|k| !current.contains(k))
        {
            tracing::info!(%cluster, "tenant no longer served: forgetting its view and resume points");
            registry.remove(&cluster);
            pipeline
                .forget_cluster(&cluster)
                .map_err(|source| AppError::Forget {
                    cluster: cluster.clone(),
                    source,
                })?;
        }
        let kinds = opts.sources.kinds.clone();
        let kind_names: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
        let served = ServedTenants::default();
        let tenants = TenantSet::new(TenantSetDeps {
            pipeline: Arc::clone(&pipeline),
            registry,
            served: served.clone(),
            super_client: super_client.clone(),
            kinds: kinds.clone(),
            source_cfg: opts.sources.clone(),
            store,
            data_dir: data_dir.clone(),
            cleanup_retry: Duration::from_millis(250),
        });
        for t in configured {
            let vc = v1::VirtualClusterRef::new(&t.spec.namespace, &t.spec.name, &t.spec.uid);
            tenants
                .add_configured(
                    t.cluster_key.clone(),
                    vc,
                    t.client.clone(),
                    t.cluster_domain.clone(),
                )
                .await
                .map_err(|e| AppError::Tenant {
                    cluster: t.cluster_key.clone(),
                    message: e.to_string(),
                })?;
        }
        tenants.restore(stored).await;
        tokio::spawn(crate::control::gauges::run(tenants.clone()));
        if tenants.is_empty().await {
            record_served_keys(&data_dir, &[])?;
        }
        let log = PipelineLog::new(&pipeline, &[SUPER_CLUSTER.to_string()], &kind_names)
            .map_err(AppError::ResumePoints)?;
        let log = InvalidationTap::new(log, pipeline.view(), tenants.events());
        let target = WatchTarget {
            role: ClusterRole::Super { tenants: served },
            client: super_client,
            vc_label: None,
        };
        let (super_stop, stop_rx) = watch::channel(false);
        let super_sources = Arc::new(Mutex::new(Some(source::spawn(
            vec![target],
            &kinds,
            log,
            opts.sources,
            stop_rx,
        ))));
        let grpc = match opts.grpc {
            Some(grpc) => {
                let probe = Arc::clone(&super_sources);
                let ctx = ApiContext {
                    tenants: tenants.clone(),
                    super_up: Arc::new(move || {
                        probe.lock().as_ref().is_some_and(Sources::super_up)
                    }),
                };
                Some(GrpcServer::start(grpc, ctx).await.map_err(AppError::Grpc)?)
            }
            None => None,
        };
        Ok(Self {
            pipeline,
            tenants,
            super_sources,
            super_stop,
            grpc,
            patrol: None,
        })
    }

    /// Starts the patroller of the enabled `resources` (see [`crate::patrol`]) on the current runtime, over
    /// the tenants registered in `tenants` at each pass; it stops with the sources.
    pub fn start_patrol(
        &mut self,
        super_client: kube::Client,
        tenants: crate::reconcile::Tenants,
        resources: &crate::reconcile::Resources,
        cfg: PatrolConfig,
    ) {
        let patroller = Patroller::new(&self.pipeline, Some(super_client), tenants, resources, cfg);
        self.patrol = Some(patrol::spawn(patroller, self.super_stop.subscribe()));
    }

    /// The served tenants (register / unregister at run time).
    pub fn tenants(&self) -> &TenantSet {
        &self.tenants
    }

    /// Where the gRPC API listens, if it is served.
    pub fn grpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.grpc.as_ref().map(GrpcServer::addr)
    }

    /// Current counters.
    pub async fn status(&self) -> SyncerStatus {
        SyncerStatus {
            tenants: self.tenants.len().await,
            tenants_up: self.tenants.up().await,
            super_up: self
                .super_sources
                .lock()
                .as_ref()
                .is_some_and(Sources::super_up),
            pipeline: self.pipeline.stats(),
        }
    }

    /// The pipeline's view (for tasks that read it beside the reconcilers).
    pub fn view(&self) -> crate::log::View {
        self.pipeline.view()
    }

    /// Stops the API, the sources, then the pipeline (flushing the log).
    pub async fn shutdown(self) {
        // Streams of the API end when the set stops; the server then drains.
        self.tenants.begin_shutdown();
        if let Some(grpc) = self.grpc {
            grpc.shutdown().await;
        }
        self.tenants.shutdown().await;
        let _ = self.super_stop.send(true);
        let sources = self.super_sources.lock().take();
        if let Some(sources) = sources {
            sources.join().await;
        }
        if let Some(patrol) = self.patrol
            && let Err(error) = patrol.await
        {
            tracing::error!(%error, "patroller panicked");
        }
        drop(self.tenants);
        // Streams of the API may still hold the tenant set (and so the pipeline) for a moment.
        let mut pipeline = self.pipeline;
        for _ in 0..100 {
            match Arc::try_unwrap(pipeline) {
                Ok(p) => {
                    // Joining shard and writer threads blocks: keep it off the async workers.
                    if let Err(error) = tokio::task::spawn_blocking(move || p.shutdown()).await {
                        tracing::error!(%error, "pipeline shutdown panicked");
                    }
                    return;
                }
                Err(shared) => {
                    pipeline = shared;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tracing::warn!("pipeline still shared at shutdown; it stops when the last user ends");
    }
}
