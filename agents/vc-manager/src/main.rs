//! `vc-manager`: provisions VirtualCluster tenant control planes (see `vc-manager --help`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use vc_manager::grpc::GrpcRegistrar;
use vc_manager::provision::Provisioner;
use vc_manager::provision::embedded::Embedded;
use vc_manager::provision::native::Native;
use vc_manager::provision::process::{Binaries, Process};
use vc_manager::reconcile::Context;
use vc_manager::registry::Registrar;

/// Which provisioner makes tenant control planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProvisionerKind {
    /// StatefulSets + Services in the super cluster from the ClusterVersion templates.
    Native,
    /// Simulated API servers (HTTPS, tenant PKI) inside this process.
    Embedded,
    /// Real etcd + kube-apiserver child processes (ETCD_BIN, KUBE_APISERVER_BIN).
    Process,
}

/// Provisions VirtualCluster tenant control planes in the super cluster and registers them with the
/// syncer.
///
/// With no reachable cluster configuration (no --kubeconfig, no KUBECONFIG, no ~/.kube/config, not in a
/// pod) it starts a simulated super cluster in-process, writes its kubeconfig to
/// <data-dir>/super.kubeconfig, installs the CRDs and uses the embedded provisioner: a complete local
/// setup for trying `kubectl vc create`.
#[derive(Debug, Parser)]
#[command(name = "vc-manager", version)]
struct Args {
    /// Kubeconfig of the super cluster (default: the usual inference: KUBECONFIG, ~/.kube/config,
    /// in-cluster).
    #[arg(long, env = "VC_MANAGER_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Provisioner (default: native with a real cluster, embedded with the simulated one).
    #[arg(long, value_enum)]
    provisioner: Option<ProvisionerKind>,
    /// Directory for the simulated super cluster's kubeconfig and the process provisioner's files.
    #[arg(long, default_value = "vc-manager-data")]
    data_dir: PathBuf,
    /// Create the CRDs at start if absent (always done with the simulated super cluster).
    #[arg(long)]
    install_crds: bool,
    /// Start a simulated super cluster even if a cluster configuration exists.
    #[arg(long)]
    simulated_super: bool,
    /// Address (`host:port`) of the syncer's gRPC API; tenants are registered there once Running and
    /// unregistered on deletion. Without it tenants are provisioned but not synced.
    #[arg(long, env = "VC_MANAGER_SYNCER_ADDR")]
    syncer_addr: Option<String>,
    /// Directory with the syncer's mTLS client material, as the syncer writes it to `<its data-dir>/grpc/`:
    /// `ca.pem` and the `vc-manager` role certificate `vc-manager.pem` + `vc-manager-key.pem`. Waited for
    /// (see --syncer-tls-wait) when the syncer has not written it yet.
    #[arg(long, env = "VC_MANAGER_SYNCER_TLS_DIR")]
    syncer_tls_dir: Option<PathBuf>,
    /// How long to wait at start for the files of --syncer-tls-dir to appear, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    syncer_tls_wait: u64,
    /// CA certificate (PEM) of the syncer's server certificate (overrides --syncer-tls-dir).
    #[arg(long, requires_all = ["syncer_cert", "syncer_key"])]
    syncer_ca: Option<PathBuf>,
    /// Client certificate (PEM) presented to the syncer; it needs the role `vc-manager` or `admin` (its
    /// `OU`) to register tenants.
    #[arg(long)]
    syncer_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long)]
    syncer_key: Option<PathBuf>,
    /// Name the syncer's server certificate is checked against.
    #[arg(long, default_value = tenancy_proto::tls::DEFAULT_SERVER_NAME)]
    syncer_server_name: String,
    /// Talk to the syncer in plain text (explicit opt-in; only for a syncer started with --grpc-insecure).
    #[arg(long)]
    syncer_insecure: bool,
}

async fn registrar(args: &Args) -> anyhow::Result<Option<Arc<dyn Registrar>>> {
    let Some(addr) = &args.syncer_addr else {
        return Ok(None);
    };
    let material = if args.syncer_insecure {
        None
    } else if let (Some(ca), Some(cert), Some(key)) =
        (&args.syncer_ca, &args.syncer_cert, &args.syncer_key)
    {
        Some(tenancy_proto::tls::TlsMaterial::from_files(ca, cert, key)?)
    } else if let Some(dir) = &args.syncer_tls_dir {
        Some(
            vc_manager::syncer_tls::wait_for_role_material(
                dir,
                tenancy_proto::roles::Role::VcManager,
                Duration::from_secs(args.syncer_tls_wait),
            )
            .await?,
        )
    } else {
        anyhow::bail!(
            "--syncer-addr needs mTLS material (--syncer-tls-dir, or --syncer-ca/--syncer-cert/--syncer-key) \
             or an explicit --syncer-insecure"
        );
    };
    let grpc = GrpcRegistrar::connect(addr, material.as_ref(), &args.syncer_server_name).await?;
    tracing::info!(%addr, tls = material.is_some(), "registering tenants with the syncer");
    Ok(Some(Arc::new(grpc)))
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Plain text when the log goes to a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn super_client(args: &Args) -> anyhow::Result<Option<kube::Client>> {
    if args.simulated_super {
        return Ok(None);
    }
    if let Some(path) = &args.kubeconfig {
        let yaml = std::fs::read_to_string(path)
            .with_context(|| format!("read kubeconfig {}", path.display()))?;
        return Ok(Some(vc_manager::kubeconfig::client(&yaml).await?));
    }
    match kube::Config::infer().await {
        Ok(config) => Ok(Some(kube::Client::try_from(config)?)),
        Err(error) => {
            tracing::info!(%error, "no cluster configuration found: using a simulated super cluster");
            Ok(None)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create {}", args.data_dir.display()))?;
    let (client, simulated) = match super_client(&args).await? {
        Some(client) => (client, None),
        None => {
            let sim = apisim::Simulator::start(apisim::SimConfig {
                kubelet: Some(apisim::KubeletConfig::default()),
                ..apisim::SimConfig::default()
            })
            .await?;
            let path = args.data_dir.join("super.kubeconfig");
            std::fs::write(&path, sim.kubeconfig_yaml("super"))
                .with_context(|| format!("write {}", path.display()))?;
            println!(
                "simulated super cluster: kubectl --kubeconfig {} get vc -A",
                path.display()
            );
            let client = vc_manager::kubeconfig::client(&sim.kubeconfig_yaml("super")).await?;
            (client, Some(sim))
        }
    };
    if args.install_crds || simulated.is_some() {
        vc_manager::install::install_crds(&client, Duration::from_secs(30)).await?;
    }
    let kind = args.provisioner.unwrap_or(if simulated.is_some() {
        ProvisionerKind::Embedded
    } else {
        ProvisionerKind::Native
    });
    let provisioner: Arc<dyn Provisioner> = match kind {
        ProvisionerKind::Native => Arc::new(Native),
        ProvisionerKind::Embedded => Arc::new(Embedded::new()),
        ProvisionerKind::Process => {
            let binaries = Binaries::from_env()
                .map_err(|e| anyhow::anyhow!("the process provisioner needs real binaries: {e}"))?;
            Arc::new(Process::new(binaries, args.data_dir.join("tenants")))
        }
    };
    tracing::info!(provisioner = provisioner.name(), "vc-manager starting");
    let ctx = Arc::new(Context {
        client,
        provisioner,
        registrar: registrar(&args).await?,
        now: time::OffsetDateTime::now_utc,
    });
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    vc_manager::controller::run(ctx, shutdown).await;
    if let Some(sim) = simulated {
        sim.shutdown().await;
    }
    Ok(())
}
