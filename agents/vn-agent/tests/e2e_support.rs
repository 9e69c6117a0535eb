//! End-to-end rig: a simulated super cluster with one node, the real syncer in this process (sled log,
//! shards, sources, its gRPC API over mutual TLS with the PKI it generates), simulated tenant clusters
//! registered with it over gRPC (each with a kubelet-client CA), a simulated kubelet and the vn-agent.
//!
//! The path of a tenant `kubectl logs`:
//! tenant apisim `pods/log` → virtual node (InternalIP + kubelet port, written by the syncer) → vn-agent
//! (tenant's kubelet-client certificate, CN = cluster key, verified against the CA the tenant registered) →
//! syncer `Translation.ToSuper` → simulated kubelet `/containerLogs/{super ns}/{super pod}/{c}`.
//!
//! The super node's address is 127.0.0.1; the agent listens on a free port there, which the syncer's virtual
//! nodes advertise (`Resources::with_vn_agent_port`, the `--vn-agent-port` of the binary).
#![allow(dead_code, missing_docs)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apisim::podproxy::KubeletClientConfig;
use apisim::{KubeletConfig, SimConfig, Simulator};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::ServerName;
use serde_json::json;
use syncer::app::{Syncer, SyncerOptions};
use syncer::grpc::GrpcOptions;
use syncer::pipeline::PipelineConfig;
use syncer::reconcile::{Resources, SyncReconciler, Tenants};
use syncer::source::SourceConfig;
use tenancy_proto::pki::{CertificateAuthority, IssuedCert, PkiFiles, default_server_names};
use tenancy_proto::roles::Role;
use tenancy_proto::tls::{self as grpc_tls, DEFAULT_SERVER_NAME};
use tenancy_proto::v1;
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use vn_agent::{
    Agent, AgentConfig, forward::KubeletForwarder, identity::TenantCas, tls, translate::Translator,
};

/// Name of the super cluster's only node.
pub const NODE: &str = "node-0";

/// Polls `check` every 50 ms until it yields a value; panics after 60 s.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One tenant control plane.
pub struct TenantEnv {
    pub name: String,
    pub key: String,
    pub sim: Simulator,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    /// The tenant API server's kubelet-client certificate (CN = cluster key).
    pub kubelet_cert: IssuedCert,
    pub kubelet_ca: CertificateAuthority,
}

#[path = "common/kubelet.rs"]
mod kubelet;

/// What the simulated kubelet saw.
#[derive(Default)]
pub struct KubeletSeen {
    /// Log requests (path and query).
    pub paths: Mutex<Vec<String>>,
    pub follow_closed: AtomicBool,
    /// The streaming kubelet of `tests/common/kubelet.rs` (exec/attach/portForward) and what it saw.
    pub streams: Arc<kubelet::KubeletLog>,
    /// Super pods it serves streams for.
    pub pods: Mutex<Vec<kubelet::SimPod>>,
}

struct ClosedOnDrop(Arc<KubeletSeen>);
impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.follow_closed.store(true, Ordering::SeqCst);
    }
}

/// The log line `n` the simulated kubelet writes for a super pod.
pub fn log_line(super_ns: &str, pod: &str, n: u64) -> String {
    format!("{super_ns}/{pod} line {n}")
}

type KBody = BoxBody<Bytes, Infallible>;

/// The simulated kubelet: `/containerLogs/{ns}/{pod}/{c}` answers [`log_line`]s naming the pod it was asked
/// for (two lines; `follow=true`: one every 20 ms until the caller leaves); exec/attach/portForward go to
/// the streaming kubelet of `tests/common/kubelet.rs` (`echo` over WebSocket channels, …) for the super pods
/// in [`KubeletSeen::pods`].
async fn kubelet_handle(
    seen: Arc<KubeletSeen>,
    req: http::Request<Incoming>,
) -> Result<http::Response<KBody>, Infallible> {
    let path = req.uri().path().to_string();
    if !path.starts_with("/containerLogs/") {
        let pods = Arc::new(seen.pods.lock().clone());
        return kubelet::handle(kubelet::Style::Kubelet, seen.streams.clone(), pods, req).await;
    }
    seen.paths.lock().push(req.uri().to_string());
    let segments: Vec<&str> = path.split('/').collect();
    let ["", "containerLogs", ns, pod, _container] = segments.as_slice() else {
        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"not found")).boxed());
        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        return Ok(resp);
    };
    let (ns, pod) = (ns.to_string(), pod.to_string());
    if req.uri().query().is_some_and(|q| q.contains("follow=true")) {
        let guard = ClosedOnDrop(seen.clone());
        let lines = futures::stream::unfold((1u64, guard), move |(n, guard)| {
            let line = format!("{}\n", log_line(&ns, &pod, n));
            async move {
                if n > 1 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(line))),
                    (n + 1, guard),
                ))
            }
        });
        return Ok(http::Response::new(StreamBody::new(lines).boxed()));
    }
    let text = format!("{}\n{}\n", log_line(&ns, &pod, 1), log_line(&ns, &pod, 2));
    Ok(http::Response::new(Full::new(Bytes::from(text)).boxed()))
}

/// Starts the simulated kubelet on 127.0.0.1 (serving certificate from `serving_ca`, client certificates
/// required from `client_ca`).
async fn start_kubelet(
    serving_ca: &CertificateAuthority,
    client_ca: &CertificateAuthority,
    seen: Arc<KubeletSeen>,
) -> SocketAddr {
    let cert = serving_ca
        .issue_server(&default_server_names(&[]))
        .unwrap_or_else(|e| panic!("kubelet cert: {e}"));
    let roots = tls::roots("kubelet client CA", client_ca.cert_pem())
        .unwrap_or_else(|e| panic!("roots: {e}"));
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
        .build()
        .unwrap_or_else(|e| panic!("verifier: {e}"));
    let mut config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("versions: {e}"))
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            tls::certs("kubelet cert", &cert.cert_pem).unwrap_or_else(|e| panic!("certs: {e}")),
            tls::key("kubelet key", &cert.key_pem).unwrap_or_else(|e| panic!("key: {e}")),
        )
        .unwrap_or_else(|e| panic!("kubelet TLS: {e}"));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind kubelet: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("kubelet addr: {e}"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req| kubelet_handle(seen.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// The whole system for one test.
pub struct World {
    pub dir: tempfile::TempDir,
    pub super_sim: Simulator,
    pub super_client: kube::Client,
    pub syncer: Option<Syncer>,
    pub node_ip: Ipv4Addr,
    pub tenants: Vec<TenantEnv>,
    pub kubelet: Arc<KubeletSeen>,
    pub agent_addr: SocketAddr,
    pub agent_ca: CertificateAuthority,
    pub cas: Arc<TenantCas>,
}

async fn client_of(yaml: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)
        .unwrap_or_else(|e| panic!("parse kubeconfig: {e}"));
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("client: {e}"))
}

/// The syncer in this process, gRPC API on 127.0.0.1 with the PKI it generates in `<data>/grpc`.
async fn start_syncer(super_client: &kube::Client, data: &Path, vn_agent_port: u16) -> Syncer {
    let files = PkiFiles::ensure(&data.join("grpc"), &default_server_names(&[]))
        .unwrap_or_else(|e| panic!("syncer PKI: {e}"));
    let tls = files
        .server_material()
        .unwrap_or_else(|e| panic!("server material: {e}"));
    let resources = Resources::from_names(&["default"])
        .unwrap_or_else(|e| panic!("resources: {e}"))
        .with_vn_agent_port(i32::from(vn_agent_port));
    let registry = Tenants::new();
    let reconciler = Arc::new(
        SyncReconciler::new(
            super_client.clone(),
            registry.clone(),
            tokio::runtime::Handle::current(),
        )
        .with_resources(resources.clone()),
    );
    let mut pipeline = PipelineConfig::new(data.join("log"));
    pipeline.shards = 2;
    Syncer::start(
        super_client.clone(),
        &[],
        registry,
        reconciler,
        SyncerOptions {
            pipeline,
            sources: SourceConfig::default().kinds(resources.kinds()),
            grpc: Some(GrpcOptions {
                addr: "127.0.0.1:0"
                    .parse()
                    .unwrap_or_else(|e| panic!("addr: {e}")),
                tls: Some(tls),
            }),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("start the syncer: {e}"))
}

impl World {
    /// Starts everything with one tenant per name (VirtualCluster `default/<name>`) and waits until the
    /// agent knows every tenant.
    pub async fn start(tenant_names: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let node_ip = Ipv4Addr::LOCALHOST;
        // The agent's socket first: its port goes into the virtual nodes.
        let listener = tokio::net::TcpListener::bind((node_ip, 0))
            .await
            .unwrap_or_else(|e| panic!("bind the agent: {e}"));
        let agent_addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("agent addr: {e}"));
        let super_sim = Simulator::start(SimConfig {
            kubelet: Some(KubeletConfig {
                nodes: 1,
                first_node_ip: node_ip,
                ..KubeletConfig::default()
            }),
            ..SimConfig::default()
        })
        .await
        .unwrap_or_else(|e| panic!("super simulator: {e}"));
        let super_client = client_of(&super_sim.kubeconfig_yaml("super")).await;
        let syncer = start_syncer(&super_client, dir.path(), agent_addr.port()).await;
        let grpc_addr = syncer
            .grpc_addr()
            .unwrap_or_else(|| panic!("no gRPC address"));
        // Registrations with the vc-manager's role, translations with the vn-agent's (the syncer authorises
        // each method by the role in the client certificate).
        let files = PkiFiles::in_dir(&dir.path().join("grpc"));
        let connect = |role: Role| {
            let material = files
                .role_material(role)
                .unwrap_or_else(|e| panic!("{role:?} material: {e}"));
            let addr = grpc_addr.to_string();
            async move {
                grpc_tls::connect(&addr, Some(material.client_config(DEFAULT_SERVER_NAME)))
                    .await
                    .unwrap_or_else(|e| panic!("gRPC channel: {e}"))
            }
        };
        let channel = connect(Role::VcManager).await;
        let agent_channel = connect(Role::VnAgent).await;

        // The agent's serving certificate, valid for the node's address; tenants verify it with this CA.
        let agent_ca = CertificateAuthority::generate().unwrap_or_else(|e| panic!("agent CA: {e}"));
        let mut tenants = Vec::new();
        for name in tenant_names {
            let uid = format!("uid-{name}");
            let key = tenancy_naming::cluster_key("default", name, &uid);
            let kubelet_ca =
                CertificateAuthority::generate().unwrap_or_else(|e| panic!("tenant CA: {e}"));
            let kubelet_cert = kubelet_ca
                .issue_client(&key)
                .unwrap_or_else(|e| panic!("tenant kubelet-client cert: {e}"));
            let sim = Simulator::start(SimConfig {
                kubelet_client: Some(KubeletClientConfig::new(
                    agent_ca.cert_pem().to_string(),
                    kubelet_cert.cert_pem.clone(),
                    kubelet_cert.key_pem.clone(),
                )),
                ..SimConfig::default()
            })
            .await
            .unwrap_or_else(|e| panic!("tenant simulator: {e}"));
            let yaml = sim.kubeconfig_yaml(name);
            let kubeconfig = dir.path().join(format!("{name}.kubeconfig"));
            std::fs::write(&kubeconfig, &yaml).unwrap_or_else(|e| panic!("write kubeconfig: {e}"));
            let registered = TenantRegistryClient::new(channel.clone())
                .register(v1::RegisterRequest {
                    spec: Some(v1::TenantSpec {
                        vc: Some(v1::VirtualClusterRef::new("default", *name, &uid)),
                        kubeconfig: yaml.clone(),
                        kubelet_client_ca_pem: kubelet_ca.cert_pem().to_string(),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap_or_else(|e| panic!("register: {e}"))
                .into_inner();
            assert_eq!(registered.cluster_key, key);
            tenants.push(TenantEnv {
                name: name.to_string(),
                key,
                client: client_of(&yaml).await,
                sim,
                kubeconfig,
                kubelet_cert,
                kubelet_ca,
            });
        }

        // The node's kubelet and the agent in front of it.
        let kubelet_ca =
            CertificateAuthority::generate().unwrap_or_else(|e| panic!("kubelet CA: {e}"));
        let kubelet_client_ca =
            CertificateAuthority::generate().unwrap_or_else(|e| panic!("kubelet client CA: {e}"));
        let kubelet = Arc::new(KubeletSeen::default());
        let kubelet_addr = start_kubelet(&kubelet_ca, &kubelet_client_ca, kubelet.clone()).await;
        let agent_kubelet_cert = kubelet_client_ca
            .issue_client("vn-agent")
            .unwrap_or_else(|e| panic!("agent kubelet cert: {e}"));
        let forwarder = KubeletForwarder::new(
            kubelet_addr.to_string(),
            ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("server name: {e}")),
            tls::kubelet_client_config(
                kubelet_ca.cert_pem(),
                &agent_kubelet_cert.cert_pem,
                &agent_kubelet_cert.key_pem,
            )
            .unwrap_or_else(|e| panic!("kubelet client config: {e}")),
        );
        let cas = Arc::new(TenantCas::default());
        let translator = Translator::new(agent_channel, cas.clone());
        tokio::spawn(
            translator
                .clone()
                .watch(Arc::new(tokio::sync::Notify::new())),
        );
        let agent_cert = agent_ca
            .issue_server(&default_server_names(&[]))
            .unwrap_or_else(|e| panic!("agent cert: {e}"));
        let serving = tls::server_config(&agent_cert.cert_pem, &agent_cert.key_pem)
            .unwrap_or_else(|e| panic!("agent TLS: {e}"));
        let agent = Agent::new(
            AgentConfig {
                node_name: Some(NODE.into()),
            },
            translator,
            forwarder,
        );
        tokio::spawn(agent.serve(listener, serving));
        let want = tenants.len();
        wait_for("the agent to know every tenant", || {
            let n = cas.len();
            async move { (n == want).then_some(()) }
        })
        .await;
        World {
            dir,
            super_sim,
            super_client,
            syncer: Some(syncer),
            node_ip,
            tenants,
            kubelet,
            agent_addr,
            agent_ca,
            cas,
        }
    }

    pub fn tenant(&self, name: &str) -> &TenantEnv {
        self.tenants
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tenant {name}"))
    }

    /// Creates namespace `ns` (if needed) and pod `ns/pod` (container `app`) in tenant `name`, then waits
    /// until the syncer bound it to the virtual node, which points at the agent. Returns the super
    /// namespace.
    pub async fn running_pod(&self, name: &str, ns: &str, pod: &str) -> String {
        let tenant = self.tenant(name);
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))
            .unwrap_or_else(|e| panic!("namespace: {e}"));
        match Api::<Namespace>::all(tenant.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create namespace {ns}: {e}"),
        }
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod, "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        }))
        .unwrap_or_else(|e| panic!("pod: {e}"));
        let pods: Api<Pod> = Api::namespaced(tenant.client.clone(), ns);
        pods.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create tenant pod: {e}"));
        wait_for(&format!("{name}: {ns}/{pod} bound and Running"), || {
            let pods = pods.clone();
            async move {
                let p = pods.get_opt(pod).await.ok().flatten()?;
                let bound = p.spec.as_ref()?.node_name.as_deref() == Some(NODE);
                let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
                (bound && running).then_some(())
            }
        })
        .await;
        let nodes: Api<Node> = Api::all(tenant.client.clone());
        let node = nodes
            .get(NODE)
            .await
            .unwrap_or_else(|e| panic!("virtual node: {e}"));
        let status = node.status.unwrap_or_default();
        let port = status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port);
        assert_eq!(
            port,
            Some(i32::from(self.agent_addr.port())),
            "the virtual node advertises the vn-agent port"
        );
        let ip = self.node_ip.to_string();
        assert!(
            status
                .addresses
                .unwrap_or_default()
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == ip),
            "the virtual node carries the super node's address"
        );
        let super_ns = tenancy_naming::super_namespace(&tenant.key, ns);
        self.kubelet.pods.lock().push(kubelet::SimPod {
            namespace: super_ns.clone(),
            pod: pod.to_string(),
            uid: String::new(),
        });
        super_ns
    }

    /// Stops the syncer and the simulators.
    pub async fn stop(mut self) {
        if let Some(syncer) = self.syncer.take() {
            syncer.shutdown().await;
        }
        for t in self.tenants {
            t.sim.shutdown().await;
        }
        self.super_sim.shutdown().await;
    }

    /// `exec <pod> -- echo <words>` through tenant `name`'s API server over WebSocket (`v5.channel.k8s.io`):
    /// returns what came on stdout and the status on the error channel.
    pub async fn ws_exec(
        &self,
        name: &str,
        ns: &str,
        pod: &str,
        words: &[&str],
    ) -> (String, String) {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
        let tenant = self.tenant(name);
        let mut query = String::from("command=echo");
        for w in words {
            query.push_str(&format!("&command={w}"));
        }
        let url = format!(
            "ws://{}/api/v1/namespaces/{ns}/pods/{pod}/exec?{query}&stdout=true&stderr=true",
            tenant.sim.addr()
        );
        let mut request = url
            .into_client_request()
            .unwrap_or_else(|e| panic!("ws request: {e}"));
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            http::HeaderValue::from_static("v5.channel.k8s.io"),
        );
        let tcp = tokio::net::TcpStream::connect(tenant.sim.addr())
            .await
            .unwrap_or_else(|e| panic!("connect tenant: {e}"));
        let (mut ws, resp) = tokio_tungstenite::client_async(request, tcp)
            .await
            .unwrap_or_else(|e| panic!("websocket upgrade through the tenant API server: {e}"));
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("v5.channel.k8s.io")
        );
        let (mut stdout, mut status) = (String::new(), String::new());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
            match msg {
                Ok(Message::Binary(data)) => match data.first() {
                    Some(1) => stdout.push_str(&String::from_utf8_lossy(&data[1..])),
                    Some(3) => status.push_str(&String::from_utf8_lossy(&data[1..])),
                    _ => {}
                },
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = ws.close(None).await;
        (stdout, status)
    }

    /// GET `path` from the agent presenting `identity`; returns the status code.
    pub async fn agent_get(&self, identity: &IssuedCert, path: &str) -> http::StatusCode {
        let roots = tls::roots("agent CA", self.agent_ca.cert_pem())
            .unwrap_or_else(|e| panic!("roots: {e}"));
        let config = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("versions: {e}"))
            .with_root_certificates(roots)
            .with_client_auth_cert(
                tls::certs("cert", &identity.cert_pem).unwrap_or_else(|e| panic!("cert: {e}")),
                tls::key("key", &identity.key_pem).unwrap_or_else(|e| panic!("key: {e}")),
            )
            .unwrap_or_else(|e| panic!("client config: {e}"));
        let tcp = tokio::net::TcpStream::connect(self.agent_addr)
            .await
            .unwrap_or_else(|e| panic!("connect agent: {e}"));
        let ip = std::net::IpAddr::V4(self.node_ip);
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .await
            .unwrap_or_else(|e| panic!("agent TLS: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("handshake: {e}"));
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, ip.to_string())
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("request: {e}"));
        sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("agent request: {e}"))
            .status()
    }
}
