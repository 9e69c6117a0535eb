//! Which backend a test gets, and the options that shape it.

use std::path::PathBuf;
use std::time::Duration;

use crate::TestClusterError;

/// Path of the kube-apiserver binary; with [`ENV_ETCD_BIN`] it selects [`Backend::RealBinaries`].
pub const ENV_KUBE_APISERVER_BIN: &str = "KUBE_APISERVER_BIN";
/// Path of the etcd binary (3.4 or newer).
pub const ENV_ETCD_BIN: &str = "ETCD_BIN";
/// Optional path of kube-controller-manager; with it, namespace deletion completes on real binaries.
pub const ENV_KUBE_CONTROLLER_MANAGER_BIN: &str = "KUBE_CONTROLLER_MANAGER_BIN";
/// Path of a kubeconfig for an existing cluster; selects [`Backend::Kubeconfig`].
pub const ENV_KUBECONFIG: &str = "TESTCLUSTER_KUBECONFIG";
/// Explicit backend choice: `simulator`, `real` or `kubeconfig` (overrides the inference).
pub const ENV_BACKEND: &str = "TESTCLUSTER_BACKEND";

/// Where a test's API server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An in-process `apisim::Simulator` (the default).
    Simulator,
    /// Real etcd + kube-apiserver processes on loopback (`KUBE_APISERVER_BIN` and `ETCD_BIN`).
    RealBinaries,
    /// An existing cluster reached through `TESTCLUSTER_KUBECONFIG`.
    Kubeconfig,
}

/// Options for [`crate::TestCluster::start_with`].
///
/// Every field is a simulator knob; the real backends ignore them (a real cluster has no built-in
/// kubelet, its watch history is etcd's compaction window and its bookmark interval is fixed at about a
/// minute). Tests that depend on a knob check [`crate::TestCluster::simulator`] and skip otherwise.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Start the simulator's built-in scheduler + kubelet with this many nodes (`None`: no kubelet, pods
    /// stay Pending like on a cluster without nodes).
    pub kubelet_nodes: Option<usize>,
    /// Number of watch events the simulator keeps for resuming watches (`None`: its default).
    pub history_window: Option<usize>,
    /// Interval between BOOKMARK events (`None`: the simulator's default).
    pub bookmark_interval: Option<Duration>,
}

impl ClusterOptions {
    /// Enables the built-in kubelet with `nodes` nodes.
    #[must_use]
    pub fn with_kubelet_nodes(mut self, nodes: usize) -> Self {
        self.kubelet_nodes = Some(nodes);
        self
    }

    /// Sets the watch history window.
    #[must_use]
    pub fn with_history_window(mut self, events: usize) -> Self {
        self.history_window = Some(events);
        self
    }

    /// Sets the bookmark interval.
    #[must_use]
    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = Some(interval);
        self
    }
}

/// The resolved choice of backend with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Simulator,
    RealBinaries {
        apiserver: PathBuf,
        etcd: PathBuf,
        controller_manager: Option<PathBuf>,
    },
    Kubeconfig {
        path: PathBuf,
    },
}

impl Plan {
    /// Resolves the backend from environment variables read through `var`.
    ///
    /// Order: `TESTCLUSTER_BACKEND` if set; otherwise `TESTCLUSTER_KUBECONFIG`; otherwise real binaries
    /// when both `KUBE_APISERVER_BIN` and `ETCD_BIN` are set (`ETCD_BIN` alone does not count: CI has etcd
    /// but no apiserver); otherwise the simulator.
    pub(crate) fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Plan, TestClusterError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let real = |required: bool| -> Result<Option<Plan>, TestClusterError> {
            let apiserver = var(ENV_KUBE_APISERVER_BIN);
            let etcd = var(ENV_ETCD_BIN);
            match (apiserver, etcd) {
                (Some(apiserver), Some(etcd)) => Ok(Some(Plan::RealBinaries {
                    apiserver: apiserver.into(),
                    etcd: etcd.into(),
                    controller_manager: var(ENV_KUBE_CONTROLLER_MANAGER_BIN).map(PathBuf::from),
                })),
                (None, _) if required => Err(TestClusterError::MissingEnv {
                    backend: "real",
                    var: ENV_KUBE_APISERVER_BIN,
                }),
                (_, None) if required => Err(TestClusterError::MissingEnv {
                    backend: "real",
                    var: ENV_ETCD_BIN,
                }),
                _ => Ok(None),
            }
        };
        let kubeconfig = |required: bool| -> Result<Option<Plan>, TestClusterError> {
            match var(ENV_KUBECONFIG) {
                Some(path) => Ok(Some(Plan::Kubeconfig { path: path.into() })),
                None if required => Err(TestClusterError::MissingEnv {
                    backend: "kubeconfig",
                    var: ENV_KUBECONFIG,
                }),
                None => Ok(None),
            }
        };
        if let Some(choice) = var(ENV_BACKEND) {
            return match choice.trim() {
                "simulator" | "sim" => Ok(Plan::Simulator),
                "real" => real(true).map(|p| p.unwrap_or(Plan::Simulator)),
                "kubeconfig" => kubeconfig(true).map(|p| p.unwrap_or(Plan::Simulator)),
                _ => Err(TestClusterError::UnknownBackend { value: choice }),
            };
        }
        if let Some(plan) = kubeconfig(false)? {
            return Ok(plan);
        }
        Ok(real(false)?.unwrap_or(Plan::Simulator))
    }

    /// Resolves the backend from the process environment.
    pub(crate) fn from_env() -> Result<Plan, TestClusterError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn plan(vars: &[(&str, &str)]) -> Result<Plan, TestClusterError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Plan::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_the_simulator() {
        assert_eq!(plan(&[]).ok(), Some(Plan::Simulator));
    }

    #[test]
    fn etcd_alone_does_not_select_real_binaries() {
        assert_eq!(
            plan(&[(ENV_ETCD_BIN, "/usr/bin/etcd")]).ok(),
            Some(Plan::Simulator)
        );
    }

    #[test]
    fn both_binaries_select_real_binaries_with_optional_controller_manager() {
        let got = plan(&[
            (ENV_ETCD_BIN, "/e"),
            (ENV_KUBE_APISERVER_BIN, "/a"),
            (ENV_KUBE_CONTROLLER_MANAGER_BIN, "/k"),
        ]);
        assert_eq!(
            got.ok(),
            Some(Plan::RealBinaries {
                apiserver: "/a".into(),
                etcd: "/e".into(),
                controller_manager: Some("/k".into()),
            })
        );
    }

    #[test]
    fn kubeconfig_wins_over_binaries() {
        let got = plan(&[
            (ENV_ETCD_BIN, "/e"),
            (ENV_KUBE_APISERVER_BIN, "/a"),
            (ENV_KUBECONFIG, "/kc"),
        ]);
        assert_eq!(got.ok(), Some(Plan::Kubeconfig { path: "/kc".into() }));
    }

    #[test]
    fn explicit_backend_overrides_and_reports_missing_variables() {
        let got = plan(&[(ENV_BACKEND, "simulator"), (ENV_KUBECONFIG, "/kc")]);
        assert_eq!(got.ok(), Some(Plan::Simulator));
        let got = plan(&[(ENV_BACKEND, "real"), (ENV_ETCD_BIN, "/e")]);
        assert!(matches!(
            got,
            Err(TestClusterError::MissingEnv {
                var: ENV_KUBE_APISERVER_BIN,
                ..
            })
        ));
        let got = plan(&[(ENV_BACKEND, "kubeconfig")]);
        assert!(matches!(
            got,
            Err(TestClusterError::MissingEnv {
                var: ENV_KUBECONFIG,
                ..
            })
        ));
        let got = plan(&[(ENV_BACKEND, "minikube")]);
        assert!(matches!(got, Err(TestClusterError::UnknownBackend { .. })));
    }

    #[test]
    fn blank_values_count_as_unset() {
        assert_eq!(plan(&[(ENV_KUBECONFIG, "  ")]).ok(), Some(Plan::Simulator));
    }

    #[test]
    fn builders_set_fields() {
        let opts = ClusterOptions::default()
            .with_kubelet_nodes(2)
            .with_history_window(7)
            .with_bookmark_interval(Duration::from_millis(300));
        assert_eq!(opts.kubelet_nodes, Some(2));
        assert_eq!(opts.history_window, Some(7));
        assert_eq!(opts.bookmark_interval, Some(Duration::from_millis(300)));
    }
}
