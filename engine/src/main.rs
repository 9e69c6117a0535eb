//! `syncer`: syncs tenant (virtual) clusters with one super cluster.
//!
//! With `--super-kubeconfig` it serves the tenants of `--tenants-dir` / `--tenants-config` and those
//! registered over its gRPC API (`--grpc-addr`, mutual TLS); without it, it runs the embedded default
//! (simulated clusters with sample workloads, see `syncer::embedded`).
//! Graceful shutdown on Ctrl-C / SIGTERM / `--duration`: sources stop, shards finish, the log is flushed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use metrics_exporter_prometheus::PrometheusHandle;
use syncer::app::{Syncer, SyncerOptions, TenantConnection, client_from_kubeconfig};
use syncer::config::{self, Args, TenantSpec};
use syncer::embedded::{self, Embedded};
use syncer::grpc::GrpcOptions;
use syncer::metrics::LagWindow;
use syncer::pipeline::PipelineConfig;
use syncer::reconcile::{SyncReconciler, TenantInfo, Tenants};
use syncer::source::SourceConfig;
use tokio::sync::watch;

/// Arenas glibc's allocator may create when `MALLOC_ARENA_MAX` is not set. Its default (8 per core) lets
/// every shard and runtime thread keep its own partly used heap: on the sync benchmark (10,000 pods) two
/// arenas cut the syncer's peak RSS from about 105 MiB to about 80 MiB at the same throughput.
const MALLOC_ARENAS: libc::c_int = 2;

/// Limits glibc malloc arenas unless the operator chose a value through `MALLOC_ARENA_MAX`.
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts allocator tuning; it is called before any thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

fn main() -> Result<()> {
    limit_malloc_arenas();
    let args = Args::parse();
    let embedded_mode = args.super_kubeconfig.is_none();
    let default_filter = if embedded_mode { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let metrics = syncer::metrics::install(args.metrics_addr)
        .with_context(|| format!("metrics endpoint on {}", args.metrics_addr))?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("failed to create data dir {}", args.data_dir.display()))?;
    match args.super_kubeconfig.clone() {
        Some(super_kubeconfig) => {
            let specs = match (&args.tenants_dir, &args.tenants_config) {
                (Some(dir), _) => config::load_tenants_dir(dir)?,
                (None, Some(file)) => config::load_tenants_config(file)?,
                (None, None) if args.no_grpc => {
                    bail!(
                        "--super-kubeconfig needs --tenants-dir, --tenants-config or the gRPC API"
                    )
                }
                (None, None) => Vec::new(),
            };
            let super_client = client_from_kubeconfig(&super_kubeconfig).await?;
            let log_dir = args.data_dir.clone();
            serve(&args, super_client, specs, log_dir, &metrics, None).await
        }
        None => {
            let sims = Embedded::start(&args.data_dir, args.embedded_tenants)
                .await
                .context("failed to start the embedded simulated clusters")?;
            println!(
                "embedded default: 1 super cluster (3 simulated nodes) + {} tenant clusters; kubeconfigs in {}",
                sims.tenants.len(),
                args.data_dir.join("kubeconfigs").display()
            );
            println!(
                "  try: kubectl --kubeconfig {} get pods -A",
                sims.super_kubeconfig.display()
            );
            let super_client = client_from_kubeconfig(&sims.super_kubeconfig).await?;
            let mut tenant_clients = Vec::new();
            for (spec, _) in &sims.tenants {
                let client = client_from_kubeconfig(&spec.kubeconfig).await?;
                let pods = embedded::create_sample_workload(&client).await?;
                println!(
                    "  {}: {} namespaces, {pods} pods (kubeconfig {})",
                    spec.name,
                    embedded::SAMPLE_NAMESPACES.len(),
                    spec.kubeconfig.display()
                );
                tenant_clients.push(client);
            }
            let demo = EmbeddedDemo {
                super_client: super_client.clone(),
                tenant_clients,
            };
            let result = serve(
                &args,
                super_client,
                sims.specs(),
                sims.log_dir.clone(),
                &metrics,
                Some(demo),
            )
            .await;
            sims.shutdown().await;
            result
        }
    }
}

/// What the embedded default adds to the status line and keeps busy.
struct EmbeddedDemo {
    super_client: kube::Client,
    tenant_clients: Vec<kube::Client>,
}

async fn serve(
    args: &Args,
    super_client: kube::Client,
    specs: Vec<TenantSpec>,
    log_dir: std::path::PathBuf,
    metrics: &PrometheusHandle,
    demo: Option<EmbeddedDemo>,
) -> Result<()> {
    let mut tenants = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut tenant = TenantConnection::connect(spec).await?;
        tenant.cluster_domain.clone_from(&args.cluster_domain);
        tenants.push(tenant);
    }
    // Configured tenants are known before the log replays, so their replayed work finds them.
    let registry = Tenants::new();
    for t in &tenants {
        registry.insert(
            TenantInfo {
                cluster_key: t.cluster_key.clone(),
                vc_name: t.spec.name.clone(),
                vc_namespace: t.spec.namespace.clone(),
                opaque_prefixes: Vec::new(),
                transparent_prefixes: Vec::new(),
                cluster_domain: t.cluster_domain.clone(),
            },
            t.client.clone(),
        );
    }
    let resources = syncer::reconcile::Resources::from_names(&args.resources)?
        .with_vn_agent_port(i32::from(args.vn_agent_port));
    let reconciler = Arc::new(
        SyncReconciler::new(
            super_client.clone(),
            registry.clone(),
            tokio::runtime::Handle::current(),
        )
        .with_resources(resources.clone()),
    );
    let mut pipeline_cfg = PipelineConfig::new(log_dir.clone());
    pipeline_cfg.shards = args.shards;
    pipeline_cfg.fairness = !args.no_fairness;
    if let Some(budget) = args.disk_budget {
        pipeline_cfg.disk_budget_bytes = budget;
    }
    pipeline_cfg.cache_capacity_bytes = args.cache_size;
    let grpc = grpc_options(args)?;
    let started = Instant::now();
    let patrol_tenants = reconciler.tenants().clone();
    let lifecycle_tenants = reconciler.tenants().clone();
    let mut syncer = Syncer::start(
        super_client.clone(),
        &tenants,
        registry,
        reconciler,
        SyncerOptions {
            pipeline: pipeline_cfg,
            sources: SourceConfig::default().kinds(resources.kinds()),
            grpc: grpc.as_ref().map(|(opts, _)| opts.clone()),
        },
    )
    .await?;
    if !args.patrol_interval.is_zero() {
        let patrol_cfg = syncer::patrol::PatrolConfig {
            interval: args.patrol_interval,
            super_list_every: args.patrol_super_list_every,
            ..syncer::patrol::PatrolConfig::default()
        };
        syncer.start_patrol(super_client, patrol_tenants, &resources, patrol_cfg);
    }
    let served = syncer.tenants().len().await;
    tracing::info!(
        tenants = served,
        metrics = %args.metrics_addr,
        "syncer started"
    );
    println!(
        "syncing {served} tenants; metrics on http://{}/metrics",
        args.metrics_addr
    );
    if let (Some(addr), Some((_, how))) = (syncer.grpc_addr(), &grpc) {
        println!("gRPC API (tenant registry, translation, health) on {addr}: {how}");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    // Virtual node leases and collection (stopped with `stop_tx`, or when dropped).
    let _node_lifecycle = syncer::upward::lifecycle::spawn(
        syncer::upward::lifecycle::LifecycleConfig {
            period: args.node_lease_period,
            gc_grace: args.node_gc_grace,
        },
        syncer.view(),
        lifecycle_tenants,
        stop_rx.clone(),
    );
    let churn = demo.as_ref().map(|d| {
        tokio::spawn(embedded::churn(
            d.tenant_clients.clone(),
            Duration::from_secs(2),
            stop_rx.clone(),
        ))
    });
    let show_status = args.status || demo.is_some();
    let mut lag = LagWindow::default();
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let reason = loop {
        tokio::select! {
            _ = ticker.tick() => {
                if show_status {
                    println!("{}", status_line(&syncer, metrics, &mut lag, demo.as_ref(), started).await);
                }
            }
            _ = tokio::signal::ctrl_c() => break "interrupt",
            _ = sigterm() => break "SIGTERM",
            _ = sleep_until(deadline) => break "--duration elapsed",
        }
    };
    println!("stopping ({reason}): flushing the log");
    let _ = stop_tx.send(true);
    if let Some(churn) = churn {
        let _ = churn.await;
    }
    syncer.shutdown().await;
    println!("stopped");
    Ok(())
}

async fn status_line(
    syncer: &Syncer,
    metrics: &PrometheusHandle,
    lag: &mut LagWindow,
    demo: Option<&EmbeddedDemo>,
    started: Instant,
) -> String {
    let s = syncer.status().await;
    let p99 = lag
        .p99_since_last(&metrics.render())
        .map_or_else(|| "-".to_string(), |v| format!("{:.0}ms", v * 1000.0));
    let mut line = format!(
        "[{:>4}s] VCs {}/{} up{} | backlog {} records | applied {} | pending keys {} | p99 lag {}",
        started.elapsed().as_secs(),
        s.tenants_up,
        s.tenants,
        if s.super_up { "" } else { " (super down)" },
        s.pipeline.backlog_records,
        s.pipeline.applied,
        s.pipeline.shard_pending_keys.iter().sum::<usize>(),
        p99,
    );
    if let Some(d) = demo {
        match embedded::pod_counts(&d.super_client, &d.tenant_clients).await {
            Ok(c) => line.push_str(&format!(
                " | pods: tenant {} / super {} / running in tenant {}",
                c.tenant_pods, c.super_pods, c.tenant_running
            )),
            Err(e) => line.push_str(&format!(" | pods: ({e})")),
        }
    }
    line
}

/// The gRPC API options from the flags, and a line saying how to connect. The default PKI is generated
/// once into `<data-dir>/grpc/` (the data directory given on the command line, also for the embedded default).
fn grpc_options(args: &Args) -> Result<Option<(GrpcOptions, String)>> {
    use tenancy_proto::{pki, tls};
    if args.no_grpc {
        return Ok(None);
    }
    if args.grpc_insecure {
        tracing::warn!("--grpc-insecure: the gRPC API accepts any client, in plain text");
        let opts = GrpcOptions {
            addr: args.grpc_addr,
            tls: None,
        };
        return Ok(Some((
            opts,
            "PLAIN TEXT, no client authentication (--grpc-insecure)".into(),
        )));
    }
    let (material, how) = match (
        &args.grpc_tls_cert,
        &args.grpc_tls_key,
        &args.grpc_client_ca,
    ) {
        (Some(cert), Some(key), Some(ca)) => (
            tls::TlsMaterial::from_files(ca, cert, key).context("gRPC TLS files")?,
            format!("mutual TLS, clients signed by {}", ca.display()),
        ),
        _ => {
            let dir = args.data_dir.join("grpc");
            let ip = args.grpc_addr.ip();
            let extra: Vec<String> = if ip.is_unspecified() {
                Vec::new()
            } else {
                vec![ip.to_string()]
            };
            let files = pki::PkiFiles::ensure(&dir, &pki::default_server_names(&extra))
                .with_context(|| format!("gRPC PKI in {}", dir.display()))?;
            (
                files.server_material().context("gRPC PKI")?,
                format!(
                    "mutual TLS; client certificate {} + {}, CA {}",
                    files.client_cert.display(),
                    files.client_key.display(),
                    files.ca_cert.display()
                ),
            )
        }
    };
    let opts = GrpcOptions {
        addr: args.grpc_addr,
        tls: Some(material),
    };
    Ok(Some((opts, how)))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn sigterm() {
    std::future::pending().await
}
