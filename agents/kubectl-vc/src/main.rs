//! `kubectl-vc`: the kubectl plugin for VirtualClusters (`kubectl vc <command>`).
//!
//! Exit codes (stable, for scripts):
//! - 0: success
//! - 1: usage error, or any other failure (API unreachable, file not writable)
//! - 2: the VirtualCluster does not exist
//! - 3: the VirtualCluster ended in phase Error (reason and message on stderr)
//! - 4: timed out waiting
//! - 5: the VirtualCluster is not Running yet (no kubeconfig to hand out)
//! - 6: the VirtualCluster already exists (`create`)
//!
//! Errors go to stderr as one line `error: <text>`; results to stdout.
//!
//! `list` and `describe` also show the syncer's view (sync phase, objects in sync, backlog, lag) when
//! `--syncer-addr` (or `KUBECTL_VC_SYNCER_ADDR`) is given; without it, or when the syncer cannot be
//! reached within 5 s, those fields show `-`, one `warning: ...` line goes to stderr and the exit code
//! stays what it would have been.

mod syncer;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use vc_api::secrets as names;
use vc_api::{Phase, VirtualCluster};

/// Exit code: usage error or other failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code: not found.
const EXIT_NOT_FOUND: u8 = 2;
/// Exit code: the VirtualCluster is in phase Error.
const EXIT_VC_ERROR: u8 = 3;
/// Exit code: timed out.
const EXIT_TIMEOUT: u8 = 4;
/// Exit code: not Running yet.
const EXIT_NOT_READY: u8 = 5;
/// Exit code: already exists.
const EXIT_EXISTS: u8 = 6;

/// Manage VirtualClusters: create one and get its kubeconfig, list, describe, delete.
///
/// Exit codes: 0 ok, 1 usage or other failure, 2 not found, 3 the VirtualCluster is in phase Error,
/// 4 timeout, 5 not Running yet, 6 already exists.
#[derive(Debug, Parser)]
#[command(name = "kubectl-vc", version)]
struct Cli {
    /// Kubeconfig of the super cluster (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the VirtualCluster.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    syncer: syncer::SyncerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a VirtualCluster from a YAML file, wait until it is Running, write its kubeconfig.
    Create {
        /// The VirtualCluster manifest.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Where to write the tenant kubeconfig.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// How long to wait for Running, e.g. 300s, 5m.
        #[arg(long, default_value = "300s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Delete a VirtualCluster and wait until it is gone.
    Delete {
        /// Its name.
        name: String,
        /// Return at once instead of waiting.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait.
        #[arg(long, default_value = "300s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List VirtualClusters: namespace, name, phase, age, and from the syncer its sync phase, objects in
    /// sync, backlog and lag p50/p99; root namespace.
    List {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Print (or write) the kubeconfig of a Running VirtualCluster.
    Kubeconfig {
        /// Its name.
        name: String,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Show a VirtualCluster's spec, phase, reason, conditions and the syncer's view of it.
    Describe {
        /// Its name.
        name: String,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (e.g. 90s, 5m)"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit in {text:?} (s, m or h)")),
    }
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        Failure::new(EXIT_FAILURE, format!("API request failed: {e}"))
    }
}

type CliResult<T> = std::result::Result<T, Failure>;

async fn client(kubeconfig: Option<&Path>) -> CliResult<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Failure::new(EXIT_FAILURE, format!("read {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Failure::new(EXIT_FAILURE, format!("kubeconfig: {e}")))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("no cluster configuration: {e}")))?,
    };
    kube::Client::try_from(config).map_err(Failure::from)
}

fn vc_ref(ns: &str, name: &str) -> String {
    format!("virtualcluster {ns}/{name}")
}

async fn get(api: &Api<VirtualCluster>, ns: &str, name: &str) -> CliResult<VirtualCluster> {
    api.get_opt(name)
        .await?
        .ok_or_else(|| Failure::new(EXIT_NOT_FOUND, format!("{} not found", vc_ref(ns, name))))
}

fn phase_of(vc: &VirtualCluster) -> Option<Phase> {
    vc.status.as_ref().and_then(|s| s.phase)
}

/// The admin kubeconfig of a Running VirtualCluster.
async fn kubeconfig_of(client: &kube::Client, vc: &VirtualCluster) -> CliResult<String> {
    let ns = vc.namespace().unwrap_or_default();
    let not_ready = || {
        Failure::new(
            EXIT_NOT_READY,
            format!(
                "{} is not Running (phase {})",
                vc_ref(&ns, &vc.name_any()),
                phase_of(vc).map_or("<none>".to_string(), |p| p.to_string())
            ),
        )
    };
    if phase_of(vc) != Some(Phase::Running) {
        return Err(not_ready());
    }
    let root = vc
        .status
        .as_ref()
        .and_then(|s| s.cluster_namespace.clone())
        .ok_or_else(not_ready)?;
    let secret = Api::<Secret>::namespaced(client.clone(), &root)
        .get_opt(names::ADMIN_KUBECONFIG)
        .await?
        .ok_or_else(not_ready)?;
    let bytes = secret
        .data
        .and_then(|d| d.get(names::ADMIN_KUBECONFIG_KEY).map(|b| b.0.clone()))
        .ok_or_else(not_ready)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::new(EXIT_FAILURE, "the kubeconfig Secret is not text"))?;
    if text.contains("insecure-skip-tls-verify") || !text.contains("certificate-authority-data") {
        return Err(Failure::new(
            EXIT_FAILURE,
            "the stored kubeconfig does not verify the tenant CA; refusing to hand it out",
        ));
    }
    Ok(text)
}

fn write_private(path: &Path, text: &str) -> CliResult<()> {
    let fail =
        |e: std::io::Error| Failure::new(EXIT_FAILURE, format!("write {}: {e}", path.display()));
    std::fs::write(path, text).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    Ok(())
}

fn progress(enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn create(cli: &Cli, file: &Path, output: Option<&Path>, timeout: Duration) -> CliResult<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("read {}: {e}", file.display())))?;
    let mut vc: VirtualCluster = serde_yaml::from_str(&text).map_err(|e| {
        Failure::new(
            EXIT_FAILURE,
            format!("{} is not a VirtualCluster: {e}", file.display()),
        )
    })?;
    let ns = vc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| cli.namespace.clone());
    vc.metadata.namespace = Some(ns.clone());
    let name = vc.name_any();
    let client = client(cli.kubeconfig.as_deref()).await?;
    let api: Api<VirtualCluster> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &vc).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(Failure::new(
                EXIT_EXISTS,
                format!("{} already exists", vc_ref(&ns, &name)),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    println!("{} created", vc_ref(&ns, &name));
    let bar = progress(std::io::stderr().is_terminal());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    let vc = loop {
        let vc = get(&api, &ns, &name).await?;
        let status = vc.status.clone().unwrap_or_default();
        let line = format!(
            "{}: {}",
            status
                .phase
                .map_or("Pending".to_string(), |p| p.to_string()),
            status.message.clone().unwrap_or_default()
        );
        if line != last {
            bar.set_message(line.clone());
            if bar.is_hidden() {
                eprintln!("{line}");
            }
            last = line;
        }
        match status.phase {
            Some(Phase::Running) => break vc,
            Some(Phase::Error) => {
                bar.finish_and_clear();
                return Err(Failure::new(
                    EXIT_VC_ERROR,
                    format!(
                        "{} failed: {}: {}",
                        vc_ref(&ns, &name),
                        status.reason.unwrap_or_default(),
                        status.message.unwrap_or_default()
                    ),
                ));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Err(Failure::new(
                EXIT_TIMEOUT,
                format!(
                    "timed out after {timeout:?} waiting for {} to be Running",
                    vc_ref(&ns, &name)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish_and_clear();
    let kubeconfig = kubeconfig_of(&client, &vc).await?;
    match output {
        Some(path) => {
            write_private(path, &kubeconfig)?;
            println!(
                "{} is Running; kubeconfig written to {}",
                vc_ref(&ns, &name),
                path.display()
            );
        }
        None => println!("{} is Running", vc_ref(&ns, &name)),
    }
    Ok(())
}

async fn delete(cli: &Cli, name: &str, no_wait: bool, timeout: Duration) -> CliResult<()> {
    let ns = &cli.namespace;
    let client = client(cli.kubeconfig.as_deref()).await?;
    let api: Api<VirtualCluster> = Api::namespaced(client, ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Failure::new(
                EXIT_NOT_FOUND,
                format!("{} not found", vc_ref(ns, name)),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if no_wait {
        println!("{} deletion requested", vc_ref(ns, name));
        return Ok(());
    }
    let bar = progress(std::io::stderr().is_terminal());
    bar.set_message(format!("waiting for {} to go", vc_ref(ns, name)));
    let deadline = tokio::time::Instant::now() + timeout;
    while api.get_opt(name).await?.is_some() {
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Err(Failure::new(
                EXIT_TIMEOUT,
                format!(
                    "timed out after {timeout:?} waiting for {} to be deleted",
                    vc_ref(ns, name)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bar.finish_and_clear();
    println!("{} deleted", vc_ref(ns, name));
    Ok(())
}

fn age(vc: &VirtualCluster) -> String {
    let Some(created) = vc.metadata.creation_timestamp.as_ref() else {
        return "-".into();
    };
    let created = created.0.as_second();
    let now = chrono::Utc::now().timestamp();
    let secs = (now - created).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

async fn list(cli: &Cli, all: bool) -> CliResult<()> {
    let client = client(cli.kubeconfig.as_deref()).await?;
    let api: Api<VirtualCluster> = if all {
        Api::all(client)
    } else {
        Api::namespaced(client, &cli.namespace)
    };
    let mut items = api.list(&ListParams::default()).await?.items;
    items.sort_by_key(|vc| (vc.namespace(), vc.name_any()));
    let view = if items.is_empty() {
        syncer::SyncerView::Listed(Default::default())
    } else {
        syncer::fetch(&cli.syncer).await
    };
    view.warn();
    println!(
        "{:<20} {:<28} {:<13} {:<6} {:<11} {:<8} {:<8} {:<16} CLUSTER-NAMESPACE",
        "NAMESPACE", "NAME", "PHASE", "AGE", "SYNCER", "OBJECTS", "BACKLOG", "LAG(P50/P99)"
    );
    for vc in &items {
        let status = vc.status.clone().unwrap_or_default();
        let ns = vc.namespace().unwrap_or_default();
        let tenant = view.get(&ns, &vc.name_any(), &vc.uid().unwrap_or_default());
        let dash = || "-".to_string();
        println!(
            "{:<20} {:<28} {:<13} {:<6} {:<11} {:<8} {:<8} {:<16} {}",
            ns,
            vc.name_any(),
            status
                .phase
                .map_or("Pending".to_string(), |p| p.to_string()),
            age(vc),
            tenant.map_or_else(dash, |t| syncer::phase(t).to_string()),
            tenant.map_or_else(dash, |t| t.objects_synced.to_string()),
            tenant.map_or_else(dash, |t| t.backlog.to_string()),
            tenant.map_or_else(dash, syncer::lag),
            status.cluster_namespace.unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

async fn show_kubeconfig(cli: &Cli, name: &str, output: Option<&Path>) -> CliResult<()> {
    let client = client(cli.kubeconfig.as_deref()).await?;
    let api: Api<VirtualCluster> = Api::namespaced(client.clone(), &cli.namespace);
    let vc = get(&api, &cli.namespace, name).await?;
    let text = kubeconfig_of(&client, &vc).await?;
    match output {
        Some(path) => {
            write_private(path, &text)?;
            println!("kubeconfig written to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn describe(cli: &Cli, name: &str) -> CliResult<()> {
    let client = client(cli.kubeconfig.as_deref()).await?;
    let api: Api<VirtualCluster> = Api::namespaced(client, &cli.namespace);
    let vc = get(&api, &cli.namespace, name).await?;
    let status = vc.status.clone().unwrap_or_default();
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("Name:              {}", vc.name_any());
    println!("Namespace:         {}", vc.namespace().unwrap_or_default());
    println!("ClusterVersion:    {}", vc.spec.cluster_version_name);
    println!(
        "ServiceCidr:       {}",
        or_dash(vc.spec.service_cidr.clone())
    );
    println!(
        "ClusterDomain:     {}",
        or_dash(vc.spec.cluster_domain.clone())
    );
    println!(
        "PkiExpireDays:     {}",
        vc.spec
            .pki_expire_days
            .unwrap_or(vc_api::DEFAULT_PKI_EXPIRE_DAYS)
    );
    println!(
        "Phase:             {}",
        status
            .phase
            .map_or("Pending".to_string(), |p| p.to_string())
    );
    println!("Reason:            {}", or_dash(status.reason.clone()));
    println!("Message:           {}", or_dash(status.message.clone()));
    println!(
        "ClusterNamespace:  {}",
        or_dash(status.cluster_namespace.clone())
    );
    println!("Age:               {}", age(&vc));
    let view = syncer::fetch(&cli.syncer).await;
    view.warn();
    match (
        &view,
        view.get(
            &vc.namespace().unwrap_or_default(),
            &vc.name_any(),
            &vc.uid().unwrap_or_default(),
        ),
    ) {
        (_, Some(t)) => {
            println!("Syncer:");
            println!("  Phase:           {}", syncer::phase(t));
            println!("  ClusterKey:      {}", t.cluster_key);
            println!("  ObjectsInSync:   {}", t.objects_synced);
            println!("  Backlog:         {}", t.backlog);
            println!(
                "  Lag p50/p99:     {:.0}ms / {:.0}ms",
                t.lag_p50_ms, t.lag_p99_ms
            );
            let message = if t.message.is_empty() {
                "-"
            } else {
                &t.message
            };
            println!("  Message:         {message}");
        }
        (syncer::SyncerView::Listed(_), None) => {
            println!("Syncer:            not registered");
        }
        (syncer::SyncerView::Unavailable(_), None) => println!("Syncer:            -"),
    }
    println!("Conditions:");
    println!("  {:<12} {:<7} {:<24} MESSAGE", "TYPE", "STATUS", "REASON");
    for c in &status.conditions {
        println!(
            "  {:<12} {:<7} {:<24} {}",
            c.type_, c.status, c.reason, c.message
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> CliResult<()> {
    match &cli.command {
        Command::Create {
            file,
            output,
            timeout,
        } => create(&cli, file, output.as_deref(), *timeout).await,
        Command::Delete {
            name,
            no_wait,
            timeout,
        } => delete(&cli, name, *no_wait, *timeout).await,
        Command::List { all_namespaces } => list(&cli, *all_namespaces).await,
        Command::Kubeconfig { name, output } => {
            show_kubeconfig(&cli, name, output.as_deref()).await
        }
        Command::Describe { name } => describe(&cli, name).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_FAILURE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
