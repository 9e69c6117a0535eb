//! Test rig: an in-test implementation of the syncer's `Translation` service (real gRPC over loopback with
//! mutual TLS), a simulated kubelet (HTTPS, requires the agent's kubelet-client certificate; see
//! [`kubelet`]) or a fake super API server (bearer token), and the agent.
#![allow(dead_code, missing_docs)]

pub mod kubelet;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::ServerName;
use tenancy_proto::pki::{self, CertificateAuthority, IssuedCert};
use tenancy_proto::tonic::{self, Request, Response, Status};
use tenancy_proto::v1::{self, translation_event::Event, translation_server};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use vn_agent::{
    Agent, AgentConfig, apiserver::ApiServerForwarder, forward::Forwarder,
    forward::KubeletForwarder, identity::TenantCas, tls, translate::Translator,
};

#[allow(unused_imports)]
pub use kubelet::{KubeletLog, SimPod, Style, channel_message};

type EventTx = mpsc::Sender<Result<v1::TranslationEvent, Status>>;

/// In-test Translation service: answers from a fixed table, streams tenant identities.
#[derive(Default)]
pub struct FakeTranslation {
    pub tenants: Mutex<Vec<v1::TenantIdentity>>,
    pub pods: Mutex<HashMap<(String, String, String), v1::PodLocation>>,
    pub watchers: Mutex<Vec<EventTx>>,
    pub pods_on_node_calls: Mutex<Vec<v1::PodsOnNodeRequest>>,
}

impl FakeTranslation {
    pub async fn send(&self, event: Event) {
        let watchers: Vec<EventTx> = self.watchers.lock().clone();
        for tx in watchers {
            let _ = tx
                .send(Ok(v1::TranslationEvent {
                    event: Some(event.clone()),
                    snapshot_complete: false,
                }))
                .await;
        }
    }
}

#[tonic::async_trait]
impl translation_server::Translation for FakeTranslation {
    async fn to_super(
        &self,
        req: Request<v1::ToSuperRequest>,
    ) -> Result<Response<v1::PodLocation>, Status> {
        let r = req.into_inner();
        self.pods
            .lock()
            .get(&(r.cluster_key, r.namespace, r.pod))
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found("no such pod"))
    }

    async fn to_tenant(
        &self,
        _: Request<v1::ToTenantRequest>,
    ) -> Result<Response<v1::PodLocation>, Status> {
        Err(Status::unimplemented("not used by the agent"))
    }

    /// Deliberately sloppy: every pod on the node, of every tenant (the agent must filter).
    async fn pods_on_node(
        &self,
        req: Request<v1::PodsOnNodeRequest>,
    ) -> Result<Response<v1::PodsOnNodeResponse>, Status> {
        let r = req.into_inner();
        self.pods_on_node_calls.lock().push(r.clone());
        let mut pods: Vec<v1::PodLocation> = self
            .pods
            .lock()
            .values()
            .filter(|p| p.node_name == r.node_name)
            .cloned()
            .collect();
        pods.sort_by(|a, b| a.tenant_pod.cmp(&b.tenant_pod));
        Ok(Response::new(v1::PodsOnNodeResponse { pods }))
    }

    type WatchTranslationsStream = ReceiverStream<Result<v1::TranslationEvent, Status>>;

    async fn watch_translations(
        &self,
        _: Request<v1::WatchTranslationsRequest>,
    ) -> Result<Response<Self::WatchTranslationsStream>, Status> {
        let (tx, rx) = mpsc::channel(64);
        let tenants = self.tenants.lock().clone();
        let n = tenants.len();
        for (i, t) in tenants.into_iter().enumerate() {
            let _ = tx
                .send(Ok(v1::TranslationEvent {
                    event: Some(Event::TenantUpserted(t)),
                    snapshot_complete: i + 1 == n,
                }))
                .await;
        }
        if n == 0 {
            let _ = tx
                .send(Ok(v1::TranslationEvent {
                    event: None,
                    snapshot_complete: true,
                }))
                .await;
        }
        self.watchers.lock().push(tx);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

pub struct Rig {
    pub fake: Arc<FakeTranslation>,
    /// What the simulated kubelet (or, in API-server mode, the fake API server) saw.
    pub kubelet: Arc<KubeletLog>,
    pub agent_addr: std::net::SocketAddr,
    pub agent_ca: CertificateAuthority,
    pub cas: Arc<TenantCas>,
    pub translator: Arc<Translator>,
    /// Address of the simulated kubelet (or fake API server, or simulator).
    pub upstream_addr: std::net::SocketAddr,
    /// The API server simulator in [`Mode::Simulator`].
    pub simulator: Option<apisim::Simulator>,
}

pub struct Tenant {
    pub key: String,
    pub ca: CertificateAuthority,
    pub cert: IssuedCert,
}

impl Tenant {
    pub fn new(ns: &str, uid: &str) -> Tenant {
        let key = tenancy_naming::cluster_key(ns, "vc", uid);
        let ca = CertificateAuthority::generate().unwrap_or_else(|e| panic!("ca: {e}"));
        let cert = ca
            .issue_client(&key)
            .unwrap_or_else(|e| panic!("cert: {e}"));
        Tenant { key, ca, cert }
    }

    pub fn identity(&self) -> v1::TenantIdentity {
        v1::TenantIdentity {
            cluster_key: self.key.clone(),
            kubelet_client_ca_pem: self.ca.cert_pem().to_string(),
        }
    }

    /// The certificate and key PEM to present.
    pub fn id(&self) -> Option<(&str, &str)> {
        Some((self.cert.cert_pem.as_str(), self.cert.key_pem.as_str()))
    }
}

fn ca() -> CertificateAuthority {
    CertificateAuthority::generate().unwrap_or_else(|e| panic!("ca: {e}"))
}

/// A pod location the way the syncer computes it.
pub fn location(key: &str, ns: &str, pod: &str, node: &str) -> v1::PodLocation {
    v1::PodLocation {
        cluster_key: key.into(),
        tenant_namespace: ns.into(),
        tenant_pod: pod.into(),
        tenant_uid: format!("{pod}-tenant-uid"),
        super_namespace: tenancy_naming::super_namespace(key, ns),
        super_pod: pod.into(),
        super_uid: format!("{pod}-super-uid"),
        node_name: node.into(),
    }
}

/// How the agent of a [`Rig`] forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// To the simulated kubelet over mutual TLS.
    Kubelet,
    /// Through the fake API server (kubeconfig with its CA and a bearer token).
    ApiServer,
    /// Through the API server simulator (`loadtest/apisim`, HTTPS) whose pod-subresource proxy reaches the
    /// simulated kubelet over mutual TLS: the super pods exist there, bound to node `n1`.
    Simulator,
}

/// Bearer token the fake API server accepts from the agent.
pub const AGENT_TOKEN: &str = "agent-token";

/// Starts an HTTPS server for `style` on loopback; `client_ca` makes it require client certificates.
async fn start_upstream(
    style: Style,
    client_ca: Option<&CertificateAuthority>,
    serving_ca: &CertificateAuthority,
    pods: Arc<Vec<SimPod>>,
) -> (std::net::SocketAddr, Arc<KubeletLog>) {
    start_upstream_on([127, 0, 0, 1].into(), style, client_ca, serving_ca, pods).await
}

/// [`start_upstream`] listening on `ip` (its certificate valid for that address too).
async fn start_upstream_on(
    ip: std::net::Ipv4Addr,
    style: Style,
    client_ca: Option<&CertificateAuthority>,
    serving_ca: &CertificateAuthority,
    pods: Arc<Vec<SimPod>>,
) -> (std::net::SocketAddr, Arc<KubeletLog>) {
    let cert = serving_ca
        .issue_server(&pki::default_server_names(&[ip.to_string()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let builder = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"));
    let builder = match client_ca {
        Some(client_ca) => {
            let roots =
                tls::roots("client CA", client_ca.cert_pem()).unwrap_or_else(|e| panic!("{e}"));
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server_tls = builder
        .with_single_cert(
            tls::certs("server cert", &cert.cert_pem).unwrap_or_else(|e| panic!("{e}")),
            tls::key("server key", &cert.key_pem).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    server_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let log = Arc::new(KubeletLog::default());
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));
    let served = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log, pods) = (acceptor.clone(), served.clone(), pods.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    kubelet::handle(style, log.clone(), pods.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, log)
}

/// A kubeconfig for the fake API server at `addr` trusting `ca`, authenticating with [`AGENT_TOKEN`].
pub fn kubeconfig(addr: std::net::SocketAddr, ca: &CertificateAuthority) -> String {
    use base64::Engine;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca.cert_pem());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: super\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca_data}\nusers:\n- name: vn-agent\n  user:\n    token: {AGENT_TOKEN}\ncontexts:\n- name: super\n  context:\n    cluster: super\n    user: vn-agent\ncurrent-context: super\n"
    )
}

/// The kubelet of node `n1` of the simulator (on `127.0.0.2`, which the simulator gives its second node), the
/// simulator (HTTPS; pod subresources proxied to the kubelet with a client certificate the kubelet accepts)
/// holding `pods` bound to `n1`, and an API-server forwarder using the simulator's kubeconfig.
async fn start_simulator(
    kubelet_ca: &CertificateAuthority,
    pods: Arc<Vec<SimPod>>,
) -> (apisim::Simulator, Arc<KubeletLog>, ApiServerForwarder) {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    let node_ip = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let kubelet_client_ca = ca();
    let (kubelet_addr, log) = start_upstream_on(
        node_ip,
        Style::Kubelet,
        Some(&kubelet_client_ca),
        kubelet_ca,
        pods.clone(),
    )
    .await;
    let sim_client_cert = kubelet_client_ca
        .issue_client("kube-apiserver-kubelet-client")
        .unwrap_or_else(|e| panic!("{e}"));
    let serving_ca = ca();
    let serving = serving_ca
        .issue_server(&pki::default_server_names(&[]))
        .unwrap_or_else(|e| panic!("{e}"));
    let sim = apisim::Simulator::start(apisim::SimConfig {
        tls: Some(apisim::tls::TlsConfig {
            cert_chain_pem: serving.cert_pem.clone(),
            key_pem: serving.key_pem.clone(),
            ca_pem: Some(serving_ca.cert_pem().to_string()),
        }),
        kubelet: Some(apisim::KubeletConfig {
            nodes: 2,
            node_name_prefix: "n".into(),
            first_node_ip: std::net::Ipv4Addr::new(127, 0, 0, 1),
            kubelet_port: kubelet_addr.port(),
            ..apisim::KubeletConfig::default()
        }),
        kubelet_client: Some(apisim::podproxy::KubeletClientConfig::new(
            kubelet_ca.cert_pem().to_string(),
            sim_client_cert.cert_pem.clone(),
            sim_client_cert.key_pem.clone(),
        )),
        ..apisim::SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml("super"))
        .unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("kube config: {e}"));
    assert!(
        config.cluster_url.scheme_str() == Some("https") && config.root_cert.is_some(),
        "the agent verifies the simulator's certificate"
    );
    let client = kube::Client::try_from(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    for pod in pods.iter() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": pod.namespace}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = kube::Api::<Namespace>::all(client.clone())
            .create(&Default::default(), &ns)
            .await;
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": pod.pod, "namespace": pod.namespace},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "app"}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        kube::Api::<Pod>::namespaced(client.clone(), &pod.namespace)
            .create(&Default::default(), &p)
            .await
            .unwrap_or_else(|e| panic!("create super pod: {e}"));
    }
    let forwarder = ApiServerForwarder::new(config).unwrap_or_else(|e| panic!("forwarder: {e}"));
    (sim, log, forwarder)
}

impl Rig {
    /// Starts the fake syncer (with `tenants` and `pods`), the kubelet serving the pods' super names, and the
    /// agent for node `n1`; waits until the agent has the tenant snapshot.
    pub async fn start(tenants: &[&Tenant], pods: Vec<v1::PodLocation>) -> Rig {
        Self::start_mode(tenants, pods, Mode::Kubelet).await
    }

    /// Like [`Rig::start`], forwarding in `mode`.
    pub async fn start_mode(tenants: &[&Tenant], pods: Vec<v1::PodLocation>, mode: Mode) -> Rig {
        // Syncer gRPC with mTLS.
        let grpc_ca = ca();
        let server = grpc_ca
            .issue_server(&pki::default_server_names(&[]))
            .unwrap_or_else(|e| panic!("server cert: {e}"));
        let client = grpc_ca
            .issue_client("vn-agent")
            .unwrap_or_else(|e| panic!("client cert: {e}"));
        let fake = Arc::new(FakeTranslation::default());
        *fake.tenants.lock() = tenants.iter().map(|t| t.identity()).collect();
        for p in &pods {
            fake.pods.lock().insert(
                (
                    p.cluster_key.clone(),
                    p.tenant_namespace.clone(),
                    p.tenant_pod.clone(),
                ),
                p.clone(),
            );
        }
        let server_material = tenancy_proto::tls::TlsMaterial::new(
            grpc_ca.cert_pem(),
            server.cert_pem,
            server.key_pem,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let grpc_addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let svc = translation_server::TranslationServer::from_arc(fake.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .tls_config(server_material.server_config())
                .unwrap_or_else(|e| panic!("{e}"))
                .add_service(svc)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
        });
        let client_material = tenancy_proto::tls::TlsMaterial::new(
            grpc_ca.cert_pem(),
            client.cert_pem,
            client.key_pem,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let channel = tenancy_proto::tls::endpoint(
            &grpc_addr.to_string(),
            Some(client_material.client_config(tenancy_proto::tls::DEFAULT_SERVER_NAME)),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .connect_lazy();

        let sim_pods: Arc<Vec<SimPod>> = Arc::new(
            pods.iter()
                .map(|p| SimPod {
                    namespace: p.super_namespace.clone(),
                    pod: p.super_pod.clone(),
                    uid: p.super_uid.clone(),
                })
                .collect(),
        );
        let upstream_ca = ca();
        let mut simulator = None;
        let (upstream_addr, upstream_log, forwarder): (_, _, Arc<dyn Forwarder>) = match mode {
            Mode::Kubelet => {
                // Kubelet: serving cert from its CA; requires the agent's kubelet-client cert from another CA.
                let kubelet_client_ca = ca();
                let (addr, log) = start_upstream(
                    Style::Kubelet,
                    Some(&kubelet_client_ca),
                    &upstream_ca,
                    sim_pods,
                )
                .await;
                let agent_kubelet_cert = kubelet_client_ca
                    .issue_client("vn-agent")
                    .unwrap_or_else(|e| panic!("{e}"));
                let forwarder = KubeletForwarder::new(
                    addr.to_string(),
                    ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}")),
                    tls::kubelet_client_config(
                        upstream_ca.cert_pem(),
                        &agent_kubelet_cert.cert_pem,
                        &agent_kubelet_cert.key_pem,
                    )
                    .unwrap_or_else(|e| panic!("{e}")),
                );
                (addr, log, Arc::new(forwarder))
            }
            Mode::ApiServer => {
                let (addr, log) = start_upstream(
                    Style::ApiServer { token: AGENT_TOKEN },
                    None,
                    &upstream_ca,
                    sim_pods,
                )
                .await;
                let kubeconfig =
                    kube::config::Kubeconfig::from_yaml(&kubeconfig(addr, &upstream_ca))
                        .unwrap_or_else(|e| panic!("kubeconfig: {e}"));
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .unwrap_or_else(|e| panic!("kube config: {e}"));
                let forwarder =
                    ApiServerForwarder::new(config).unwrap_or_else(|e| panic!("forwarder: {e}"));
                (addr, log, Arc::new(forwarder))
            }
            Mode::Simulator => {
                let (sim, log, forwarder) = start_simulator(&upstream_ca, sim_pods).await;
                let addr = sim.addr();
                simulator = Some(sim);
                (addr, log, Arc::new(forwarder))
            }
        };

        // Agent.
        let cas = Arc::new(TenantCas::default());
        let translator = Translator::new(channel, cas.clone());
        tokio::spawn(
            translator
                .clone()
                .watch(Arc::new(tokio::sync::Notify::new())),
        );
        let agent_ca = ca();
        let agent_cert = agent_ca
            .issue_server(&pki::default_server_names(&[]))
            .unwrap_or_else(|e| panic!("{e}"));
        let serving = tls::server_config(&agent_cert.cert_pem, &agent_cert.key_pem)
            .unwrap_or_else(|e| panic!("{e}"));
        let agent_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let agent_addr = agent_listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"));
        let agent = Agent::with_forwarder(
            AgentConfig {
                node_name: Some("n1".into()),
            },
            translator.clone(),
            forwarder,
        );
        tokio::spawn(agent.serve(agent_listener, serving));

        let rig = Rig {
            fake,
            kubelet: upstream_log,
            agent_addr,
            agent_ca,
            cas,
            translator,
            upstream_addr,
            simulator,
        };
        let want = tenants.len();
        rig.wait_for("tenant snapshot", || rig.cas.len() == want)
            .await;
        rig
    }

    pub async fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        wait_for(what, cond).await
    }

    /// A TLS connection to the agent presenting `identity` (certificate + key PEM).
    pub async fn connect(&self, identity: Option<(&str, &str)>) -> TlsStream<TcpStream> {
        let roots =
            tls::roots("agent CA", self.agent_ca.cert_pem()).unwrap_or_else(|e| panic!("{e}"));
        let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    tls::certs("cert", cert).unwrap_or_else(|e| panic!("{e}")),
                    tls::key("key", key).unwrap_or_else(|e| panic!("{e}")),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(self.agent_addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}")),
                tcp,
            )
            .await
            .unwrap_or_else(|e| panic!("client TLS: {e}"))
    }

    /// Sends `req` to the agent presenting `identity`; the connection supports upgrades.
    pub async fn send(
        &self,
        identity: Option<(&str, &str)>,
        req: http::Request<Empty<Bytes>>,
    ) -> http::Response<Incoming> {
        let tls = self.connect(identity).await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(conn.with_upgrades());
        sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("request: {e}"))
    }

    /// Sends `req` (with a body) to the agent presenting `identity`.
    pub async fn send_body(
        &self,
        identity: Option<(&str, &str)>,
        req: http::Request<http_body_util::Full<Bytes>>,
    ) -> http::Response<Incoming> {
        let tls = self.connect(identity).await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(conn);
        sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("request: {e}"))
    }

    /// GET `path` from the agent presenting `identity` (certificate + key PEM), body still streaming.
    pub async fn get(
        &self,
        identity: Option<(&str, &str)>,
        path: &str,
    ) -> http::Response<Incoming> {
        let req = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        self.send(identity, req).await
    }

    /// POST `path` (no body) to the agent presenting `identity`, as `/run` is called.
    pub async fn post(
        &self,
        identity: Option<(&str, &str)>,
        path: &str,
    ) -> http::Response<Incoming> {
        let req = http::Request::post(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        self.send(identity, req).await
    }

    /// Opens a WebSocket to `path` on the agent offering `protocols` (comma-separated subprotocols).
    pub async fn ws(
        &self,
        identity: Option<(&str, &str)>,
        path: &str,
        protocols: &str,
    ) -> Result<
        (
            WebSocketStream<TlsStream<TcpStream>>,
            tungstenite::handshake::client::Response,
        ),
        tungstenite::Error,
    > {
        let tls = self.connect(identity).await;
        let mut request = format!("wss://localhost{path}")
            .into_client_request()
            .unwrap_or_else(|e| panic!("{e}"));
        request.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_str(protocols).unwrap_or_else(|e| panic!("{e}")),
        );
        tokio_tungstenite::client_async(request, tls).await
    }
}

/// Polls `cond` every 20 ms for up to 60 s.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a whole body as text.
pub async fn text(resp: http::Response<Incoming>) -> String {
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body: {e}"))
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads frames until `n` lines arrived; returns them and the rest of the body (still open).
pub async fn read_lines(body: &mut Incoming, n: usize) -> String {
    let mut got = String::new();
    while got.lines().count() < n {
        let frame = body
            .frame()
            .await
            .unwrap_or_else(|| panic!("body ended after {got:?}"));
        let frame = frame.unwrap_or_else(|e| panic!("frame: {e}"));
        if let Some(data) = frame.data_ref() {
            got.push_str(&String::from_utf8_lossy(data));
        }
    }
    got
}

/// The output of a channel-protocol session (exec/attach): what arrived on each channel until the server
/// closed the WebSocket.
#[derive(Debug, Default)]
pub struct Channels {
    pub stdout: String,
    pub stderr: String,
    pub status: String,
    pub closed: bool,
}

/// Reads channel messages from `ws` until the server closes it (or the stream ends).
pub async fn read_channels<S>(ws: &mut WebSocketStream<S>) -> Channels
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::StreamExt;
    let mut out = Channels::default();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(tungstenite::Message::Binary(data)) => {
                let text = String::from_utf8_lossy(&data[1.min(data.len())..]).into_owned();
                match data.first() {
                    Some(1) => out.stdout.push_str(&text),
                    Some(2) => out.stderr.push_str(&text),
                    Some(3) => out.status.push_str(&text),
                    _ => {}
                }
            }
            Ok(tungstenite::Message::Close(_)) => out.closed = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// Renders the process-wide Prometheus recorder (installed on first use) for metric assertions.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|e| panic!("metrics recorder: {e}"))
    })
}

/// Value of the sample of `name` whose labels include all of `labels` (0 when absent).
pub fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    let rendered = metrics().render();
    rendered
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
