//! Configuration of the `syncer` binary: command-line flags, the tenant list (a directory of kubeconfigs or a
//! YAML file) and the small parsers for sizes and durations.
//!
//! Everything here is pure (no network): it turns what the operator wrote into [`TenantSpec`]s and numbers,
//! and says precisely which step failed when it cannot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Errors while reading the syncer's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The tenants directory could not be listed.
    #[error("failed to list tenants directory {path}")]
    ListTenantsDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The tenants YAML file could not be read.
    #[error("failed to read tenants config {path}")]
    ReadTenantsConfig {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The tenants YAML file is not a list of `{name, namespace, uid, kubeconfig}`.
    #[error("failed to parse tenants config {path}")]
    ParseTenantsConfig {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_yaml::Error,
    },
    /// A tenant kubeconfig could not be read or parsed.
    #[error("failed to read tenant kubeconfig {path}")]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Two tenants resolve to the same VC (same namespace and name).
    #[error("tenant {namespace}/{name} is listed twice")]
    DuplicateTenant {
        /// VC namespace.
        namespace: String,
        /// VC name.
        name: String,
    },
    /// A tenant entry has an empty or invalid field.
    #[error("tenant entry {index} is invalid: {reason}")]
    InvalidTenant {
        /// Position in the list (0-based) or in the directory listing.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Command-line flags of the `syncer` binary.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "syncer",
    about = "Syncs tenant (virtual) clusters with one super cluster: Namespaces, Pods, Services, \
             Endpoints, ConfigMaps, Secrets, ServiceAccounts and PVCs down (tenant -> super, translated \
             names), statuses, node binding and ClusterIPs up (super -> tenant). Every watch event is \
             logged durably in sled before it is reconciled.",
    long_about = "Syncs tenant (virtual) clusters with one super cluster.\n\n\
                  Synced kinds (--resources): Namespace, Pod, Service, Endpoints, ConfigMap, Secret, \
                  ServiceAccount, PersistentVolumeClaim by default; Ingress, NetworkPolicy and \
                  PodDisruptionBudget on request.\n\n\
                  Tenants come from --tenants-dir or --tenants-config (fixed for the run) and from the \
                  gRPC TenantRegistry (Register/Unregister at run time, durable in the data directory). \
                  The gRPC API (tenancy.sync.v1: tenant registry, translation, health) listens on \
                  --grpc-addr with mutual TLS: without --grpc-tls-cert/--grpc-tls-key/--grpc-client-ca a CA, \
                  a server certificate and one client certificate per role are generated once into \
                  <data-dir>/grpc/ (clients use ca.pem and client.pem/client-key.pem for role admin, \
                  vc-manager.pem, vn-agent.pem or viewer.pem with their -key.pem; each role may call only \
                  its methods). --grpc-insecure serves plain text \
                  without client authentication (explicit opt-in, local experiments only).\n\n\
                  Without --super-kubeconfig the syncer runs its embedded default: it starts in-process \
                  simulated API servers (one super cluster with a simulated kubelet, N tenants), creates \
                  sample workloads in the tenants and syncs them live, printing a status line every second. \
                  The simulated clusters' kubeconfigs are written to <data-dir>/kubeconfigs/."
)]
pub struct Args {
    /// Kubeconfig of the super cluster. Without it, the embedded default runs (simulated clusters).
    #[arg(long, value_name = "PATH")]
    pub super_kubeconfig: Option<PathBuf>,
    /// Directory of tenant kubeconfigs, one file per VC: the file stem is the VC name, the VC namespace is
    /// the kubeconfig's context namespace or `default`, the VC uid is derived from the VC namespace and name.
    #[arg(long, value_name = "DIR", conflicts_with = "tenants_config")]
    pub tenants_dir: Option<PathBuf>,
    /// YAML list of tenants: `- {name, namespace, uid, kubeconfig}` (kubeconfig paths relative to the file).
    #[arg(long, value_name = "FILE")]
    pub tenants_config: Option<PathBuf>,
    /// Data directory (the durable log, tenant registrations, the generated gRPC PKI in `grpc/`). Created
    /// if missing. The embedded default keeps its log in
    /// `<data-dir>/embedded-log/` and wipes it at start (its simulated clusters do not outlive the process).
    #[arg(long, value_name = "DIR", default_value = "syncer-data")]
    pub data_dir: PathBuf,
    /// Number of reconcile shards (OS threads).
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Unapplied log backlog at which watches stop being read (backpressure), e.g. `512Mi`, `1G`, `100000`.
    /// Default: the pipeline's (1 GiB).
    #[arg(long, value_parser = parse_bytes)]
    pub disk_budget: Option<u64>,
    /// Memory the log's storage engine (sled) may use as its page cache, e.g. `16Mi`, `64Mi`. Larger keeps
    /// more of the view in memory; on the 10,000-pod sync benchmark 16 MiB synced as fast as 64 MiB with
    /// about 30 MiB less peak RSS.
    #[arg(long, value_parser = parse_bytes, default_value = "16Mi")]
    pub cache_size: u64,
    /// Serve tenants in plain FIFO order instead of weighted fair (deficit round robin) order.
    #[arg(long)]
    pub no_fairness: bool,
    /// Time between patrol passes (each jittered by up to ±10 %): the patroller walks the view for tenant
    /// objects without a super copy, super copies without a tenant object and pairs that differ, and
    /// enqueues each for the reconciler. `0s` turns the patroller off.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub patrol_interval: Duration,
    /// Every how many patrol passes the super cluster is also LISTed (label `tenancy.x-k8s.io/controlled`,
    /// from the API server's cache) to catch changes the super watch missed; 0 = never.
    #[arg(long, default_value_t = 5)]
    pub patrol_super_list_every: u32,
    /// Embedded default only: number of simulated tenant clusters.
    #[arg(long, default_value_t = 3)]
    pub embedded_tenants: usize,
    /// Stop after this long (e.g. `30s`, `5m`); default: run until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print a status line every second (always on in the embedded default).
    #[arg(long)]
    pub status: bool,
    /// Synced resources (kinds), comma-separated, case-insensitive: `default` = every default kind
    /// (Namespace, Pod, Service, Endpoints, ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim),
    /// `all` = every kind; opt-in kinds: Ingress, NetworkPolicy, PodDisruptionBudget. Example:
    /// `--resources default,Ingress`. Namespace is needed by every namespaced kind.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub resources: Vec<String>,
    /// Address of the gRPC API (tenant registry, translation, health); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9465")]
    pub grpc_addr: SocketAddr,
    /// Do not serve the gRPC API (tenants then come only from the configuration).
    #[arg(long, conflicts_with_all = ["grpc_insecure", "grpc_tls_cert"])]
    pub no_grpc: bool,
    /// Serve the gRPC API in plain text WITHOUT client authentication: anyone who reaches --grpc-addr can
    /// register and unregister tenants. Explicit opt-in for local experiments; never in production.
    #[arg(long, conflicts_with = "grpc_tls_cert")]
    pub grpc_insecure: bool,
    /// PEM server certificate of the gRPC API (with --grpc-tls-key and --grpc-client-ca). Default: the
    /// certificate generated in <data-dir>/grpc/.
    #[arg(long, value_name = "PEM", requires_all = ["grpc_tls_key", "grpc_client_ca"])]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of --grpc-tls-cert.
    #[arg(long, value_name = "PEM", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates must be signed by (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "grpc_tls_cert")]
    pub grpc_client_ca: Option<PathBuf>,
    /// A tenant's virtual node is deleted this long after the tenant's last pod on that node went.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub node_gc_grace: Duration,
    /// Period of virtual node lease renewal (and of the collection check).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub node_lease_period: Duration,
    /// DNS domain (a VirtualCluster's `spec.clusterDomain`) of the tenants from --tenants-dir or
    /// --tenants-config: their pods' DNS search paths end in it. Registered tenants carry their own.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local", value_parser = parse_cluster_domain)]
    pub cluster_domain: String,
    /// Kubelet port that virtual nodes advertise to their tenant: the vn-agent's port on every super node.
    #[arg(long, default_value_t = 10550, value_parser = clap::value_parser!(u16).range(1..))]
    pub vn_agent_port: u16,
}

/// One tenant (virtual cluster) the syncer serves.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TenantSpec {
    /// VC name.
    pub name: String,
    /// Namespace of the VC object in the super cluster.
    pub namespace: String,
    /// UID of the VC object (input of the cluster key).
    pub uid: String,
    /// Kubeconfig of the tenant's API server.
    pub kubeconfig: PathBuf,
}

/// Reads a directory of tenant kubeconfigs (`*.yaml`, `*.yml`, `*.kubeconfig` or no extension; hidden files
/// skipped), one tenant per file, sorted by file name.
///
/// The VC name is the file stem, the VC namespace the current context's namespace (else `default`), and the
/// uid [`derived_uid`] of both: stable across restarts and independent of credential rotation.
pub fn load_tenants_dir(dir: &Path) -> Result<Vec<TenantSpec>, ConfigError> {
    let list_err = |source| ConfigError::ListTenantsDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let path = entry.map_err(list_err)?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        let ext_ok = matches!(
            path.extension().and_then(|e| e.to_str()),
            None | Some("yaml" | "yml" | "kubeconfig" | "conf")
        );
        if path.is_file() && !hidden && ext_ok {
            paths.push(path);
        }
    }
    paths.sort();
    let mut tenants = Vec::with_capacity(paths.len());
    for (index, path) in paths.into_iter().enumerate() {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).map_err(|source| {
            ConfigError::ReadKubeconfig {
                path: path.clone(),
                source,
            }
        })?;
        let namespace = context_namespace(&kubeconfig).unwrap_or_else(|| "default".to_string());
        let uid = derived_uid(&namespace, &name);
        let spec = TenantSpec {
            name,
            namespace,
            uid,
            kubeconfig: path,
        };
        validate(index, &spec)?;
        tenants.push(spec);
    }
    check_unique(&tenants)?;
    Ok(tenants)
}

/// Reads a YAML list of tenants. Relative kubeconfig paths are resolved against the file's directory.
pub fn load_tenants_config(file: &Path) -> Result<Vec<TenantSpec>, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::ReadTenantsConfig {
        path: file.to_path_buf(),
        source,
    })?;
    let mut tenants: Vec<TenantSpec> =
        serde_yaml::from_str(&text).map_err(|source| ConfigError::ParseTenantsConfig {
            path: file.to_path_buf(),
            source,
        })?;
    let base = file.parent().unwrap_or(Path::new("."));
    for (index, spec) in tenants.iter_mut().enumerate() {
        if spec.kubeconfig.is_relative() {
            spec.kubeconfig = base.join(&spec.kubeconfig);
        }
        validate(index, spec)?;
    }
    check_unique(&tenants)?;
    Ok(tenants)
}

/// A stable, uuid-shaped uid for a VC known only by namespace and name (a tenants directory has no uid).
pub fn derived_uid(namespace: &str, name: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("vc-uid\0{namespace}\0{name}")));
    format!(
        "{}-{}-{}-{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    )
}

fn context_namespace(kubeconfig: &kube::config::Kubeconfig) -> Option<String> {
    let current = kubeconfig.current_context.as_deref()?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
        .filter(|ns| !ns.is_empty())
}

fn validate(index: usize, spec: &TenantSpec) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidTenant {
        index,
        reason: reason.to_string(),
    };
    if !is_dns_label(&spec.name) {
        return Err(invalid(&format!(
            "name {:?} is not a DNS-1123 label",
            spec.name
        )));
    }
    if !is_dns_label(&spec.namespace) {
        return Err(invalid(&format!(
            "namespace {:?} is not a DNS-1123 label",
            spec.namespace
        )));
    }
    if spec.uid.trim().is_empty() {
        return Err(invalid("uid is empty"));
    }
    Ok(())
}

fn check_unique(tenants: &[TenantSpec]) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for t in tenants {
        if !seen.insert((t.namespace.as_str(), t.name.as_str())) {
            return Err(ConfigError::DuplicateTenant {
                namespace: t.namespace.clone(),
                name: t.name.clone(),
            });
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses a byte size: a plain number, or a number with a suffix `K`/`M`/`G`/`T` (powers of 1000, optional
/// trailing `B`) or `Ki`/`Mi`/`Gi`/`Ti` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512Mi, 2G, 1000000)"))?;
    let mult: u64 = match suffix.trim() {
        "" | "B" => 1,
        "K" | "KB" | "k" | "kB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        other => return Err(format!("unknown size suffix {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: a number with a unit `ms`, `s`, `m` or `h` (e.g. `500ms`, `30s`, `5m`); a bare
/// number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 5m, 500ms)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    Ok(d)
}

/// Parses a cluster domain (`--cluster-domain`): a DNS-1123 subdomain such as `cluster.local`.
pub fn parse_cluster_domain(s: &str) -> Result<String, String> {
    let s = s.trim();
    if crate::control::spec::is_cluster_domain(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a DNS subdomain (e.g. cluster.local)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_domain_and_vn_agent_port_flags() {
        use clap::Parser;
        let args = Args::try_parse_from(["syncer"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.cluster_domain, "cluster.local");
        assert_eq!(args.vn_agent_port, 10550);
        let args = Args::try_parse_from([
            "syncer",
            "--cluster-domain",
            "tenant.example",
            "--vn-agent-port",
            "11250",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.cluster_domain, "tenant.example");
        assert_eq!(args.vn_agent_port, 11250);
        for bad in [
            &["syncer", "--cluster-domain", "Bad_Domain"][..],
            &["syncer", "--vn-agent-port", "0"][..],
            &["syncer", "--vn-agent-port", "70000"][..],
        ] {
            assert!(
                Args::try_parse_from(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn sizes_parse_with_decimal_and_binary_suffixes() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("2K"), Ok(2000));
        assert_eq!(parse_bytes("512Mi"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("3Gi"), Ok(3 << 30));
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("Mi").is_err());
        assert!(parse_bytes("99999999999999T").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn derived_uid_is_stable_and_distinct() {
        let a = derived_uid("default", "vc1");
        assert_eq!(a, derived_uid("default", "vc1"));
        assert_ne!(a, derived_uid("default", "vc2"));
        assert_ne!(a, derived_uid("vc1", "default"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

    const KUBECONFIG_NS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u
  user: {}
contexts:
- name: ctx
  context: {cluster: c, user: u, namespace: team-a}
current-context: ctx
"#;

    const KUBECONFIG_PLAIN: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u
  user: {}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
"#;

    #[test]
    fn tenants_dir_takes_name_from_stem_and_namespace_from_context() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("vc-b.yaml"), KUBECONFIG_NS)?;
        std::fs::write(dir.path().join("vc-a.kubeconfig"), KUBECONFIG_PLAIN)?;
        std::fs::write(dir.path().join(".hidden.yaml"), "garbage")?;
        std::fs::write(dir.path().join("notes.txt"), "not a kubeconfig")?;
        let tenants = load_tenants_dir(dir.path())?;
        let names: Vec<_> = tenants
            .iter()
            .map(|t| (t.name.as_str(), t.namespace.as_str()))
            .collect();
        assert_eq!(names, vec![("vc-a", "default"), ("vc-b", "team-a")]);
        assert_eq!(tenants[1].uid, derived_uid("team-a", "vc-b"));
        Ok(())
    }

    #[test]
    fn tenants_dir_rejects_a_bad_kubeconfig_and_a_bad_name() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("vc.yaml"), "clusters: [[[")?;
        assert!(matches!(
            load_tenants_dir(dir.path()),
            Err(ConfigError::ReadKubeconfig { .. })
        ));
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("Bad_Name.yaml"), KUBECONFIG_PLAIN)?;
        assert!(matches!(
            load_tenants_dir(dir.path()),
            Err(ConfigError::InvalidTenant { .. })
        ));
        Ok(())
    }

    #[test]
    fn tenants_config_resolves_relative_paths_and_rejects_duplicates() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tenants.yaml");
        std::fs::write(
            &file,
            "- {name: vc1, namespace: ns1, uid: u-1, kubeconfig: kc/vc1.yaml}\n\
             - {name: vc2, namespace: ns1, uid: u-2, kubeconfig: /abs/vc2.yaml}\n",
        )?;
        let tenants = load_tenants_config(&file)?;
        assert_eq!(tenants[0].kubeconfig, dir.path().join("kc/vc1.yaml"));
        assert_eq!(tenants[1].kubeconfig, PathBuf::from("/abs/vc2.yaml"));
        assert_eq!(tenants[1].uid, "u-2");

        std::fs::write(
            &file,
            "- {name: vc1, namespace: ns1, uid: a, kubeconfig: a.yaml}\n\
             - {name: vc1, namespace: ns1, uid: b, kubeconfig: b.yaml}\n",
        )?;
        assert!(matches!(
            load_tenants_config(&file),
            Err(ConfigError::DuplicateTenant { .. })
        ));
        std::fs::write(&file, "{not: a list}")?;
        assert!(matches!(
            load_tenants_config(&file),
            Err(ConfigError::ParseTenantsConfig { .. })
        ));
        Ok(())
    }
}
