//! The error type of this crate: every variant names the start-up step that failed.

use std::path::PathBuf;
use std::time::Duration;

/// Why a test cluster could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum TestClusterError {
    /// `TESTCLUSTER_BACKEND` held a value that names no backend.
    #[error("TESTCLUSTER_BACKEND={value:?} is not one of `simulator`, `real`, `kubeconfig`")]
    UnknownBackend {
        /// The value found in the environment.
        value: String,
    },
    /// A backend was requested explicitly but an environment variable it needs is missing.
    #[error("backend {backend} needs the environment variable {var}")]
    MissingEnv {
        /// The backend that was requested.
        backend: &'static str,
        /// The variable that is not set.
        var: &'static str,
    },
    /// The temporary directory for certificates, logs and data could not be created.
    #[error("failed to create the temporary directory")]
    TempDir(#[source] std::io::Error),
    /// A file (certificate, key, kubeconfig) could not be written.
    #[error("failed to write {path}")]
    WriteFile {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No free loopback port could be reserved.
    #[error("failed to reserve a free loopback port")]
    FreePort(#[source] std::io::Error),
    /// A certificate or key could not be generated.
    #[error("failed to generate the {what}")]
    Certificate {
        /// Which certificate or key.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A process could not be started.
    #[error("failed to start {name} from {program}")]
    Spawn {
        /// Which component (`etcd`, `kube-apiserver`, ...).
        name: &'static str,
        /// The binary that was run.
        program: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A process exited before it became ready.
    #[error("{name} exited ({status}) before it became ready; last lines of its log:\n{log_tail}")]
    Exited {
        /// Which component.
        name: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines of its combined stdout/stderr.
        log_tail: String,
    },
    /// A component did not become ready within its time budget.
    #[error(
        "{name} was not ready after {waited:?} (last check: {last_check}); last lines of its log:\n{log_tail}"
    )]
    NotReady {
        /// Which component.
        name: &'static str,
        /// How long was waited.
        waited: Duration,
        /// The outcome of the last readiness check.
        last_check: String,
        /// The last lines of its combined stdout/stderr.
        log_tail: String,
    },
    /// The kubeconfig could not be read or turned into a client configuration.
    #[error("failed to load the kubeconfig {path}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig YAML could not be produced.
    #[error("failed to serialize the kubeconfig")]
    SerializeKubeconfig(#[source] serde_yaml::Error),
    /// A `kube::Client` could not be built from a valid configuration.
    #[error("failed to build a kube client")]
    Client(#[source] kube::Error),
    /// The in-process simulator failed to start.
    #[error("failed to start the simulator")]
    Simulator(#[source] apisim::SimError),
    /// A namespace for a test could not be created.
    #[error("failed to create namespace {name}")]
    CreateNamespace {
        /// The namespace that was being created.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}
