//! `apisim`: run simulated Kubernetes API servers from the command line.
//!
//! `apisim serve` runs one instance, `apisim multi` runs many in one process; each writes a kubeconfig
//! usable by kubectl and client libraries. Both run until Ctrl-C (SIGINT) or SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use apisim::faults::FaultConfig;
use apisim::{KubeletConfig, SimConfig, Simulator};
use clap::{Args, Parser, Subcommand};
use tracing::info;

const ABOUT: &str = "Simulated Kubernetes API servers for tests and load tests.";

const LONG_ABOUT: &str = "\
Simulated Kubernetes API servers for tests and load tests.

What is simulated: the Kubernetes REST API over plain HTTP on loopback for the built-in core, apps, batch,
rbac, networking, policy, storage, scheduling, coordination, events and apiextensions types and the custom
resources of CRDs created in it; JSON objects kept in memory with one global resourceVersion; get, list
(label/field selectors, limit/continue), watch (bookmarks, 410 Gone past the history window), create,
update (conflicts), JSON/merge/strategic merge patch, delete with finalizers and graceful pod deletion,
namespace termination, the status subresource, ClusterIP/NodePort allocation, discovery, server-side
Table output and OpenAPI documents for kubectl; optionally a scheduler + kubelet that bind pods to
simulated nodes and report them Running (--nodes), and injected faults (--fault-500, --fault-429,
--latency-ms). With --kubelet-certificate-authority (and --kubelet-client-certificate/--kubelet-client-key),
pods/log, pods/exec, pods/attach and pods/portforward are proxied to the node's kubelet over HTTPS like
kube-apiserver does (node address by --kubelet-preferred-address-types, port from the node's
daemonEndpoints; loopback kubelets only).

Run-time control of each instance: GET/PUT /apisim/v1/faults (JSON fault configuration, e.g.
{\"error500Fraction\": 0.1, \"watchCutAfterEvents\": 100}), POST /apisim/v1/force-gone (the next watch gets
410 Gone), POST /apisim/v1/compact (forget watch history).

What is not: serving TLS from the command line, authentication, authorization and admission (every request is allowed), server-side
apply, protobuf, garbage collection of dependents (propagationPolicy is accepted but owners' dependents
are not deleted), controllers other than namespace termination and the optional scheduler/kubelet, and
persistence (everything is lost when the process exits). No container ever runs.";

#[derive(Parser, Debug)]
#[command(name = "apisim", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve one simulated API server until Ctrl-C.
    Serve(ServeArgs),
    /// Serve N simulated API servers in one process until Ctrl-C, one kubeconfig each.
    Multi(MultiArgs),
}

/// Options shared by every instance.
#[derive(Args, Debug, Clone)]
struct InstanceArgs {
    /// Simulated nodes with a built-in scheduler and kubelet (0 = none: pods stay Pending unless bound).
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Service ClusterIP range (IPv4 CIDR).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    history_window: usize,
    /// Seconds between BOOKMARK events on watches that ask for them.
    #[arg(long, default_value_t = 10)]
    bookmark_interval_secs: u64,
    /// Fraction (0..=1) of requests answered with 500 InternalError.
    #[arg(long, default_value_t = 0.0)]
    fault_500: f64,
    /// Fraction (0..=1) of requests answered with 429 TooManyRequests (+ Retry-After: 1).
    #[arg(long, default_value_t = 0.0)]
    fault_429: f64,
    /// Fixed latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Seed of the fault sequence (same seed + same request order = same faults).
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Port on 127.0.0.1 (0 = any free port; the kubeconfig has the real one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Context / cluster / user name in the kubeconfig.
    #[arg(long, default_value = "apisim")]
    context: String,
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    kubelet: KubeletArgs,
}

/// How pod subresources reach node kubelets (the kube-apiserver flags of the same names).
#[derive(Args, Debug, Clone)]
struct KubeletArgs {
    /// PEM CA that kubelet serving certificates must chain to; enables pods/log|exec|attach|portforward.
    #[arg(long)]
    kubelet_certificate_authority: Option<PathBuf>,
    /// PEM client certificate presented to kubelets.
    #[arg(long, requires = "kubelet_client_key")]
    kubelet_client_certificate: Option<PathBuf>,
    /// PEM key of --kubelet-client-certificate.
    #[arg(long, requires = "kubelet_client_certificate")]
    kubelet_client_key: Option<PathBuf>,
    /// Node address types tried in order to reach a kubelet.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname"
    )]
    kubelet_preferred_address_types: Vec<String>,
}

impl KubeletArgs {
    fn config(&self) -> anyhow::Result<Option<apisim::podproxy::KubeletClientConfig>> {
        let Some(ca) = &self.kubelet_certificate_authority else {
            if self.kubelet_client_certificate.is_some() {
                bail!("--kubelet-client-certificate needs --kubelet-certificate-authority");
            }
            return Ok(None);
        };
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).with_context(|| format!("failed to read {}", p.display()))
        };
        let mut config =
            apisim::podproxy::KubeletClientConfig::new(read(ca)?, String::new(), String::new());
        config.client_cert_pem = self
            .kubelet_client_certificate
            .as_ref()
            .map(read)
            .transpose()?;
        config.client_key_pem = self.kubelet_client_key.as_ref().map(read).transpose()?;
        config.preferred_address_types = self.kubelet_preferred_address_types.clone();
        Ok(Some(config))
    }
}

#[derive(Args, Debug)]
struct MultiArgs {
    /// Number of instances (1..=5000).
    #[arg(long)]
    count: usize,
    /// First port; instance i listens on base-port + i (0 = any free port for each).
    #[arg(long, default_value_t = 0)]
    base_port: u16,
    /// Directory for the kubeconfigs (`sim-<i>.kubeconfig`) and `instances.tsv` (name, URL, kubeconfig).
    #[arg(long)]
    kubeconfig_dir: PathBuf,
    #[command(flatten)]
    instance: InstanceArgs,
}

/// Largest `--count`, a guard against typos (each idle instance costs little, but not nothing).
const MAX_INSTANCES: usize = 5000;

impl InstanceArgs {
    fn config(&self, port: u16) -> anyhow::Result<SimConfig> {
        let faults = FaultConfig {
            error_500_fraction: self.fault_500,
            error_429_fraction: self.fault_429,
            latency_ms: self.latency_ms,
            seed: self.fault_seed,
            ..FaultConfig::default()
        };
        faults.validate().context("invalid fault options")?;
        if self.history_window == 0 {
            bail!("--history-window must be at least 1");
        }
        let kubelet = (self.nodes > 0).then(|| KubeletConfig {
            nodes: self.nodes,
            ..KubeletConfig::default()
        });
        Ok(SimConfig {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            history_window: self.history_window,
            bookmark_interval: Duration::from_secs(self.bookmark_interval_secs.max(1)),
            service_cidr: self.service_cidr.clone(),
            kubelet,
            faults,
            ..SimConfig::default()
        })
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Multi(args) => multi(args).await,
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args.instance.config(args.port)?;
    config.kubelet_client = args.kubelet.config()?;
    let sim = Simulator::start(config)
        .await
        .context("failed to start the simulated API server")?;
    write_file(&args.kubeconfig, &sim.kubeconfig_yaml(&args.context))?;
    info!(url = %sim.url(), kubeconfig = %args.kubeconfig.display(), "serving");
    println!("{}", sim.url());
    wait_for_shutdown_signal().await?;
    info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn multi(args: MultiArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.count > MAX_INSTANCES {
        bail!("--count must be between 1 and {MAX_INSTANCES}");
    }
    if args.base_port != 0 && usize::from(args.base_port) + args.count - 1 > usize::from(u16::MAX) {
        bail!(
            "--base-port {} + --count {} goes past port 65535",
            args.base_port,
            args.count
        );
    }
    std::fs::create_dir_all(&args.kubeconfig_dir)
        .with_context(|| format!("failed to create {}", args.kubeconfig_dir.display()))?;
    let mut sims = Vec::with_capacity(args.count);
    let mut index = String::from("name\turl\tkubeconfig\n");
    for i in 0..args.count {
        let port = if args.base_port == 0 {
            0
        } else {
            // Checked above: base_port + i <= 65535.
            u16::try_from(usize::from(args.base_port) + i).context("port out of range")?
        };
        let sim = Simulator::start(args.instance.config(port)?)
            .await
            .with_context(|| format!("failed to start instance {i}"))?;
        let name = format!("sim-{i}");
        let path = args.kubeconfig_dir.join(format!("{name}.kubeconfig"));
        write_file(&path, &sim.kubeconfig_yaml(&name))?;
        index.push_str(&format!("{name}\t{}\t{}\n", sim.url(), path.display()));
        sims.push(sim);
    }
    let index_path = args.kubeconfig_dir.join("instances.tsv");
    write_file(&index_path, &index)?;
    info!(count = sims.len(), index = %index_path.display(), "serving");
    println!(
        "{} instances; index in {}",
        sims.len(),
        index_path.display()
    );
    wait_for_shutdown_signal().await?;
    info!("shutting down");
    for sim in sims {
        sim.shutdown().await;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("failed to write {}", path.display()))
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("failed to listen for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
