//! `vn-agent`: serves the kubelet API of one super node to tenant API servers (see the library docs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tenancy_proto::tls as grpc_tls;
use vn_agent::{
    Agent, AgentConfig,
    apiserver::ApiServerForwarder,
    forward::{Forwarder, KubeletForwarder},
    identity::TenantCas,
    tls,
    translate::Translator,
};

/// Where translated requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Directly to the node's kubelet over mutual TLS.
    Kubelet,
    /// Through the super API server's pod subresources with the agent's own credentials.
    Apiserver,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "vn-agent", about = "Kubelet proxy for tenant API servers")]
struct Args {
    /// HTTPS listen address (the port virtual nodes advertise).
    #[arg(long, env = "VN_AGENT_LISTEN", default_value = "0.0.0.0:10550")]
    listen: SocketAddr,
    /// Serving certificate (PEM chain).
    #[arg(long, env = "VN_AGENT_TLS_CERT")]
    tls_cert: PathBuf,
    /// Serving key (PEM).
    #[arg(long, env = "VN_AGENT_TLS_KEY")]
    tls_key: PathBuf,
    /// Super node name this agent runs on (pods elsewhere are refused).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Syncer gRPC address.
    #[arg(long, env = "VN_AGENT_SYNCER_ADDR", default_value = "127.0.0.1:9465")]
    syncer_addr: String,
    /// CA of the syncer's gRPC server certificate.
    #[arg(long, env = "VN_AGENT_SYNCER_CA")]
    syncer_ca: PathBuf,
    /// Client certificate for the syncer.
    #[arg(long, env = "VN_AGENT_SYNCER_CERT")]
    syncer_cert: PathBuf,
    /// Client key for the syncer.
    #[arg(long, env = "VN_AGENT_SYNCER_KEY")]
    syncer_key: PathBuf,
    /// Name the syncer's certificate is verified for.
    #[arg(long, default_value = grpc_tls::DEFAULT_SERVER_NAME)]
    syncer_server_name: String,
    /// Forwarding mode.
    #[arg(long, env = "VN_AGENT_FORWARD", value_enum, default_value = "kubelet")]
    forward: Mode,
    /// Kubeconfig of the super cluster for `--forward apiserver` (in-cluster config when absent).
    #[arg(long, env = "VN_AGENT_SUPER_KUBECONFIG")]
    super_kubeconfig: Option<PathBuf>,
    /// Kubelet address (`host:port`) of this node.
    #[arg(long, env = "VN_AGENT_KUBELET_ADDR", default_value = "127.0.0.1:10250")]
    kubelet_addr: String,
    /// Name the kubelet's serving certificate is verified for.
    #[arg(long, default_value = "127.0.0.1")]
    kubelet_server_name: String,
    /// CA of the kubelet's serving certificate (always verified; required with `--forward kubelet`).
    #[arg(long, env = "VN_AGENT_KUBELET_CA")]
    kubelet_ca: Option<PathBuf>,
    /// Client certificate presented to the kubelet (required with `--forward kubelet`).
    #[arg(long, env = "VN_AGENT_KUBELET_CLIENT_CERT")]
    kubelet_client_cert: Option<PathBuf>,
    /// Client key presented to the kubelet (required with `--forward kubelet`).
    #[arg(long, env = "VN_AGENT_KUBELET_CLIENT_KEY")]
    kubelet_client_key: Option<PathBuf>,
    /// Prometheus metrics listen address.
    #[arg(long, env = "VN_AGENT_METRICS_ADDR", default_value = "0.0.0.0:10551")]
    metrics_addr: SocketAddr,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn required<'a>(path: &'a Option<PathBuf>, flag: &str) -> anyhow::Result<&'a PathBuf> {
    path.as_ref()
        .with_context(|| format!("{flag} is required with --forward kubelet"))
}

async fn forwarder(args: &Args) -> anyhow::Result<Arc<dyn Forwarder>> {
    match args.forward {
        Mode::Kubelet => {
            let kubelet_tls = tls::kubelet_client_config(
                &read(required(&args.kubelet_ca, "--kubelet-ca")?)?,
                &read(required(
                    &args.kubelet_client_cert,
                    "--kubelet-client-cert",
                )?)?,
                &read(required(&args.kubelet_client_key, "--kubelet-client-key")?)?,
            )?;
            let server_name =
                rustls_pki_types::ServerName::try_from(args.kubelet_server_name.clone())
                    .context("kubelet server name")?;
            Ok(Arc::new(KubeletForwarder::new(
                args.kubelet_addr.clone(),
                server_name,
                kubelet_tls,
            )))
        }
        Mode::Apiserver => {
            let config = match &args.super_kubeconfig {
                Some(path) => {
                    let kubeconfig = kube::config::Kubeconfig::read_from(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                        .await
                        .context("super kubeconfig")?
                }
                None => kube::Config::incluster().context("in-cluster config")?,
            };
            Ok(Arc::new(ApiServerForwarder::new(config)?))
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(args.metrics_addr)
        .install()
        .context("metrics exporter")?;

    let material =
        grpc_tls::TlsMaterial::from_files(&args.syncer_ca, &args.syncer_cert, &args.syncer_key)?;
    let channel = grpc_tls::endpoint(
        &args.syncer_addr,
        Some(material.client_config(&args.syncer_server_name)),
    )?
    .connect_lazy();
    let cas = Arc::new(TenantCas::default());
    let translator = Translator::new(channel, cas);
    tokio::spawn(
        translator
            .clone()
            .watch(Arc::new(tokio::sync::Notify::new())),
    );

    let forwarder = forwarder(&args).await?;
    let serving = tls::server_config(&read(&args.tls_cert)?, &read(&args.tls_key)?)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, mode = forwarder.mode(), node = ?args.node_name, "vn-agent serving");
    let agent = Agent::with_forwarder(
        AgentConfig {
            node_name: args.node_name,
        },
        translator,
        forwarder,
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        () = agent.serve(listener, serving) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = terminate.recv() => tracing::info!("terminated; shutting down"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const BASE: &[&str] = &[
        "vn-agent",
        "--tls-cert=c",
        "--tls-key=k",
        "--syncer-ca=a",
        "--syncer-cert=b",
        "--syncer-key=d",
    ];

    #[test]
    fn command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn kubelet_is_the_default_mode_and_apiserver_needs_no_kubelet_material() {
        let args = Args::try_parse_from(BASE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.forward, Mode::Kubelet);
        assert!(required(&args.kubelet_ca, "--kubelet-ca").is_err());

        let mut argv = BASE.to_vec();
        argv.extend([
            "--forward=apiserver",
            "--super-kubeconfig=/etc/super.yaml",
            "--node-name=n1",
        ]);
        let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.forward, Mode::Apiserver);
        assert_eq!(
            args.super_kubeconfig,
            Some(PathBuf::from("/etc/super.yaml"))
        );
        assert_eq!(args.node_name.as_deref(), Some("n1"));
    }
}
