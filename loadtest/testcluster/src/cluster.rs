//! [`TestCluster`]: one API server for one test, whichever backend provides it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::options::{Backend, ClusterOptions, Plan};
use crate::real::{RealBinaries, RealCluster};
use crate::{TestClusterError, kubeconfig, sim};

/// The running API server behind a [`TestCluster`].
enum Inner {
    Simulator(apisim::Simulator),
    Real(Box<RealCluster>),
    Kubeconfig,
}

/// An API server for a test.
///
/// The simulator serves on the tokio runtime of the test that started it, so that runtime must not be
/// blocked while the test waits for the server: run external clients such as kubectl with
/// `tokio::process::Command` (or use a multi-thread runtime), never `std::process::Command::output()`.
///
/// Dropping it stops the simulator or kills the processes it started (also when the test panics, since
/// unwinding drops it) and removes its temporary directory. An existing cluster
/// ([`Backend::Kubeconfig`]) is left as it is, including the namespaces tests created in it.
pub struct TestCluster {
    // Declaration order is drop order: the server stops before its directory is removed.
    inner: Inner,
    kubeconfig_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("backend", &self.backend())
            .field("kubeconfig_path", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

impl TestCluster {
    /// Starts a cluster on the backend the environment selects, with default options.
    pub async fn start() -> Result<TestCluster, TestClusterError> {
        Self::start_with(ClusterOptions::default()).await
    }

    /// Starts a cluster on the backend the environment selects; `opts` apply to the simulator only.
    pub async fn start_with(opts: ClusterOptions) -> Result<TestCluster, TestClusterError> {
        Self::start_planned(opts, Plan::from_env()?).await
    }

    /// Starts the backend `plan` names.
    async fn start_planned(
        opts: ClusterOptions,
        plan: Plan,
    ) -> Result<TestCluster, TestClusterError> {
        let dir = tempfile::Builder::new()
            .prefix("testcluster-")
            .tempdir()
            .map_err(TestClusterError::TempDir)?;
        tracing::info!(?plan, dir = %dir.path().display(), "starting test cluster");
        let (inner, kubeconfig_path) = match plan {
            Plan::Simulator => {
                let simulator = sim::start(&opts)
                    .await
                    .map_err(TestClusterError::Simulator)?;
                let path = dir.path().join("kubeconfig");
                kubeconfig::write(&path, &simulator.kubeconfig_yaml("testcluster"))?;
                (Inner::Simulator(simulator), path)
            }
            Plan::RealBinaries {
                apiserver,
                etcd,
                controller_manager,
            } => {
                let path = dir.path().join("kubeconfig");
                let binaries = RealBinaries {
                    apiserver,
                    etcd,
                    controller_manager,
                };
                let real = RealCluster::start(&binaries, dir.path(), &path).await?;
                (Inner::Real(Box::new(real)), path)
            }
            Plan::Kubeconfig { path } => (Inner::Kubeconfig, path),
        };
        Ok(TestCluster {
            inner,
            kubeconfig_path,
            _dir: dir,
        })
    }

    /// Which backend serves this cluster.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Simulator(_) => Backend::Simulator,
            Inner::Real(_) => Backend::RealBinaries,
            Inner::Kubeconfig => Backend::Kubeconfig,
        }
    }

    /// A fresh `kube::Client` for this cluster (cluster-admin on real binaries).
    pub async fn client(&self) -> Result<kube::Client, TestClusterError> {
        kubeconfig::client_from_file(&self.kubeconfig_path).await
    }

    /// The client configuration behind [`TestCluster::client`], for tests that need to change it.
    ///
    /// For example kube 5 clients retry 429/503/504 answers by default (`default_retry`, honouring
    /// `Retry-After`); a test that must see those answers sets `default_retry = false` and builds its own
    /// client with `kube::Client::try_from(config)`.
    pub async fn config(&self) -> Result<kube::Config, TestClusterError> {
        kubeconfig::config_from_file(&self.kubeconfig_path).await
    }

    /// The kubeconfig file for this cluster, usable by kubectl (`kubectl --kubeconfig <path>`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The simulator, for simulator-only features (faults, forced compaction); `None` on other backends.
    pub fn simulator(&self) -> Option<&apisim::Simulator> {
        match &self.inner {
            Inner::Simulator(simulator) => Some(simulator),
            _ => None,
        }
    }

    /// `true` when deleting a namespace completes (its contents are removed and it disappears).
    ///
    /// On the real kube-apiserver that is the job of kube-controller-manager's namespace controller, so
    /// real binaries without `KUBE_CONTROLLER_MANAGER_BIN` leave namespaces `Terminating` forever. An
    /// existing cluster is assumed to run a controller manager.
    pub fn namespace_deletion_completes(&self) -> bool {
        matches!(self.inner, Inner::Simulator(_)) || self.runs_controllers()
    }

    /// `true` when kube-controller-manager's controllers act on the objects tests create (real binaries
    /// with `KUBE_CONTROLLER_MANAGER_BIN`, or an existing cluster). They write too — the deployment
    /// controller annotates Deployments, the root-CA publisher adds `kube-root-ca.crt` to every
    /// namespace — so tests that count writes exactly check this first. The simulator only does the
    /// namespace controller's job.
    pub fn runs_controllers(&self) -> bool {
        match &self.inner {
            Inner::Simulator(_) => false,
            Inner::Kubeconfig => true,
            Inner::Real(real) => real.has_controller_manager(),
        }
    }

    /// Creates a namespace named `<prefix>-<random suffix>` and returns its name, so concurrent tests
    /// and repeated runs on an existing cluster never collide.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String, TestClusterError> {
        let name = unique_name(prefix);
        let namespaces: Api<Namespace> = Api::all(self.client().await?);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|source| TestClusterError::CreateNamespace {
                name: name.clone(),
                source,
            })?;
        Ok(name)
    }

    /// The error of the first real process that has exited, if any (always `None` for other backends).
    pub fn exited_process_error(&mut self) -> Option<TestClusterError> {
        match &mut self.inner {
            Inner::Real(real) => real.exited_error(),
            _ => None,
        }
    }
}

/// `<prefix>-<8 hex digits>`, shortened so the result is a valid DNS-1123 label (at most 63 characters,
/// lower-case alphanumerics and '-').
fn unique_name(prefix: &str) -> String {
    let cleaned: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(54)
        .collect();
    let cleaned = cleaned.trim_matches('-');
    let cleaned = if cleaned.is_empty() { "test" } else { cleaned };
    format!("{cleaned}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulator_plan_gives_a_simulator_without_controllers() -> anyhow::Result<()> {
        let cluster =
            TestCluster::start_planned(ClusterOptions::default(), Plan::Simulator).await?;
        assert_eq!(cluster.backend(), Backend::Simulator);
        assert!(cluster.simulator().is_some());
        assert!(!cluster.runs_controllers());
        assert!(cluster.namespace_deletion_completes());
        let namespaces: Api<Namespace> = Api::all(cluster.client().await?);
        assert!(namespaces.get_opt("default").await?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn kubeconfig_plan_uses_the_given_file_and_leaves_the_server_alone() -> anyhow::Result<()>
    {
        let existing = apisim::Simulator::start(apisim::SimConfig::default()).await?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("existing.kubeconfig");
        std::fs::write(&path, existing.kubeconfig_yaml("existing"))?;

        let cluster = TestCluster::start_planned(
            ClusterOptions::default(),
            Plan::Kubeconfig { path: path.clone() },
        )
        .await?;
        assert_eq!(cluster.backend(), Backend::Kubeconfig);
        assert_eq!(cluster.kubeconfig_path(), path.as_path());
        assert!(cluster.simulator().is_none());
        assert!(cluster.runs_controllers());
        let ns = cluster.create_namespace("existing").await?;
        drop(cluster);

        // The existing server keeps running and keeps what the test created.
        assert!(path.exists());
        let client = kube::Client::try_from(
            kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&path)?,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?,
        )?;
        let namespaces: Api<Namespace> = Api::all(client);
        assert!(namespaces.get_opt(&ns).await?.is_some());
        Ok(())
    }

    #[test]
    fn unique_names_are_dns_labels_and_differ() {
        let a = unique_name("Conformance_Watch!");
        let b = unique_name("Conformance_Watch!");
        assert_ne!(a, b);
        for name in [&a, &b, &unique_name(""), &unique_name(&"x".repeat(100))] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
        assert!(a.starts_with("conformance-watch-"), "{a}");
    }
}
