//! The simulated kubelet (and, with [`Style::ApiServer`], a fake super API server serving pod subresources):
//!
//! * `GET /containerLogs/{ns}/{pod}/{c}` (`follow=true` streams a line every 20 ms until the caller leaves);
//! * `/exec/{ns}/{pod}[/{uid}]/{c}?command=…` as a WebSocket upgrade (`v5.channel.k8s.io` or
//!   `v4.channel.k8s.io`): `echo ARGS` writes the arguments to stdout (channel 1); `cat` echoes stdin
//!   (channel 0) to stdout until stdin is closed (v5 close message); `flood` writes 16 KiB stdout messages
//!   forever, counting what it managed to send in [`KubeletLog::flood_written`]; `sleep` waits for the caller
//!   to leave; `drop` writes `bye\n` and drops the connection without a close handshake. Every command but
//!   `sleep`/`drop`/`flood` ends with a `Success` status on channel 3 and a close;
//! * `/attach/…` like `cat`;
//! * `/portForward/{ns}/{pod}[/{uid}]?port=P` (WebSocket `portforward.k8s.io`): announces the port on the data
//!   (0) and error (1) channels, then echoes every data-channel message back;
//! * any of the above with `Upgrade: SPDY/3.1`: answers 101 with `X-Stream-Protocol-Version` and echoes raw
//!   bytes (proves the agent splices without parsing frames);
//! * `POST /run/{ns}/{pod}[/{uid}]/{c}?cmd=echo+X` answers `X\n`.
//!
//! In API-server style the same behaviours sit under `/api/v1/namespaces/{ns}/pods/{pod}/{log|exec|attach|
//! portforward}` with the API server's query names, and a bearer token is required.
#![allow(dead_code, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key, protocol::Role};

/// What the simulated server saw and did.
#[derive(Default)]
pub struct KubeletLog {
    /// Path and query of every request.
    pub paths: Mutex<Vec<String>>,
    /// Headers of every request, in order.
    pub headers: Mutex<Vec<http::HeaderMap>>,
    /// A `follow` log stream was closed.
    pub follow_closed: AtomicBool,
    /// Upgraded streams started.
    pub streams_opened: AtomicUsize,
    /// Upgraded streams whose connection ended (read end or error on the server side).
    pub streams_closed: AtomicUsize,
    /// Stdout bytes the `flood` command managed to send.
    pub flood_written: AtomicU64,
}

struct ClosedOnDrop(Arc<KubeletLog>);
impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.follow_closed.store(true, Ordering::SeqCst);
    }
}

struct StreamClosed(Arc<KubeletLog>);
impl Drop for StreamClosed {
    fn drop(&mut self) {
        self.0.streams_closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Which path layout the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Kubelet paths; the caller is authenticated by TLS.
    Kubelet,
    /// API server pod subresources; `Authorization: Bearer <token>` required.
    ApiServer { token: &'static str },
}

/// A pod the server knows: super namespace, name, UID.
#[derive(Debug, Clone)]
pub struct SimPod {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
}

pub type Body = BoxBody<Bytes, Infallible>;

fn full(status: http::StatusCode, body: &'static str) -> http::Response<Body> {
    let mut resp = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp
}

/// A parsed request in either style.
#[derive(Debug)]
struct Call {
    verb: String,
    namespace: String,
    pod: String,
    uid: Option<String>,
    /// Query pairs, keys in kubelet terms (`input`, `output`, `port`, …).
    query: Vec<(String, String)>,
}

impl Call {
    fn all(&self, key: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| decode(v))
            .collect()
    }
}

/// Percent- and `+`-decoding of a query value (ASCII).
pub fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse(style: Style, path: &str, query: Option<&str>) -> Option<Call> {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    match style {
        Style::Kubelet => {
            let (verb, rest) = segs.split_first()?;
            let (ns, pod, uid) = match (*verb, rest) {
                ("portForward", [ns, pod]) => (ns, pod, None),
                ("portForward", [ns, pod, uid]) => (ns, pod, Some(uid)),
                (_, [ns, pod, _c]) => (ns, pod, None),
                ("exec" | "attach" | "run", [ns, pod, uid, _c]) => (ns, pod, Some(uid)),
                _ => return None,
            };
            Some(Call {
                verb: (*verb).to_string(),
                namespace: (*ns).to_string(),
                pod: (*pod).to_string(),
                uid: uid.map(|u| (*u).to_string()),
                query: pairs,
            })
        }
        Style::ApiServer { .. } => {
            let ["api", "v1", "namespaces", ns, "pods", pod, sub] = segs.as_slice() else {
                return None;
            };
            let verb = match *sub {
                "log" => "containerLogs",
                "exec" => "exec",
                "attach" => "attach",
                "portforward" => "portForward",
                _ => return None,
            };
            for (k, _) in pairs.iter_mut() {
                let mapped = match k.as_str() {
                    "stdin" => "input",
                    "stdout" => "output",
                    "stderr" => "error",
                    "ports" => "port",
                    _ => continue,
                };
                *k = mapped.to_string();
            }
            Some(Call {
                verb: verb.to_string(),
                namespace: (*ns).to_string(),
                pod: (*pod).to_string(),
                uid: None,
                query: pairs,
            })
        }
    }
}

fn header_values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect()
}

/// Handles one request of the simulated server.
pub async fn handle(
    style: Style,
    log: Arc<KubeletLog>,
    pods: Arc<Vec<SimPod>>,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    log.paths.lock().push(req.uri().to_string());
    log.headers.lock().push(req.headers().clone());
    if let Style::ApiServer { token } = style {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {token}")) {
            return Ok(full(http::StatusCode::UNAUTHORIZED, "Unauthorized"));
        }
    }
    let Some(call) = parse(style, req.uri().path(), req.uri().query()) else {
        return Ok(full(http::StatusCode::NOT_FOUND, "not found"));
    };
    let known = pods.iter().any(|p| {
        p.namespace == call.namespace
            && p.pod == call.pod
            && call.uid.as_ref().is_none_or(|u| u == &p.uid)
    });
    if !known {
        return Ok(full(http::StatusCode::NOT_FOUND, "not found"));
    }
    match call.verb.as_str() {
        "containerLogs" => Ok(logs(&log, &call)),
        "run" => {
            let cmd = call.all("cmd").join(" ");
            match cmd.strip_prefix("echo ") {
                Some(rest) => Ok(http::Response::new(
                    Full::new(Bytes::from(format!("{rest}\n"))).boxed(),
                )),
                None => Ok(full(http::StatusCode::BAD_REQUEST, "unknown command")),
            }
        }
        "exec" | "attach" | "portForward" => Ok(upgrade(log, call, &mut req)),
        _ => Ok(full(http::StatusCode::NOT_FOUND, "not found")),
    }
}

fn logs(log: &Arc<KubeletLog>, call: &Call) -> http::Response<Body> {
    if call.all("follow").iter().any(|v| v == "true") {
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
        return http::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    }
    http::Response::new(Full::new(Bytes::from_static(b"line 1\nline 2\n")).boxed())
}

fn upgrade(
    log: Arc<KubeletLog>,
    call: Call,
    req: &mut http::Request<Incoming>,
) -> http::Response<Body> {
    let headers = req.headers().clone();
    let upgrade = header_values(&headers, "upgrade");
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let on = hyper::upgrade::on(req);
        tokio::spawn(async move {
            let Ok(upgraded) = on.await else { return };
            log.streams_opened.fetch_add(1, Ordering::SeqCst);
            let _closed = StreamClosed(log.clone());
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 4096];
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
        let mut resp = http::Response::new(Empty::new().boxed());
        *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        h.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("SPDY/3.1"),
        );
        h.insert(
            "x-stream-protocol-version",
            http::HeaderValue::from_static("v4.channel.k8s.io"),
        );
        return resp;
    }
    if !upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        return full(http::StatusCode::BAD_REQUEST, "Upgrade request required");
    }
    let Some(key) = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return full(http::StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let offered = header_values(&headers, "sec-websocket-protocol");
    let wanted: &[&str] = if call.verb == "portForward" {
        &["portforward.k8s.io"]
    } else {
        &["v5.channel.k8s.io", "v4.channel.k8s.io"]
    };
    let Some(protocol) = wanted
        .iter()
        .find(|w| offered.iter().any(|o| o == *w))
        .copied()
    else {
        return full(http::StatusCode::BAD_REQUEST, "no supported subprotocol");
    };
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on.await else { return };
        log.streams_opened.fetch_add(1, Ordering::SeqCst);
        let _closed = StreamClosed(log.clone());
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        if call.verb == "portForward" {
            port_forward(ws, &call).await;
        } else {
            exec(ws, &call, protocol == "v5.channel.k8s.io", &log).await;
        }
    });
    let mut resp = http::Response::new(Empty::new().boxed());
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::SEC_WEBSOCKET_ACCEPT,
        http::HeaderValue::from_str(&key).unwrap_or_else(|e| panic!("{e}")),
    );
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(protocol),
    );
    resp
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A channel message: the channel byte then the payload.
pub fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// The `Success` status the kubelet sends on channel 3 when a command exits 0.
pub const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

async fn exec(mut ws: Ws, call: &Call, v5: bool, log: &KubeletLog) {
    let command = call.all("command");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    match (call.verb.as_str(), command.as_slice()) {
        ("exec", ["echo", args @ ..]) => {
            let out = format!("{}\n", args.join(" "));
            if ws.send(channel_message(1, out.as_bytes())).await.is_err() {
                return;
            }
        }
        ("exec", ["cat"]) | ("attach", _) => {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Binary(data) = msg else {
                    if matches!(msg, Message::Close(_)) {
                        return;
                    }
                    continue;
                };
                match data.first() {
                    Some(0) if ws.send(channel_message(1, &data[1..])).await.is_err() => return,
                    // v5: close of stdin.
                    Some(255) if v5 && data.get(1) == Some(&0) => break,
                    _ => {}
                }
            }
        }
        ("exec", ["flood"]) => {
            let chunk = vec![b'x'; 16 * 1024];
            loop {
                if ws.send(channel_message(1, &chunk)).await.is_err() {
                    return;
                }
                log.flood_written
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        ("exec", ["sleep"]) => {
            while let Some(Ok(_)) = ws.next().await {}
            return;
        }
        ("exec", ["drop"]) => {
            let _ = ws.send(channel_message(1, b"bye\n")).await;
            return;
        }
        _ => {
            let _ = ws
                .send(channel_message(
                    3,
                    br#"{"metadata":{},"status":"Failure","message":"unknown command"}"#,
                ))
                .await;
            let _ = ws.close(Some(normal_close())).await;
            return;
        }
    }
    if ws
        .send(channel_message(3, SUCCESS.as_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let _ = ws.close(Some(normal_close())).await;
    // Drain until the caller acknowledges the close.
    while let Some(Ok(_)) = ws.next().await {}
}

/// The close frame the kubelet ends a stream with (1000 Normal Closure; kubectl treats a close without a
/// status code, 1005, as an error on the error stream).
fn normal_close() -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }
}

async fn port_forward(mut ws: Ws, call: &Call) {
    let port: u16 = call
        .all("port")
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let announce = port.to_le_bytes();
    for channel in [0u8, 1] {
        if ws.send(channel_message(channel, &announce)).await.is_err() {
            return;
        }
    }
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Binary(data) = msg
            && data.first() == Some(&0)
            && ws.send(channel_message(0, &data[1..])).await.is_err()
        {
            return;
        }
    }
}
