//! Test rig: an in-test implementation of the syncer's `Translation` service (real gRPC over loopback with
//! mutual TLS), a simulated kubelet (HTTPS, requires the agent's kubelet-client certificate) and the agent.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::ServerName;
use tenancy_proto::pki::{self, CertificateAuthority, IssuedCert};
use tenancy_proto::tonic::{self, Request, Response, Status};
use tenancy_proto::v1::{self, translation_event::Event, translation_server};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use vn_agent::{
    Agent, AgentConfig, forward::KubeletForwarder, identity::TenantCas, tls, translate::Translator,
};

type EventTx = mpsc::Sender<Result<v1::TranslationEvent, Status>>;

/// In-test Translation service: answers from a fixed table, streams tenant identities.
#[derive(Default)]
pub struct FakeTranslation {
    pub tenants: Mutex<Vec<v1::TenantIdentity>>,
    pub pods: Mutex<HashMap<(String, String, String), v1::PodLocation>>,
    pub watchers: Mutex<Vec<EventTx>>,
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

    async fn pods_on_node(
        &self,
        _: Request<v1::PodsOnNodeRequest>,
    ) -> Result<Response<v1::PodsOnNodeResponse>, Status> {
        Err(Status::unimplemented("not used by the agent"))
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

/// What the simulated kubelet saw and did.
#[derive(Default)]
pub struct KubeletLog {
    pub paths: Mutex<Vec<String>>,
    pub follow_closed: AtomicBool,
}

struct ClosedOnDrop(Arc<KubeletLog>);
impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.follow_closed.store(true, Ordering::SeqCst);
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn kubelet_handle(
    log: Arc<KubeletLog>,
    pods: Arc<Vec<(String, String)>>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    log.paths.lock().push(req.uri().to_string());
    let known = pods
        .iter()
        .any(|(ns, pod)| path.starts_with(&format!("/containerLogs/{ns}/{pod}/")));
    if !known {
        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"not found")).boxed());
        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    if req.uri().query().is_some_and(|q| q.contains("follow=true")) {
        let guard = ClosedOnDrop(log.clone());
        let stream = futures::stream::unfold((1u64, guard), |(n, guard)| async move {
            if n > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("line {n}\n")))),
                (n + 1, guard),
            ))
        });
        return Ok(http::Response::new(StreamBody::new(stream).boxed()));
    }
    Ok(http::Response::new(
        Full::new(Bytes::from_static(b"line 1\nline 2\n")).boxed(),
    ))
}

pub struct Rig {
    pub fake: Arc<FakeTranslation>,
    pub kubelet: Arc<KubeletLog>,
    pub agent_addr: std::net::SocketAddr,
    pub agent_ca: CertificateAuthority,
    pub cas: Arc<TenantCas>,
    pub translator: Arc<Translator>,
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

impl Rig {
    /// Starts the fake syncer (with `tenants` and `pods`), the kubelet serving the pods' super names, and the
    /// agent for node `n1`; waits until the agent has the tenant snapshot.
    pub async fn start(tenants: &[&Tenant], pods: Vec<v1::PodLocation>) -> Rig {
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

        // Kubelet: serving cert from its CA; requires the agent's kubelet-client cert from another CA.
        let kubelet_ca = ca();
        let kubelet_client_ca = ca();
        let kubelet_cert = kubelet_ca
            .issue_server(&pki::default_server_names(&[]))
            .unwrap_or_else(|e| panic!("{e}"));
        let roots = tls::roots("kubelet client CA", kubelet_client_ca.cert_pem())
            .unwrap_or_else(|e| panic!("{e}"));
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
        let mut kubelet_tls = rustls::ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                tls::certs("kubelet cert", &kubelet_cert.cert_pem)
                    .unwrap_or_else(|e| panic!("{e}")),
                tls::key("kubelet key", &kubelet_cert.key_pem).unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        kubelet_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let kubelet_log = Arc::new(KubeletLog::default());
        let super_pods: Arc<Vec<(String, String)>> = Arc::new(
            pods.iter()
                .map(|p| (p.super_namespace.clone(), p.super_pod.clone()))
                .collect(),
        );
        let kubelet_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let kubelet_addr = kubelet_listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"));
        {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(kubelet_tls));
            let log = kubelet_log.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = kubelet_listener.accept().await {
                    let (acceptor, log, super_pods) =
                        (acceptor.clone(), log.clone(), super_pods.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            kubelet_handle(log.clone(), super_pods.clone(), req)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        }
        let agent_kubelet_cert = kubelet_client_ca
            .issue_client("vn-agent")
            .unwrap_or_else(|e| panic!("{e}"));
        let forwarder = KubeletForwarder::new(
            kubelet_addr.to_string(),
            ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}")),
            tls::kubelet_client_config(
                kubelet_ca.cert_pem(),
                &agent_kubelet_cert.cert_pem,
                &agent_kubelet_cert.key_pem,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );

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
        let agent = Agent::new(
            AgentConfig {
                node_name: Some("n1".into()),
            },
            translator.clone(),
            forwarder,
        );
        tokio::spawn(agent.serve(agent_listener, serving));

        let rig = Rig {
            fake,
            kubelet: kubelet_log,
            agent_addr,
            agent_ca,
            cas,
            translator,
        };
        let want = tenants.len();
        rig.wait_for("tenant snapshot", || rig.cas.len() == want)
            .await;
        rig
    }

    pub async fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET `path` from the agent presenting `identity` (certificate + key PEM), body still streaming.
    pub async fn get(
        &self,
        identity: Option<(&str, &str)>,
        path: &str,
    ) -> http::Response<Incoming> {
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
        let tcp = tokio::net::TcpStream::connect(self.agent_addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}")),
                tcp,
            )
            .await
            .unwrap_or_else(|e| panic!("client TLS: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("request: {e}"))
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
