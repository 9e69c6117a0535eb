//! Provisioners: how a tenant control plane comes to exist. One trait, three implementations:
//!
//! - [`native::Native`]: StatefulSets and Services in the super cluster, rendered from the
//!   ClusterVersion's templates; ready when the StatefulSets report ready replicas.
//! - [`embedded::Embedded`]: a simulated API server (`apisim`) inside the vc-manager process, serving
//!   HTTPS with the tenant's PKI; for machines without a real cluster.
//! - [`process::Process`]: real `etcd` and `kube-apiserver` child processes with the tenant's PKI.
//!
//! Every provisioner first makes the same common objects ([`common`]): the root namespace, the PKI
//! Secrets and the kubeconfig Secrets. A provisioner never blocks waiting for readiness: it reports
//! [`Readiness::Waiting`] and the controller is woken by watches (or a requeue).

pub mod common;
pub mod embedded;
pub mod native;
pub mod process;

use futures::future::BoxFuture;
use time::OffsetDateTime;
use vc_api::{ClusterVersion, VirtualCluster};

use crate::error::Error;
use crate::validate::{Checked, Invalid};

/// Everything a provisioner needs about one VirtualCluster.
#[derive(Clone, Copy, Debug)]
pub struct Tenant<'a> {
    /// The VirtualCluster.
    pub vc: &'a VirtualCluster,
    /// Its checked spec (cluster key = root namespace).
    pub checked: &'a Checked,
    /// Its ClusterVersion.
    pub cv: &'a ClusterVersion,
    /// The current time (certificate rotation decisions).
    pub now: OffsetDateTime,
}

/// Whether the control plane answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready to serve.
    Ready,
    /// Not yet; what is awaited.
    Waiting(String),
}

/// The result of one [`Provisioner::ensure`].
#[derive(Clone, Debug)]
pub struct Provisioned {
    /// Whether the control plane is ready.
    pub readiness: Readiness,
    /// The cluster-admin kubeconfig (YAML) of the tenant; the syncer uses it.
    pub admin_kubeconfig: String,
    /// PEM of the tenant's root CA (also the kubelet-client CA the vn-agent trusts).
    pub root_ca_pem: String,
    /// Whether this pass wrote anything (objects created, updated, certificates re-issued).
    pub changed: bool,
    /// When the earliest certificate is due for renewal (the controller requeues by then).
    pub next_renewal: OffsetDateTime,
}

/// How a tenant control plane is made, checked and removed.
pub trait Provisioner: Send + Sync {
    /// Short name (`native`, `embedded`, `process`) for logs and status messages.
    fn name(&self) -> &'static str;

    /// Checks that the ClusterVersion has what this provisioner needs; called before anything is
    /// created, so a bad ClusterVersion leaves nothing behind.
    fn check_version(&self, cv: &ClusterVersion) -> Result<(), Invalid>;

    /// Creates or updates what is missing or outdated and reports readiness. Idempotent: with nothing
    /// to change it writes nothing.
    fn ensure<'a>(
        &'a self,
        client: &'a kube::Client,
        tenant: Tenant<'a>,
    ) -> BoxFuture<'a, Result<Provisioned, Error>>;

    /// Stops whatever runs outside the super cluster for this tenant (servers, processes). The root
    /// namespace, and with it every object in it, is deleted by the caller.
    fn teardown<'a>(&'a self, cluster_key: &'a str) -> BoxFuture<'a, Result<(), Error>>;
}
