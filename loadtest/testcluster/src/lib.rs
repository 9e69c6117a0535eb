//! One way for a test to get a Kubernetes API server.
//!
//! [`TestCluster::start`] picks the backend from the environment:
//! - `TESTCLUSTER_KUBECONFIG=<path>`: an existing cluster ([`Backend::Kubeconfig`]);
//! - `KUBE_APISERVER_BIN` and `ETCD_BIN` (optionally `KUBE_CONTROLLER_MANAGER_BIN`): real etcd (3.4+) and
//!   kube-apiserver (1.28+) processes on loopback with freshly generated certificates
//!   ([`Backend::RealBinaries`]);
//! - otherwise an in-process [`apisim::Simulator`] ([`Backend::Simulator`]).
//!
//! `TESTCLUSTER_BACKEND=simulator|real|kubeconfig` forces a choice. Every backend writes a kubeconfig
//! usable by kubectl ([`TestCluster::kubeconfig_path`]) and hands out fresh `kube::Client`s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! let cluster = testcluster::TestCluster::start().await?;
//! let ns = cluster.create_namespace("demo").await?;
//! let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(cluster.client().await?, &ns);
//! let _ = configmaps.list(&Default::default()).await?;
//! # Ok(()) }
//! ```

mod cluster;
mod error;
mod kubeconfig;
mod options;
mod real;
mod sim;

pub use cluster::TestCluster;
pub use error::TestClusterError;
pub use options::{
    Backend, ClusterOptions, ENV_BACKEND, ENV_ETCD_BIN, ENV_KUBE_APISERVER_BIN,
    ENV_KUBE_CONTROLLER_MANAGER_BIN, ENV_KUBECONFIG,
};
pub use real::etcd::Etcd;
