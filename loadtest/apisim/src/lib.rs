//! `apisim`: an embedded, kube-apiserver-faithful simulated Kubernetes API server.
//!
//! It serves the Kubernetes REST API over plain HTTP (or HTTPS with a given certificate, `tls`) on loopback for any resource type (built-in types and
//! the custom resources of CRDs created in it), stored as JSON in memory, with the semantics of the real
//! `kube-apiserver`: one global resourceVersion, list+watch with bookmarks and 410 Gone, conflicts,
//! finalizers, the status subresource, patches, namespace termination, ClusterIP allocation, and an
//! optional built-in scheduler + kubelet. Hundreds of instances fit in one process (an idle instance costs
//! tens of kilobytes and one accept task).
//!
//! Module map (data flow of a request):
//! `server` (HTTP accept loop) → `faults` (injected errors/latency) → `routing` (URL → resource request)
//! → `handlers` (REST verbs; `handlers::strategy` per-type rules, `handlers::admission` service accounts)
//! → `store` (objects with revisions, history) → `watch` (fan-out to watchers, reading the store's history).
//! Helpers: `registry` / `resource_type` (which resources exist), `schema` (CRD structural schemas),
//! `filter` + `selectors` (what a list or watch selects), `patch`, `validation`, `services` + `ipalloc`, `tables` + `table`, `openapi_routes` +
//! `openapi`, `discovery`, `protobuf` (request decoding for a few kinds), `status` (error bodies), `admin`
//! (runtime control endpoint). Built-in controllers:
//! `namespace_lifecycle` (namespace termination), `kubelet` (scheduler + kubelet). `podproxy`: `pods/log`,
//! `pods/exec`, `pods/attach` and `pods/portforward` proxied to the node's kubelet over HTTPS with a
//! configured client certificate (`SimConfig::kubelet_client`), upgrades spliced, like kube-apiserver.
//!
//! What is simulated, beyond plain CRUD: defaults and admission for pods (service account token volume,
//! default tolerations, QoS class), services (ClusterIP/NodePort allocation, defaults) and deployments;
//! every namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (a placeholder CA);
//! the `scale` subresource of workloads; validation of pod containers, service ports and workload
//! selectors; CRDs (served at once, `Established`, printer columns, status subresource, structural-schema
//! pruning and validation except `pattern` and CEL rules); EndpointSlices are served but no controller fills
//! them.
//!
//! What is not: authentication and authorization (everything is allowed, client certificates are not
//! requested), server-side apply (415),
//! `fieldValidation=Strict` (unknown fields are kept, not rejected), managedFields, the garbage collector
//! (`propagationPolicy` is accepted but dependents are never deleted), workload controllers (deployments do
//! not create replica sets or pods), YAML bodies, and protobuf bodies of kinds other than Namespace,
//! ConfigMap, Secret and ServiceAccount (so `kubectl create namespace|configmap|secret|serviceaccount` work,
//! `kubectl create deployment|service ...` get 415 with a clear message; `create -f`, `apply -f`, `run`,
//! `scale`, `label`, `patch` and `delete` send JSON and work). Core/v1 and events.k8s.io/v1 Events are
//! stored separately (the real server converts between them). Deleting a CRD deletes its custom resources
//! at once rather than through a `customresourcecleanup` finalizer.

pub mod admin;
pub mod discovery;
pub mod faults;
pub mod filter;
pub mod handlers;
pub mod ipalloc;
pub mod kubelet;
pub mod namespace_lifecycle;
pub mod openapi;
pub mod openapi_routes;
pub mod patch;
pub mod podproxy;
pub mod protobuf;
pub mod registry;
pub mod resource_type;
pub mod routing;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod services;
pub mod state;
pub mod status;
pub mod store;
pub mod table;
pub mod tables;
pub mod tls;
pub mod validation;
pub mod watch;

mod bootstrap;
#[cfg(test)]
mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Configuration of one simulated API server.
///
/// `Default` gives a server on a free loopback port, a 10,000-event watch history, 10 s bookmarks, the
/// kubeadm default service range, no kubelet, no faults and the real 3 MiB request body limit.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to listen on; default `127.0.0.1:0` (a free port).
    pub bind: SocketAddr,
    /// Number of watch events kept for resuming watches; a watch from an older resourceVersion gets 410 Gone.
    pub history_window: usize,
    /// Interval between BOOKMARK events on watches that asked for them (the real server uses about 1 min).
    pub bookmark_interval: Duration,
    /// Service ClusterIP range (IPv4 CIDR).
    pub service_cidr: String,
    /// Inclusive NodePort range.
    pub node_port_range: (u16, u16),
    /// Built-in scheduler + kubelet; `None` leaves pods Pending unless something binds them.
    pub kubelet: Option<KubeletConfig>,
    /// Faults injected from the start (changeable at run time through [`Simulator::faults`]).
    pub faults: faults::FaultConfig,
    /// Largest accepted request body in bytes (the real server: 3 MiB).
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate instead of plain HTTP (`None`, the default).
    pub tls: Option<tls::TlsConfig>,
    /// How `pods/log|exec|attach|portforward` reach node kubelets (client certificate, CA); `None` (the
    /// default): those requests fail like an unreachable kubelet once the pod and node are resolved.
    pub kubelet_client: Option<podproxy::KubeletClientConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_window: 10_000,
            bookmark_interval: Duration::from_secs(10),
            service_cidr: "10.96.0.0/12".to_string(),
            node_port_range: (30000, 32767),
            kubelet: None,
            faults: faults::FaultConfig::default(),
            max_body_bytes: 3 * 1024 * 1024,
            tls: None,
            kubelet_client: None,
        }
    }
}

/// Configuration of the built-in scheduler + kubelet.
///
/// `Default`: 3 nodes named `node-0`.. at `172.18.0.2`.. (kubelet port 10250), pod IPs from
/// `10.244.0.0/16`, pods Running 100 ms after binding, node heartbeats (Lease renewals) every 10 s.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// Number of simulated nodes.
    pub nodes: usize,
    /// Node names are this prefix plus an index.
    pub node_name_prefix: String,
    /// Pod IP range (IPv4 CIDR).
    pub pod_cidr: String,
    /// Delay between binding a pod and reporting it Running.
    pub start_delay: Duration,
    /// Interval between node Lease renewals.
    pub heartbeat_interval: Duration,
    /// InternalIP of the first node; node i gets this address + i (default `172.18.0.2`). A loopback
    /// address (`127.x.y.z`) lets pod subresources reach a kubelet listening there.
    pub first_node_ip: std::net::Ipv4Addr,
    /// Kubelet port the nodes advertise (`status.daemonEndpoints.kubeletEndpoint.Port`, default 10250).
    pub kubelet_port: u16,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            nodes: 3,
            node_name_prefix: "node-".to_string(),
            pod_cidr: "10.244.0.0/16".to_string(),
            start_delay: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(10),
            first_node_ip: std::net::Ipv4Addr::new(172, 18, 0, 2),
            kubelet_port: 10250,
        }
    }
}

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listening socket failed.
    #[error("failed to bind the API server socket on {addr}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is unusable (e.g. an unparsable CIDR).
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// A running simulated API server. Dropping it stops serving (open connections are closed).
///
/// ```no_run
/// # async fn demo() -> Result<(), apisim::SimError> {
/// let sim = apisim::Simulator::start(apisim::SimConfig::default()).await?;
/// std::fs::write("/tmp/kubeconfig", sim.kubeconfig_yaml("sim")).ok();
/// println!("serving at {}", sim.url());
/// # Ok(()) }
/// ```
pub struct Simulator {
    state: Arc<state::ApiState>,
    server: server::ServerHandle,
    tls: Option<Arc<tls::SimTls>>,
}

impl Simulator {
    /// Binds the socket, creates the start-up objects (namespaces `default`, `kube-system`, `kube-public`,
    /// `kube-node-lease` and the `default/kubernetes` Service) and starts serving on the current tokio
    /// runtime; with a kubelet configured, also its nodes.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let tls = match &config.tls {
            Some(tls_config) => Some(Arc::new(tls::SimTls::new(tls_config)?)),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.bind,
            source,
        })?;
        let state = state::ApiState::new(config, addr)?;
        bootstrap::create_startup_objects(&state)?;
        if state.config.kubelet.is_some() {
            kubelet::spawn(&state);
        }
        let server = server::ServerHandle::spawn_with_tls(listener, state.clone(), tls.clone());
        Ok(Simulator { state, server, tls })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr()
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// Whether this instance serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Replaces the serving certificate of an HTTPS instance (new connections use it); an error when the
    /// PEM does not parse or the instance serves plain HTTP.
    pub fn reload_tls(&self, config: &tls::TlsConfig) -> Result<(), SimError> {
        match &self.tls {
            Some(tls) => tls.reload(config),
            None => Err(SimError::Config(
                "this simulator serves plain HTTP; TLS cannot be reloaded".into(),
            )),
        }
    }

    /// A kubeconfig (YAML) whose only cluster/context/user is this server, usable by kubectl and kube-rs.
    /// On an HTTPS instance with a known CA it carries that CA as `certificate-authority-data`.
    pub fn kubeconfig_yaml(&self, context: &str) -> String {
        use base64::Engine as _;
        let ca = self
            .tls
            .as_ref()
            .and_then(|t| t.ca_pem())
            .map(|pem| {
                format!(
                    "    certificate-authority-data: {}\n",
                    base64::engine::general_purpose::STANDARD.encode(pem)
                )
            })
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {url}\n{ca}\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    \
             namespace: default\ncurrent-context: {context}\nusers:\n- name: {context}\n  user: {{}}\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// The runtime-settable fault switchboard of this instance.
    pub fn faults(&self) -> Arc<faults::Faults> {
        self.state.faults.clone()
    }

    /// Forgets all watch history and list snapshots: any older resourceVersion now gets 410 Gone.
    pub fn force_compaction(&self) {
        self.state.store.compact();
    }

    /// Current global resourceVersion.
    pub fn revision(&self) -> u64 {
        self.state.store.revision()
    }

    /// Number of stored objects of all types.
    pub fn object_count(&self) -> usize {
        self.state.store.object_count()
    }

    /// JSON bytes held for the current objects (the store's own count, without allocator overhead).
    pub fn stored_bytes(&self) -> usize {
        self.state.store.stored_bytes().0
    }

    /// Stops serving, closes all connections and waits until the port is released.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
