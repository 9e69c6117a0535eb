//! The simulated kubelet of the load: HTTPS requiring the agent's client certificate;
//! `GET /containerLogs/{ns}/{pod}/{c}?follow=true` writes one line every `interval` until the caller leaves.
//! A line is `<seq> <sent at, µs since the Unix epoch> <padding>\n`, `line_bytes` long, so the reader can
//! check order and measure delivery latency.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use vn_agent::tls;

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the kubelet did.
#[derive(Default)]
pub struct KubeletStats {
    /// Follow streams opened.
    pub streams: AtomicU64,
    /// Lines written.
    pub lines: AtomicU64,
}

type Body = BoxBody<Bytes, Infallible>;

fn line(seq: u64, line_bytes: usize) -> Bytes {
    let mut s = format!("{seq} {} ", now_micros());
    let pad = line_bytes.saturating_sub(s.len() + 1);
    s.extend(std::iter::repeat_n('x', pad));
    s.push('\n');
    Bytes::from(s)
}

async fn handle(
    req: http::Request<Incoming>,
    stats: Arc<KubeletStats>,
    interval: Duration,
    line_bytes: usize,
) -> Result<http::Response<Body>, Infallible> {
    if !req.uri().path().starts_with("/containerLogs/") {
        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"not found")).boxed());
        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    if !req.uri().query().is_some_and(|q| q.contains("follow=true")) {
        return Ok(http::Response::new(Full::new(line(0, line_bytes)).boxed()));
    }
    stats.streams.fetch_add(1, Ordering::Relaxed);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lines = futures::stream::unfold((1u64, ticker), move |(seq, mut ticker)| {
        let stats = stats.clone();
        async move {
            ticker.tick().await;
            stats.lines.fetch_add(1, Ordering::Relaxed);
            Some((
                Ok::<_, Infallible>(Frame::data(line(seq, line_bytes))),
                (seq + 1, ticker),
            ))
        }
    });
    Ok(http::Response::new(StreamBody::new(lines).boxed()))
}

/// Starts the kubelet on 127.0.0.1 with a serving certificate from `serving_ca`, requiring client
/// certificates from `client_ca_pem`.
pub async fn start(
    serving_ca: &tenancy_proto::pki::CertificateAuthority,
    client_ca_pem: &str,
    stats: Arc<KubeletStats>,
    interval: Duration,
    line_bytes: usize,
) -> anyhow::Result<SocketAddr> {
    let cert = serving_ca.issue_server(&tenancy_proto::pki::default_server_names(&[]))?;
    let roots = tls::roots("kubelet client CA", client_ca_pem)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        tls::provider(),
    )
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            tls::certs("kubelet cert", &cert.cert_pem)?,
            tls::key("kubelet key", &cert.key_pem)?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, stats) = (acceptor.clone(), stats.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    handle(req, stats.clone(), interval, line_bytes)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
