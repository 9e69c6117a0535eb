//! Pod subresources proxied to a node's kubelet: a tiny HTTPS kubelet (requires the simulator's client
//! certificate; its serving certificate signed by the CA the simulator is configured with) behind a node whose
//! InternalIP is 127.0.0.1 and whose kubeletEndpoint port is the kubelet's.
//!
//! * `pods/log` through `kube::Client` (`logs`, `log_stream`): the kubelet sees
//!   `/containerLogs/{ns}/{pod}/{container}` with the real query, the body streams back, a dropped follow
//!   stream closes the kubelet's;
//! * `pods/exec|attach|portforward` upgrades (SPDY and WebSocket headers) are replayed and spliced;
//! * the real server's errors: missing pod, ambiguous/unknown container, no host, no upgrade, kubelet
//!   errors relayed, kubelet unreachable, kubelet certificate not trusted, no client configured.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apisim::podproxy::KubeletClientConfig;
use apisim::{SimConfig, Simulator};
use bytes::Bytes;
use futures::{AsyncBufReadExt, TryStreamExt};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{LogParams, PostParams};
use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    pem: String,
    params: CertificateParams,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("ca key: {e}"));
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("ca cert: {e}"));
    Ca {
        pem: cert.pem(),
        params,
        key,
    }
}

/// (certificate PEM, key PEM) signed by `ca`; a server certificate for 127.0.0.1 when `server`.
fn issue(ca: &Ca, cn: &str, server: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    if server {
        params.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    }
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params
        .signed_by(&key, &issuer)
        .unwrap_or_else(|e| panic!("cert: {e}"));
    (cert.pem(), key.serialize_pem())
}

/// What the tiny kubelet saw.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, String, http::HeaderMap)>>,
    follow_closed: AtomicBool,
}

struct ClosedOnDrop(Arc<Seen>);
impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.follow_closed.store(true, Ordering::SeqCst);
    }
}

type KBody = BoxBody<Bytes, Infallible>;

fn full(code: u16, text: &str) -> http::Response<KBody> {
    let mut resp = http::Response::new(Full::new(Bytes::from(text.to_string())).boxed());
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or_else(|e| panic!("{e}"));
    resp
}

async fn kubelet_handle(
    seen: Arc<Seen>,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<KBody>, Infallible> {
    let path = req.uri().path().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    seen.requests
        .lock()
        .push((req.method().to_string(), pq, req.headers().clone()));
    if path.starts_with("/containerLogs/default/waiting/") {
        return Ok(full(
            400,
            "container \"app\" in pod \"waiting\" is waiting to start: ContainerCreating",
        ));
    }
    if path.starts_with("/containerLogs/default/web/") {
        if req.uri().query().is_some_and(|q| q.contains("follow=true")) {
            let guard = ClosedOnDrop(seen.clone());
            let lines = futures::stream::unfold((1u64, guard), |(n, guard)| async move {
                if n > 1 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(format!("line {n}\n")))),
                    (n + 1, guard),
                ))
            });
            return Ok(http::Response::new(StreamBody::new(lines).boxed()));
        }
        return Ok(full(200, "line 1\nline 2\n"));
    }
    let streaming = ["/exec/", "/attach/", "/portForward/"]
        .iter()
        .any(|p| path.starts_with(p));
    if streaming && req.headers().contains_key(http::header::UPGRADE) {
        let upgrade = req.headers()[http::header::UPGRADE].clone();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            // Echo every byte back (stands in for the streaming protocol's frames).
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut resp = http::Response::new(Empty::<Bytes>::new().boxed());
        *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(
            http::header::CONNECTION,
            "Upgrade".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        resp.headers_mut().insert(http::header::UPGRADE, upgrade);
        resp.headers_mut().insert(
            "X-Stream-Protocol-Version",
            "v4.channel.k8s.io"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        return Ok(resp);
    }
    Ok(full(404, "404 page not found"))
}

/// Starts the tiny kubelet: serving certificate from `serving_ca`, client certificates required from
/// `client_ca`. Returns its port.
async fn start_kubelet(serving_ca: &Ca, client_ca: &Ca, seen: Arc<Seen>) -> u16 {
    let (cert, key) = issue(serving_ca, "kubelet", true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            CertificateDer::from_pem_slice(client_ca.pem.as_bytes())
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap_or_else(|e| panic!("{e}"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain,
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
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
    port
}

/// A simulator, a kubelet and node `n1` (InternalIP 127.0.0.1, kubelet port) with pods in `default`:
/// `web` (container `app`) and `waiting` bound to n1, `pending` unbound, `multi` (init `setup`, `a`, `b`).
struct Rig {
    sim: Simulator,
    client: kube::Client,
    seen: Arc<Seen>,
    kubelet_port: u16,
}

async fn rig_with(
    kubelet_client: Option<KubeletClientConfig>,
    serving_ca: &Ca,
    client_ca: &Ca,
) -> Rig {
    let seen = Arc::new(Seen::default());
    let kubelet_port = start_kubelet(serving_ca, client_ca, seen.clone()).await;
    let sim = Simulator::start(SimConfig {
        kubelet_client,
        ..SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start: {e}"));
    let client = kube::Client::try_from(kube::Config::new(
        sim.url().parse().unwrap_or_else(|e| panic!("{e}")),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    add_node(&client, "n1", "127.0.0.1", kubelet_port).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, node, containers) in [
        (
            "web",
            Some("n1"),
            json!([{"name": "app", "image": "busybox"}]),
        ),
        (
            "waiting",
            Some("n1"),
            json!([{"name": "app", "image": "busybox"}]),
        ),
        (
            "pending",
            None,
            json!([{"name": "app", "image": "busybox"}]),
        ),
        (
            "multi",
            Some("n1"),
            json!([{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]),
        ),
    ] {
        let mut spec = json!({"containers": containers});
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        if name == "multi" {
            spec["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
        }
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
            .unwrap_or_else(|e| panic!("{e}"));
        pods.create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    }
    Rig {
        sim,
        client,
        seen,
        kubelet_port,
    }
}

async fn add_node(client: &kube::Client, name: &str, ip: &str, port: u16) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))
        .unwrap_or_else(|e| panic!("{e}"));
    nodes
        .create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("create node: {e}"));
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    nodes
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap_or_else(|e| panic!("node status: {e}"));
}

fn client_config(serving_ca: &Ca, client_ca: &Ca) -> KubeletClientConfig {
    let (cert, key) = issue(client_ca, "kube-apiserver-kubelet-client", false);
    KubeletClientConfig::new(serving_ca.pem.clone(), cert, key)
}

async fn rig() -> Rig {
    let serving_ca = ca("kubelet-serving");
    let client_ca = ca("kubelet-client");
    rig_with(
        Some(client_config(&serving_ca, &client_ca)),
        &serving_ca,
        &client_ca,
    )
    .await
}

/// One raw HTTP/1.1 request on a fresh connection; returns (status line + headers, the open stream, bytes
/// read past the head).
async fn raw(sim: &Simulator, head: &str) -> (String, tokio::net::TcpStream, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(sim.addr())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            return (head, stream, rest);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no answer head: {:?}", String::from_utf8_lossy(&buf)))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the body of a non-upgraded answer (its `Content-Length`, or up to the end of the connection).
async fn rest_of(head: &str, mut stream: tokio::net::TcpStream, mut got: Vec<u8>) -> String {
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while length.is_none_or(|n| got.len() < n) {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn kubelet_paths(seen: &Seen) -> Vec<String> {
    seen.requests
        .lock()
        .iter()
        .map(|(_, p, _)| p.clone())
        .collect()
}

#[tokio::test]
async fn logs_reach_the_node_kubelet_with_the_real_query() {
    let rig = rig().await;
    let pods: Api<Pod> = Api::namespaced(rig.client.clone(), "default");
    let text = pods
        .logs(
            "web",
            &LogParams {
                tail_lines: Some(2),
                timestamps: true,
                limit_bytes: Some(100),
                since_seconds: Some(60),
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("logs: {e}"));
    assert_eq!(text, "line 1\nline 2\n");
    assert_eq!(
        kubelet_paths(&rig.seen),
        vec![
            "/containerLogs/default/web/app?limitBytes=100&previous=true&sinceSeconds=60&tailLines=2&timestamps=true"
        ]
    );

    // Follow: lines stream as the kubelet writes them; dropping the stream closes the kubelet's.
    let stream = pods
        .log_stream(
            "web",
            &LogParams {
                follow: true,
                container: Some("app".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("log stream: {e}"));
    let mut lines = stream.lines();
    for want in 1..=3 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.try_next())
            .await
            .unwrap_or_else(|_| panic!("line {want} did not come"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(line.as_deref(), Some(format!("line {want}").as_str()));
    }
    assert!(!rig.seen.follow_closed.load(Ordering::SeqCst));
    drop(lines);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !rig.seen.follow_closed.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the kubelet stream stayed open after the caller left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        kubelet_paths(&rig.seen)[1],
        "/containerLogs/default/web/app?follow=true"
    );
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn exec_attach_and_portforward_upgrades_are_spliced() {
    let rig = rig().await;
    // SPDY, as kubectl sends it (POST).
    let (head, mut stream, rest) = raw(
        &rig.sim,
        "POST /api/v1/namespaces/default/pods/web/exec?command=echo&command=hi%20there&container=app&stdin=true&stdout=true&stderr=true HTTP/1.1\r\n\
         Host: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
         X-Stream-Protocol-Version: v3.channel.k8s.io\r\nAuthorization: Bearer tenant-token\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        lower.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    assert!(rest.is_empty());
    stream
        .write_all(b"ping through the splice")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut echo = [0u8; 23];
    tokio::time::timeout(Duration::from_secs(60), stream.read_exact(&mut echo))
        .await
        .unwrap_or_else(|_| panic!("no echo"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&echo, b"ping through the splice");
    {
        let seen = rig.seen.requests.lock();
        let (method, path, headers) = &seen[0];
        assert_eq!(method, "POST");
        assert_eq!(
            path,
            "/exec/default/web/app?command=echo&command=hi+there&error=1&input=1&output=1"
        );
        let versions: Vec<&str> = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(versions, vec!["v4.channel.k8s.io", "v3.channel.k8s.io"]);
        assert!(
            headers.get(http::header::AUTHORIZATION).is_none(),
            "caller credentials are not forwarded"
        );
    }
    drop(stream);

    // WebSocket (GET), attach and port-forward.
    for (path, want) in [
        (
            "/api/v1/namespaces/default/pods/web/attach?stdout=true&tty=true",
            "/attach/default/web/app?output=1&tty=1",
        ),
        (
            "/api/v1/namespaces/default/pods/web/portforward?ports=8080",
            "/portForward/default/web?port=8080",
        ),
    ] {
        let (head, mut stream, _) = raw(
            &rig.sim,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
            ),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 101"), "{path}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("upgrade: websocket"),
            "{head}"
        );
        stream
            .write_all(b"ws")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut echo = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(60), stream.read_exact(&mut echo))
            .await
            .unwrap_or_else(|_| panic!("no echo"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&echo, b"ws");
        let seen = rig.seen.requests.lock();
        let (_, got, headers) = seen.last().unwrap_or_else(|| panic!("nothing seen"));
        assert_eq!(got, want);
        assert_eq!(
            headers
                .get("sec-websocket-key")
                .and_then(|v| v.to_str().ok()),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
    }
    rig.sim.shutdown().await;
}

fn status_of(text: &str) -> serde_json::Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or(text);
    let start = body
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    let end = body
        .rfind('}')
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    serde_json::from_str(&body[start..=end]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn get_raw(sim: &Simulator, path: &str, upgrade: bool) -> (String, serde_json::Value) {
    let extra = if upgrade {
        "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    } else {
        "Connection: close\r\n"
    };
    let (head, stream, rest) = raw(
        sim,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    )
    .await;
    if head.starts_with("HTTP/1.1 200") {
        return (head, serde_json::Value::Null);
    }
    let body = rest_of(&head, stream, rest).await;
    (head, status_of(&body))
}

#[tokio::test]
async fn errors_are_the_real_servers() {
    let rig = rig().await;
    let pods: Api<Pod> = Api::namespaced(rig.client.clone(), "default");
    let api_err = |r: Result<String, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    };
    let (code, message) = api_err(pods.logs("ghost", &LogParams::default()).await);
    assert_eq!((code, message.as_str()), (404, "pods \"ghost\" not found"));
    let (code, message) = api_err(pods.logs("multi", &LogParams::default()).await);
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "a container name must be specified for pod multi, choose one of: [setup a b]"
        )
    );
    let (code, message) = api_err(
        pods.logs(
            "multi",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await,
    );
    assert_eq!(
        (code, message.as_str()),
        (400, "container nope is not valid for pod multi")
    );
    // The kubelet's own refusal comes back as a BadRequest with its text.
    let (code, message) = api_err(pods.logs("waiting", &LogParams::default()).await);
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "container \"app\" in pod \"waiting\" is waiting to start: ContainerCreating"
        )
    );
    // An unbound pod has no log yet: an empty answer, nothing dialed.
    let before = rig.seen.requests.lock().len();
    assert_eq!(
        pods.logs("pending", &LogParams::default())
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        ""
    );
    // Exec of an unbound pod, and exec without an upgrade.
    let (head, status) = get_raw(
        &rig.sim,
        "/api/v1/namespaces/default/pods/pending/exec?command=ls&stdout=true",
        true,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(
        status["message"],
        "pod pending does not have a host assigned"
    );
    assert_eq!(status["reason"], "BadRequest");
    let (head, status) = get_raw(
        &rig.sim,
        "/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=true",
        false,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(status["message"], "Upgrade request required");
    // Methods: log is GET only.
    let (head, _, _) = raw(
        &rig.sim,
        "DELETE /api/v1/namespaces/default/pods/web/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert_eq!(
        rig.seen.requests.lock().len(),
        before,
        "no refused request reached the kubelet"
    );

    // The kubelet is gone from its port: 500 with the dial error, as the real server words it.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dead_port = dead.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    drop(dead);
    add_node(&rig.client, "gone", "127.0.0.1", dead_port).await;
    // A node on a non-loopback address is never dialed.
    add_node(&rig.client, "far", "172.18.0.2", rig.kubelet_port).await;
    for (node, pod) in [("gone", "on-gone"), ("far", "on-far")] {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": pod},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}))
        .unwrap_or_else(|e| panic!("{e}"));
        pods.create(&PostParams::default(), &p)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (code, message) = api_err(pods.logs(pod, &LogParams::default()).await);
        assert_eq!(code, 500, "{message}");
        assert!(
            message.starts_with(&format!(
                "Get \"https://{}",
                if node == "far" {
                    "172.18.0.2"
                } else {
                    "127.0.0.1"
                }
            )),
            "{message}"
        );
        let (head, status) = get_raw(
            &rig.sim,
            &format!("/api/v1/namespaces/default/pods/{pod}/exec?command=ls&stdout=true"),
            true,
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 500"), "{head}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("error dialing backend: dial tcp"),
            "{message}"
        );
    }
    assert_eq!(
        rig.seen.requests.lock().len(),
        before,
        "the far node was not dialed"
    );
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn kubelet_certificates_are_verified_both_ways() {
    // The simulator trusts another CA than the one that signed the kubelet's serving certificate.
    let serving_ca = ca("kubelet-serving");
    let client_ca = ca("kubelet-client");
    let other = ca("other");
    let rig = rig_with(
        Some(client_config(&other, &client_ca)),
        &serving_ca,
        &client_ca,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(rig.client.clone(), "default");
    match pods.logs("web", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 500, "{}", s.message),
        other => panic!("an untrusted kubelet certificate was accepted: {other:?}"),
    }
    assert!(rig.seen.requests.lock().is_empty());
    rig.sim.shutdown().await;

    // The simulator presents a client certificate the kubelet does not trust.
    let rig = rig_with(
        Some(client_config(&serving_ca, &other)),
        &serving_ca,
        &client_ca,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(rig.client.clone(), "default");
    match pods.logs("web", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 500, "{}", s.message),
        other => panic!("the kubelet accepted an untrusted client: {other:?}"),
    }
    assert!(rig.seen.requests.lock().is_empty());
    rig.sim.shutdown().await;

    // No kubelet client configured: the pod resolves, nothing is dialed.
    let rig = rig_with(None, &serving_ca, &client_ca).await;
    let pods: Api<Pod> = Api::namespaced(rig.client.clone(), "default");
    match pods.logs("web", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 500);
            assert!(
                s.message.contains("no kubelet client configured"),
                "{}",
                s.message
            );
        }
        other => panic!("answered without a kubelet client: {other:?}"),
    }
    rig.sim.shutdown().await;
}
