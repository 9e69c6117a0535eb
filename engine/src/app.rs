//! The running syncer: one [`Pipeline`] (log + shards + reconciler) fed by one source per
//! (cluster × synced kind). Used by the `syncer` binary, for real clusters and for the embedded default.
//!
//! Start-up order: open the log (replaying unapplied entries to the reconciler), read the resume points,
//! then start the sources. Shutdown order: stop the sources (no more appends), then stop the pipeline (the
//! shards finish what they hold, the writer flushes).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::config::TenantSpec;
use crate::naming;
use crate::patrol::{self, PatrolConfig, PatrolKind, Patroller, TenantKeys};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, PipelineStats};
use crate::record::SUPER_CLUSTER;
use crate::shard::Reconciler;
use crate::source::{self, ClusterRole, PipelineLog, SourceConfig, Sources, WatchTarget};

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
}

/// File in the data directory listing the cluster keys the last run served (one per line).
pub const SERVED_TENANTS_FILE: &str = "served-tenants";

/// Cluster keys the previous run on `data_dir` served that are not in `current`: their unapplied log entries
/// must be dropped (register them as removed in the tenant registry before the pipeline replays) and their
/// view entries and resume points forgotten (see [`Syncer::start`]).
pub fn removed_since_last_run(
    data_dir: &Path,
    current: &[TenantConnection],
) -> Result<Vec<String>, AppError> {
    let path = data_dir.join(SERVED_TENANTS_FILE);
    let previous = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(AppError::ServedTenants {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let current: HashSet<&str> = current.iter().map(|t| t.cluster_key.as_str()).collect();
    Ok(previous
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty() && !current.contains(k))
        .map(str::to_string)
        .collect())
}

fn record_served(data_dir: &Path, current: &[TenantConnection]) -> Result<(), AppError> {
    let path = data_dir.join(SERVED_TENANTS_FILE);
    let tmp = data_dir.join(format!("{SERVED_TENANTS_FILE}.tmp"));
    let text: String = current
        .iter()
        .map(|t| format!("{}\n", t.cluster_key))
        .collect();
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

/// A running syncer.
pub struct Syncer {
    pipeline: Pipeline,
    sources: Sources,
    stop: watch::Sender<bool>,
    tenants: usize,
    patrol: Option<tokio::task::JoinHandle<()>>,
}

impl Syncer {
    /// Opens the log, starts the shards with `reconciler` and one source per (cluster × kind), on the
    /// current tokio runtime. `removed` tenants (see [`removed_since_last_run`]) have their view entries
    /// and resume points dropped; the list of served tenants is then recorded in the data directory.
    pub fn start(
        super_client: kube::Client,
        tenants: &[TenantConnection],
        removed: &[String],
        pipeline_cfg: PipelineConfig,
        source_cfg: SourceConfig,
        reconciler: Arc<dyn Reconciler>,
    ) -> Result<Self, AppError> {
        let data_dir = pipeline_cfg.data_dir.clone();
        let pipeline = Pipeline::start(pipeline_cfg, reconciler).map_err(AppError::Pipeline)?;
        for cluster in removed {
            tracing::info!(%cluster, "tenant no longer configured: forgetting its view and resume points");
            pipeline
                .forget_cluster(cluster)
                .map_err(|source| AppError::Forget {
                    cluster: cluster.clone(),
                    source,
                })?;
        }
        record_served(&data_dir, tenants)?;
        let kinds = source_cfg.kinds.clone();
        let kind_names: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
        let served: HashSet<String> = tenants.iter().map(|t| t.cluster_key.clone()).collect();
        let mut clusters = vec![SUPER_CLUSTER.to_string()];
        clusters.extend(served.iter().cloned());
        let log =
            PipelineLog::new(&pipeline, &clusters, &kind_names).map_err(AppError::ResumePoints)?;
        let mut targets = vec![WatchTarget {
            role: ClusterRole::Super {
                tenants: Arc::new(served),
            },
            client: super_client,
            vc_label: None,
        }];
        for t in tenants {
            targets.push(WatchTarget {
                role: ClusterRole::Tenant {
                    cluster_key: t.cluster_key.clone(),
                },
                client: t.client.clone(),
                vc_label: Some(format!("{}/{}", t.spec.namespace, t.spec.name)),
            });
        }
        let (stop, stop_rx) = watch::channel(false);
        let sources = source::spawn(targets, &kinds, log, source_cfg, stop_rx);
        Ok(Self {
            pipeline,
            sources,
            stop,
            tenants: tenants.len(),
            patrol: None,
        })
    }

    /// Starts the patroller of the synced kinds (see [`crate::patrol`]) on the current runtime, over the
    /// tenants `tenants` returns at each pass; it stops with the sources.
    pub fn start_patrol(
        &mut self,
        super_client: kube::Client,
        tenants: TenantKeys,
        cfg: PatrolConfig,
    ) {
        let kinds = source::synced_kinds()
            .iter()
            .filter_map(PatrolKind::builtin)
            .collect();
        let patroller = Patroller::new(&self.pipeline, Some(super_client), tenants, kinds, cfg);
        self.patrol = Some(patrol::spawn(patroller, self.stop.subscribe()));
    }

    /// Current counters.
    pub fn status(&self) -> SyncerStatus {
        SyncerStatus {
            tenants: self.tenants,
            tenants_up: self.sources.tenants_up(),
            super_up: self.sources.super_up(),
            pipeline: self.pipeline.stats(),
        }
    }

    /// Stops the sources, then the pipeline (flushing the log).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.sources.join().await;
        if let Some(patrol) = self.patrol
            && let Err(error) = patrol.await
        {
            tracing::error!(%error, "patroller panicked");
        }
        let pipeline = self.pipeline;
        // Joining shard and writer threads blocks: keep it off the async workers.
        if let Err(error) = tokio::task::spawn_blocking(move || pipeline.shutdown()).await {
            tracing::error!(%error, "pipeline shutdown panicked");
        }
    }
}
