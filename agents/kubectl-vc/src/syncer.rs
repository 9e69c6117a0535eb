//! The syncer's view of the VirtualClusters (`TenantRegistry.List`): sync phase, objects in sync, backlog,
//! lag. Optional: without `--syncer-addr`, or when the syncer cannot be reached, the columns show `-` and
//! one warning goes to stderr; the command's exit code does not change.
//!
//! TLS follows vc-manager's `--syncer-*` conventions: `--syncer-tls-dir` is the syncer's
//! `<data-dir>/grpc/` (this plugin presents the read-only `viewer` certificate `viewer.pem` +
//! `viewer-key.pem`), or explicit `--syncer-ca/--syncer-cert/--syncer-key` files.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tenancy_proto::pki::PkiFiles;
use tenancy_proto::roles::Role;
use tenancy_proto::tls::{self, TlsMaterial};
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use tenancy_proto::v1::{self, TenantPhase, TenantStatus};

/// How long one call to the syncer may take (connecting included).
const SYNCER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the syncer's gRPC API is and how to authenticate to it.
#[derive(Debug, Args)]
pub struct SyncerArgs {
    /// Address (`host:port`) of the syncer's gRPC API, for the objects/lag columns of `list` and the
    /// syncer section of `describe`.
    #[arg(long, global = true, env = "KUBECTL_VC_SYNCER_ADDR")]
    pub syncer_addr: Option<String>,
    /// The syncer's TLS directory (`<its data-dir>/grpc/`): `ca.pem` and the read-only `viewer.pem` +
    /// `viewer-key.pem`.
    #[arg(long, global = true, env = "KUBECTL_VC_SYNCER_TLS_DIR")]
    pub syncer_tls_dir: Option<PathBuf>,
    /// CA certificate (PEM) of the syncer's server certificate (overrides --syncer-tls-dir).
    #[arg(long, global = true, env = "KUBECTL_VC_SYNCER_CA")]
    pub syncer_ca: Option<PathBuf>,
    /// Client certificate (PEM) presented to the syncer (role `viewer`, `vc-manager` or `admin`).
    #[arg(long, global = true, env = "KUBECTL_VC_SYNCER_CERT")]
    pub syncer_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, global = true, env = "KUBECTL_VC_SYNCER_KEY")]
    pub syncer_key: Option<PathBuf>,
    /// Name the syncer's server certificate is checked against.
    #[arg(
        long,
        global = true,
        env = "KUBECTL_VC_SYNCER_SERVER_NAME",
        default_value = tls::DEFAULT_SERVER_NAME
    )]
    pub syncer_server_name: String,
    /// Talk to the syncer in plain text (only for a syncer started with --grpc-insecure).
    #[arg(long, global = true)]
    pub syncer_insecure: bool,
}

/// What the syncer said about the tenants.
#[derive(Debug)]
pub enum SyncerView {
    /// The syncer answered: its tenants by VirtualCluster namespace and name.
    Listed(HashMap<(String, String), TenantStatus>),
    /// No syncer configured, or it could not be asked; the reason (printed once as a warning).
    Unavailable(String),
}

impl SyncerView {
    /// The syncer's status of VirtualCluster `namespace/name` with `uid` (another uid is another VC of
    /// the same name and does not count).
    pub fn get(&self, namespace: &str, name: &str, uid: &str) -> Option<&TenantStatus> {
        match self {
            SyncerView::Listed(map) => map
                .get(&(namespace.to_string(), name.to_string()))
                .filter(|t| t.vc.as_ref().is_some_and(|vc| vc.uid == uid)),
            SyncerView::Unavailable(_) => None,
        }
    }

    /// Prints the warning of an unavailable view (once per call of the command).
    pub fn warn(&self) {
        if let SyncerView::Unavailable(reason) = self {
            eprintln!("warning: {reason}; the syncer columns show -");
        }
    }
}

fn material(args: &SyncerArgs) -> Result<Option<TlsMaterial>, String> {
    if args.syncer_insecure {
        return Ok(None);
    }
    if let (Some(ca), Some(cert), Some(key)) =
        (&args.syncer_ca, &args.syncer_cert, &args.syncer_key)
    {
        return TlsMaterial::from_files(ca, cert, key)
            .map(Some)
            .map_err(|e| format!("syncer TLS files: {}", error_chain(e)));
    }
    if let Some(dir) = &args.syncer_tls_dir {
        return PkiFiles::in_dir(dir)
            .role_material(Role::Viewer)
            .map(Some)
            .map_err(|e| format!("syncer TLS directory: {}", error_chain(e)));
    }
    Err("--syncer-addr needs --syncer-tls-dir, --syncer-ca/--syncer-cert/--syncer-key or --syncer-insecure".into())
}

/// The error with its causes, `a: b: c`.
fn error_chain(e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::new(e))
}

async fn list(
    addr: &str,
    material: Option<&TlsMaterial>,
    server_name: &str,
) -> Result<Vec<TenantStatus>, String> {
    let endpoint = tls::endpoint(addr, material.map(|m| m.client_config(server_name)))
        .map_err(error_chain)?
        .connect_timeout(SYNCER_TIMEOUT)
        .timeout(SYNCER_TIMEOUT);
    let channel = tokio::time::timeout(SYNCER_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| format!("no answer within {SYNCER_TIMEOUT:?}"))?
        .map_err(error_chain)?;
    let response = TenantRegistryClient::new(channel)
        .list(v1::ListRequest {})
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(response.into_inner().tenants)
}

/// Asks the syncer for every tenant's status (bounded by a 5 s timeout); never fails.
pub async fn fetch(args: &SyncerArgs) -> SyncerView {
    let Some(addr) = &args.syncer_addr else {
        return SyncerView::Unavailable(
            "no syncer configured (--syncer-addr or KUBECTL_VC_SYNCER_ADDR)".into(),
        );
    };
    let material = match material(args) {
        Ok(m) => m,
        Err(reason) => return SyncerView::Unavailable(reason),
    };
    match list(addr, material.as_ref(), &args.syncer_server_name).await {
        Ok(tenants) => SyncerView::Listed(
            tenants
                .into_iter()
                .filter_map(|t| {
                    let vc = t.vc.clone()?;
                    Some(((vc.namespace, vc.name), t))
                })
                .collect(),
        ),
        Err(reason) => {
            SyncerView::Unavailable(format!("the syncer at {addr} did not answer: {reason}"))
        }
    }
}

/// The sync phase as a word (`Syncing`, `Connecting`, `Degraded`, `Removing`).
pub fn phase(t: &TenantStatus) -> &'static str {
    match TenantPhase::try_from(t.phase).unwrap_or(TenantPhase::Unspecified) {
        TenantPhase::Connecting => "Connecting",
        TenantPhase::Syncing => "Syncing",
        TenantPhase::Degraded => "Degraded",
        TenantPhase::Removing => "Removing",
        TenantPhase::Unspecified => "Unknown",
    }
}

/// Lag p50/p99 as whole milliseconds: `12ms/340ms`.
pub fn lag(t: &TenantStatus) -> String {
    format!("{:.0}ms/{:.0}ms", t.lag_p50_ms, t.lag_p99_ms)
}
