//! Errors of a reconcile. All of them are retried (with backoff) by the controller; the ones retrying
//! cannot fix are reported in the VirtualCluster's status instead (see `validate`).

/// A failed step of a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request to the super cluster failed.
    #[error("failed to {step}")]
    Kube {
        /// What was being done.
        step: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The PKI could not be generated.
    #[error("PKI generation failed")]
    Pki(#[from] crate::pki::PkiError),
    /// A name the tenant needs is held by an object vc-manager did not create for this VirtualCluster.
    #[error("{what} exists and belongs to someone else")]
    NotOurs {
        /// The object.
        what: String,
    },
    /// The root namespace is still being deleted (from an earlier VirtualCluster of the same key).
    #[error("namespace {0} is terminating")]
    Terminating(String),
    /// A ClusterVersion template could not be rendered into an object.
    #[error("cannot render the {component} {kind} template: {message}")]
    Template {
        /// Component (etcd, apiserver, controller-manager).
        component: String,
        /// StatefulSet or Service.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A provisioner-specific step failed (starting a server, a process).
    #[error("{0}")]
    Provision(String),
}

/// Shorthand for mapping a `kube::Error` into [`Error::Kube`].
pub fn kube_err(step: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let step = step.into();
    move |source| Error::Kube { step, source }
}

/// Whether a kube error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is a 409 (conflict or already exists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
