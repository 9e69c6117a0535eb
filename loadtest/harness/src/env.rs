//! The clusters of a run: the super cluster (simulated in this process, or a real one from a kubeconfig),
//! the tenants (simulated in this process, or existing kubeconfigs), and the kubeconfigs the syncer child
//! is started with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use apisim::{KubeletConfig, SimConfig, Simulator};
use syncer::config::{TenantSpec, derived_uid, load_tenants_dir};
use syncer::naming;

use crate::cli::{Global, StatusWriter, Target};
use crate::observe::ClusterId;
use crate::syncer_proc::SyncerLaunch;
use crate::workload::Lane;

/// Watch history kept by the simulated super cluster (events): enough for the harness's and the syncer's
/// watches to keep up with a 30,000-pod burst without 410 Gone in the common case (both relist if not).
const SUPER_HISTORY: usize = 50_000;

/// One tenant (virtual cluster).
#[derive(Clone)]
pub struct Tenant {
    /// VC name.
    pub name: String,
    /// Its cluster id in observations (index + 1).
    pub cluster: ClusterId,
    /// Client for the tenant's API server.
    pub client: kube::Client,
    /// The syncer's cluster key for it (prefix of its super namespaces).
    pub cluster_key: String,
}

/// The clusters of a run.
pub struct Env {
    /// Where the run happens.
    pub target: Target,
    /// Client for the super cluster.
    pub super_client: kube::Client,
    /// Kubeconfig of the super cluster.
    pub super_kubeconfig: PathBuf,
    /// `--tenants-dir` for the syncer.
    pub tenants_dir: PathBuf,
    /// The tenants used by the scenario.
    pub tenants: Vec<Tenant>,
    /// Who writes pod status on the super cluster.
    pub status_writer: StatusWriter,
    super_sim: Option<Simulator>,
    tenant_sims: Vec<Simulator>,
}

impl Env {
    /// Sets up `vcs` tenants and the super cluster for `global.target`, writing kubeconfigs under `work`.
    pub async fn start(global: &Global, vcs: usize, work: &Path) -> Result<Env> {
        let tenants_dir = work.join("tenants");
        std::fs::create_dir_all(&tenants_dir)
            .with_context(|| format!("create {}", tenants_dir.display()))?;
        let (super_sim, super_kubeconfig) = match &global.target {
            Target::Embedded => {
                let sim = Simulator::start(SimConfig {
                    kubelet: (global.status_writer == StatusWriter::Cluster).then(|| {
                        KubeletConfig {
                            nodes: global.nodes.max(1),
                            heartbeat_interval: Duration::from_secs(3600),
                            ..KubeletConfig::default()
                        }
                    }),
                    history_window: SUPER_HISTORY,
                    ..SimConfig::default()
                })
                .await
                .context("start the simulated super cluster")?;
                let path = work.join("super.yaml");
                std::fs::write(&path, sim.kubeconfig_yaml("super"))
                    .with_context(|| format!("write {}", path.display()))?;
                (Some(sim), path)
            }
            Target::Kubeconfig(p) => (None, p.clone()),
        };
        let super_client = syncer::app::client_from_kubeconfig(&super_kubeconfig).await?;
        let mut tenant_sims = Vec::new();
        let (specs, tenants_dir) = match (&global.target, &global.tenant_kubeconfigs) {
            (Target::Kubeconfig(_), Some(dir)) => {
                let specs = load_tenants_dir(dir)?;
                if specs.len() < vcs {
                    bail!(
                        "{} holds {} tenant kubeconfigs; the scenario needs {vcs}",
                        dir.display(),
                        specs.len()
                    );
                }
                if specs.len() > vcs {
                    tracing::warn!(
                        "{} holds {} tenants; the scenario writes to the first {vcs} (the syncer serves all)",
                        dir.display(),
                        specs.len()
                    );
                }
                (specs.into_iter().take(vcs).collect::<Vec<_>>(), dir.clone())
            }
            (Target::Embedded, Some(_)) => {
                bail!("--tenant-kubeconfigs needs --target kubeconfig=PATH")
            }
            (_, None) => {
                let mut specs = Vec::with_capacity(vcs);
                for i in 1..=vcs {
                    let name = format!("vc-{i}");
                    let sim = Simulator::start(SimConfig::default())
                        .await
                        .with_context(|| format!("start simulated tenant {name}"))?;
                    let path = tenants_dir.join(format!("{name}.yaml"));
                    std::fs::write(&path, sim.kubeconfig_yaml(&name))
                        .with_context(|| format!("write {}", path.display()))?;
                    specs.push(TenantSpec {
                        uid: derived_uid("default", &name),
                        name,
                        namespace: "default".into(),
                        kubeconfig: path,
                    });
                    tenant_sims.push(sim);
                }
                (specs, tenants_dir)
            }
        };
        let mut tenants = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let client = syncer::app::client_from_kubeconfig(&spec.kubeconfig).await?;
            tenants.push(Tenant {
                cluster_key: naming::cluster_key(&spec.namespace, &spec.name, &spec.uid),
                name: spec.name,
                cluster: ClusterId::try_from(i + 1).context("too many tenants")?,
                client,
            });
        }
        Ok(Env {
            target: global.target.clone(),
            super_client,
            super_kubeconfig,
            tenants_dir,
            tenants,
            status_writer: global.status_writer,
            super_sim,
            tenant_sims,
        })
    }

    /// One lane per (tenant in `tenants`, namespace in `namespaces`): written to the tenant, expected in its
    /// super namespace.
    pub fn tenant_lanes(&self, tenants: &[usize], namespaces: &[String]) -> Vec<Lane> {
        let mut lanes = Vec::new();
        for &t in tenants {
            let tenant = &self.tenants[t];
            for ns in namespaces {
                lanes.push(Lane {
                    cluster: tenant.cluster,
                    client: tenant.client.clone(),
                    namespace: ns.clone(),
                    super_namespace: naming::super_namespace(&tenant.cluster_key, ns),
                });
            }
        }
        lanes
    }

    /// Lanes written straight to the super cluster, one per namespace.
    pub fn direct_lanes(&self, namespaces: &[String]) -> Vec<Lane> {
        namespaces
            .iter()
            .map(|ns| Lane {
                cluster: crate::observe::SUPER,
                client: self.super_client.clone(),
                namespace: ns.clone(),
                super_namespace: ns.clone(),
            })
            .collect()
    }

    /// How to start the syncer on these clusters.
    pub fn launch(
        &self,
        global: &Global,
        data_dir: PathBuf,
        log_file: PathBuf,
    ) -> Result<SyncerLaunch> {
        Ok(SyncerLaunch {
            bin: crate::syncer_proc::find_syncer_bin(global.syncer_bin.as_deref())?,
            super_kubeconfig: self.super_kubeconfig.clone(),
            tenants_dir: self.tenants_dir.clone(),
            data_dir,
            shards: global.shards,
            no_fairness: false,
            extra_args: global.syncer_args.clone(),
            log_file,
        })
    }

    /// Whether the super cluster is simulated in this process.
    pub fn is_embedded(&self) -> bool {
        self.super_sim.is_some()
    }

    /// Stops the simulated servers.
    pub async fn shutdown(self) {
        for s in self.tenant_sims {
            s.shutdown().await;
        }
        if let Some(s) = self.super_sim {
            s.shutdown().await;
        }
    }
}
