//! Load: N concurrent `logs -f` streams through one vn-agent process.
//!
//! Starts the `vn-agent` binary (the one built next to this example, or `--agent-bin`) as a child process
//! against an in-process `Translation` gRPC service (mutual TLS) and an in-process simulated kubelet (mutual
//! TLS) that writes one line per stream every `--line-interval-ms`. Opens `--streams` follow streams, spread
//! over `--tenants` tenants (each with its own kubelet-client CA and certificate), reads them for
//! `--seconds`, and reports lines, bytes, errors (connection/TLS failures, non-200 answers, streams that end
//! early, out-of-order lines), line delivery latency (kubelet write → reader), the agent's
//! `vn_agent_streams_in_flight` halfway through, and the agent's CPU seconds and peak RSS from
//! `/proc/<pid>`.
//!
//! ```sh
//! CARGO_TARGET_DIR=... cargo build --release -p vn-agent --bins --examples
//! $CARGO_TARGET_DIR/release/examples/stream_load --streams 200 --seconds 30
//! ```

mod kubelet;
mod procstat;
mod translation;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tenancy_proto::pki::{CertificateAuthority, IssuedCert, default_server_names};
use tenancy_proto::v1;
use vn_agent::tls;

#[derive(Debug, Parser)]
#[command(about = "N concurrent logs -f streams through one vn-agent process")]
struct Args {
    /// Concurrent follow streams.
    #[arg(long, default_value_t = 200)]
    streams: usize,
    /// How long the streams are read, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Interval between two lines of one stream, in milliseconds.
    #[arg(long, default_value_t = 100)]
    line_interval_ms: u64,
    /// Bytes per line (newline included).
    #[arg(long, default_value_t = 120)]
    line_bytes: usize,
    /// Tenants the streams are spread over.
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// The vn-agent binary (default: `../vn-agent` next to this example's directory).
    #[arg(long)]
    agent_bin: Option<PathBuf>,
}

/// What one stream saw.
#[derive(Default)]
struct StreamResult {
    lines: u64,
    bytes: u64,
    errors: Vec<String>,
    latencies_us: Vec<u32>,
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One tenant: cluster key, kubelet-client CA, the tenant API server's certificate.
struct Tenant {
    key: String,
    ca: CertificateAuthority,
    cert: IssuedCert,
}

fn client_tls(agent_ca: &str, cert: &IssuedCert) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(tls::roots("agent CA", agent_ca)?)
        .with_client_auth_cert(
            tls::certs("cert", &cert.cert_pem)?,
            tls::key("key", &cert.key_pem)?,
        )?;
    Ok(Arc::new(config))
}

/// GET `path` from the agent; the response with its body still streaming.
async fn agent_get(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, "127.0.0.1")
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(req).await?)
}

/// Reads one follow stream until `deadline`.
async fn run_stream(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: String,
    deadline: tokio::time::Instant,
) -> StreamResult {
    let mut result = StreamResult::default();
    let resp = match agent_get(addr, tls, &path).await {
        Ok(resp) => resp,
        Err(e) => {
            result.errors.push(format!("request: {e}"));
            return result;
        }
    };
    if resp.status() != http::StatusCode::OK {
        result.errors.push(format!("status {}", resp.status()));
        return result;
    }
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    let mut expected = 1u64;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => break,
            Ok(None) => {
                result.errors.push("stream ended early".into());
                break;
            }
            Ok(Some(Err(e))) => {
                result.errors.push(format!("body: {e}"));
                break;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = kubelet::now_micros();
        result.bytes += data.len() as u64;
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let mut parts = text.split(' ');
            let seq: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let sent: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(now);
            if seq != expected {
                result
                    .errors
                    .push(format!("line {seq} where {expected} was due"));
            }
            expected = seq + 1;
            result.lines += 1;
            result
                .latencies_us
                .push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
        }
    }
    result
}

/// The sum over all label sets of a gauge from the agent's Prometheus endpoint.
async fn scrape_gauge(metrics: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let tcp = tokio::net::TcpStream::connect(metrics).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = http::Request::get("/metrics")
        .header(http::header::HOST, metrics.to_string())
        .body(Empty::<Bytes>::new())?;
    let body = sender
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?;
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.split_whitespace().last().and_then(|v| v.parse().ok()))
        .collect();
    if values.is_empty() {
        bail!("{name} not in the metrics");
    }
    Ok(values.iter().sum())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}

struct AgentProcess(std::process::Child);
impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.streams == 0 || args.tenants == 0 {
        bail!("--streams and --tenants must be at least 1");
    }
    let agent_bin = match &args.agent_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("vn-agent"))
            .ok_or_else(|| {
                anyhow::anyhow!("cannot locate the vn-agent binary; pass --agent-bin")
            })?,
    };
    if !agent_bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p vn-agent --bins --examples`",
            agent_bin.display()
        );
    }
    let dir = tempfile::tempdir()?;

    // PKI: syncer gRPC, kubelet serving + client, agent serving, one kubelet-client CA per tenant.
    let grpc_ca = CertificateAuthority::generate()?;
    let grpc_server = grpc_ca.issue_server(&default_server_names(&[]))?;
    let grpc_client = grpc_ca.issue_client("vn-agent")?;
    let kubelet_ca = CertificateAuthority::generate()?;
    let kubelet_client_ca = CertificateAuthority::generate()?;
    let agent_kubelet_cert = kubelet_client_ca.issue_client("vn-agent")?;
    let agent_ca = CertificateAuthority::generate()?;
    let agent_cert = agent_ca.issue_server(&default_server_names(&[]))?;
    let mut tenants = Vec::new();
    for i in 0..args.tenants {
        let key = tenancy_naming::cluster_key("default", &format!("load-{i}"), &format!("uid-{i}"));
        let ca = CertificateAuthority::generate()?;
        let cert = ca.issue_client(&key)?;
        tenants.push(Tenant { key, ca, cert });
    }

    // Translation: pod-<i> in namespace `app` of tenant i % tenants.
    let mut pods = HashMap::new();
    let mut targets = Vec::new();
    for i in 0..args.streams {
        let t = &tenants[i % tenants.len()];
        let pod = format!("pod-{i}");
        let loc = v1::PodLocation {
            cluster_key: t.key.clone(),
            tenant_namespace: "app".into(),
            tenant_pod: pod.clone(),
            tenant_uid: format!("{pod}-tenant"),
            super_namespace: tenancy_naming::super_namespace(&t.key, "app"),
            super_pod: pod.clone(),
            super_uid: format!("{pod}-super"),
            node_name: "node-0".into(),
        };
        pods.insert((t.key.clone(), "app".to_string(), pod.clone()), loc);
        targets.push((
            i % tenants.len(),
            format!("/containerLogs/app/{pod}/app?follow=true"),
        ));
    }
    let identities = tenants
        .iter()
        .map(|t| v1::TenantIdentity {
            cluster_key: t.key.clone(),
            kubelet_client_ca_pem: t.ca.cert_pem().to_string(),
        })
        .collect();
    let service = Arc::new(translation::StaticTranslation::new(identities, pods));
    let grpc_addr = translation::serve(
        service,
        tenancy_proto::tls::TlsMaterial::new(
            grpc_ca.cert_pem(),
            grpc_server.cert_pem,
            grpc_server.key_pem,
        )?,
    )
    .await?;
    let stats = Arc::new(kubelet::KubeletStats::default());
    let kubelet_addr = kubelet::start(
        &kubelet_ca,
        kubelet_client_ca.cert_pem(),
        stats.clone(),
        Duration::from_millis(args.line_interval_ms.max(1)),
        args.line_bytes.max(32),
    )
    .await?;

    // The agent as a child process.
    let d = dir.path();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let log = std::fs::File::create(d.join("vn-agent.log"))?;
    let child = std::process::Command::new(&agent_bin)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--tls-cert")
        .arg(write(d, "agent.pem", &agent_cert.cert_pem)?)
        .arg("--tls-key")
        .arg(write(d, "agent-key.pem", &agent_cert.key_pem)?)
        .args(["--node-name", "node-0", "--syncer-addr"])
        .arg(grpc_addr.to_string())
        .arg("--syncer-ca")
        .arg(write(d, "grpc-ca.pem", grpc_ca.cert_pem())?)
        .arg("--syncer-cert")
        .arg(write(d, "grpc-client.pem", &grpc_client.cert_pem)?)
        .arg("--syncer-key")
        .arg(write(d, "grpc-client-key.pem", &grpc_client.key_pem)?)
        .arg("--kubelet-addr")
        .arg(kubelet_addr.to_string())
        .arg("--kubelet-ca")
        .arg(write(d, "kubelet-ca.pem", kubelet_ca.cert_pem())?)
        .arg("--kubelet-client-cert")
        .arg(write(
            d,
            "kubelet-client.pem",
            &agent_kubelet_cert.cert_pem,
        )?)
        .arg("--kubelet-client-key")
        .arg(write(
            d,
            "kubelet-client-key.pem",
            &agent_kubelet_cert.key_pem,
        )?)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", agent_bin.display()))?;
    let agent = AgentProcess(child);
    let pid = agent.0.id();

    // Ready once a plain log request of the first pod is answered 200 (tenants known, translation works).
    let tls_of: Vec<Arc<rustls::ClientConfig>> = tenants
        .iter()
        .map(|t| client_tls(agent_ca.cert_pem(), &t.cert))
        .collect::<Result<_, _>>()?;
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let first = targets[0].1.replace("?follow=true", "");
        match agent_get(listen, tls_of[0].clone(), &first).await {
            Ok(resp) if resp.status() == http::StatusCode::OK => break,
            _ if Instant::now() > ready_deadline => {
                let log = std::fs::read_to_string(d.join("vn-agent.log")).unwrap_or_default();
                bail!("the agent did not become ready within 60 s; its log:\n{log}");
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let (_, rss_before_kib) = procstat::rss_kib(pid)?;
    let cpu_before = procstat::cpu_seconds(pid)?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.streams);
    for (tenant, path) in &targets {
        tasks.push(tokio::spawn(run_stream(
            listen,
            tls_of[*tenant].clone(),
            path.clone(),
            deadline,
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds / 2)).await;
    let in_flight = scrape_gauge(metrics, "vn_agent_streams_in_flight")
        .await
        .unwrap_or(f64::NAN);
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = procstat::cpu_seconds(pid)? - cpu_before;
    let (rss_kib, peak_kib) = procstat::rss_kib(pid)?;
    drop(agent);

    let lines: u64 = results.iter().map(|r| r.lines).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let errors: Vec<&String> = results.iter().flat_map(|r| r.errors.iter()).collect();
    let failed_streams = results.iter().filter(|r| !r.errors.is_empty()).count();
    let mut latencies: Vec<u32> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    println!(
        "streams {} over {} tenants, {elapsed:.1} s, one {}-byte line every {} ms per stream",
        args.streams, args.tenants, args.line_bytes, args.line_interval_ms
    );
    println!(
        "kubelet: {} follow streams opened, {} lines written",
        stats.streams.load(Ordering::Relaxed),
        stats.lines.load(Ordering::Relaxed)
    );
    println!(
        "read: {lines} lines, {bytes} bytes ({:.0} lines/s, {:.1} KiB/s)",
        lines as f64 / elapsed,
        bytes as f64 / elapsed / 1024.0
    );
    println!(
        "errors: {} in {failed_streams} streams{}",
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!(
        "line latency kubelet -> reader: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!("agent vn_agent_streams_in_flight (all label sets) at half time: {in_flight}");
    println!(
        "agent CPU: {cpu:.2} s over {elapsed:.1} s ({:.1} % of one core)",
        100.0 * cpu / elapsed
    );
    println!(
        "agent RSS: {:.1} MiB before the streams, {:.1} MiB at the end, peak {:.1} MiB",
        rss_before_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    if !errors.is_empty() {
        bail!("{} errors", errors.len());
    }
    Ok(())
}
