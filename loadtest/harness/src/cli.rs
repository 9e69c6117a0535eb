//! Command-line interface: global flags (target, syncer, output, seed) and one subcommand per scenario.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use syncer::config::parse_duration;

/// Load tests for the syncer, measured end to end from outside it.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "loadtest",
    about = "Load tests for the syncer: burst, churn, noisy-neighbor, restart and baseline scenarios.",
    long_about = "Load tests for the syncer, measured end to end from outside it.\n\n\
        Every scenario writes tenant pods, watches the super cluster for their copies (down lag: tenant \
        create returned -> super copy seen by a watch) and the tenants for the status coming back (up lag: \
        super pod seen Running -> tenant pod seen Running), and runs the same pods directly against the \
        super cluster (the baseline) so the syncer's figures are quoted as a ratio to the direct path \
        measured in the same run. Results go to an output folder: result.json, summary.md, PNG plots and \
        the syncer's log.\n\n\
        Targets: `--target embedded` (default) starts simulated super and tenant API servers in this \
        process and the syncer as a child process; `--target kubeconfig=PATH` uses a real super cluster \
        (tenants: simulated by this process, or existing kubeconfigs with --tenant-kubeconfigs)."
)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options shared by every scenario.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// `embedded` (simulated super + tenants in this process) or `kubeconfig=PATH` (a real super cluster).
    #[arg(long, global = true, default_value = "embedded", value_parser = parse_target)]
    pub target: Target,
    /// With `--target kubeconfig=`: a directory of existing tenant kubeconfigs (one per VC, the syncer's
    /// `--tenants-dir` format). Default: the harness starts simulated tenant API servers.
    #[arg(long, global = true, value_name = "DIR")]
    pub tenant_kubeconfigs: Option<PathBuf>,
    /// The `syncer` executable. Default: next to this binary, else on PATH.
    #[arg(long, global = true, value_name = "PATH")]
    pub syncer_bin: Option<PathBuf>,
    /// Extra flag for the syncer child (repeatable), e.g. `--syncer-arg=--cache-size=64Mi`.
    #[arg(
        long = "syncer-arg",
        global = true,
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub syncer_args: Vec<String>,
    /// `--shards` of the syncer child (default: the syncer's).
    #[arg(long, global = true)]
    pub shards: Option<usize>,
    /// Who writes pod status on the super cluster: `cluster` (the super cluster's kubelet; on the embedded
    /// target the simulator's scheduler + kubelet), `harness` (this process marks every super copy
    /// Running), `none` (measure the down direction only). Default: `cluster`.
    #[arg(long, global = true, value_enum, default_value_t = StatusWriter::Cluster)]
    pub status_writer: StatusWriter,
    /// Simulated nodes of the embedded super cluster's kubelet.
    #[arg(long, global = true, default_value_t = 10)]
    pub nodes: usize,
    /// Output folder. Default: `loadtest-results/<scenario>-<UTC time>`.
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of names, ordering and jitter: the same seed writes the same objects in the same order.
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
    /// Run id: label `loadtest.x-k8s.io/run` and namespace prefix. Default: `s<seed>`. Use a new one for
    /// each run against a real cluster.
    #[arg(long, global = true)]
    pub run_id: Option<String>,
    /// Requests in flight while creating.
    #[arg(long, global = true, default_value_t = 64)]
    pub concurrency: usize,
    /// The whole run stops after this long; outputs then say it was interrupted.
    #[arg(long, global = true, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long to wait for everything to be synced after the writes (per phase).
    #[arg(long, global = true, default_value = "10m", value_parser = parse_duration)]
    pub settle_timeout: Duration,
    /// Skip the baseline (direct-to-super) phase of burst/churn.
    #[arg(long, global = true)]
    pub no_baseline: bool,
    /// With `--target kubeconfig=`: leave the namespaces the run created (default: delete them at the end).
    #[arg(long, global = true)]
    pub keep: bool,
    /// Hide the live progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// Where the run happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Simulated API servers in this process.
    Embedded,
    /// A real super cluster.
    Kubeconfig(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Embedded => write!(f, "embedded"),
            Target::Kubeconfig(p) => write!(f, "kubeconfig={}", p.display()),
        }
    }
}

fn parse_target(s: &str) -> Result<Target, String> {
    match s.split_once('=') {
        None if s == "embedded" => Ok(Target::Embedded),
        Some(("kubeconfig", p)) if !p.is_empty() => Ok(Target::Kubeconfig(PathBuf::from(p))),
        _ => Err(format!("{s:?}: expected `embedded` or `kubeconfig=<path>`")),
    }
}

/// Who writes pod status on the super cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusWriter {
    /// The super cluster's own kubelet (simulated on the embedded target).
    Cluster,
    /// The harness marks each super copy Running.
    Harness,
    /// Nobody: the up direction is not measured.
    None,
}

/// The scenarios.
#[derive(Clone, Debug, Subcommand)]
pub enum Scenario {
    /// N VCs x M namespaces x K pods created as fast as allowed: time to all synced, pods/s down and up,
    /// lag percentiles both ways, syncer CPU and memory, and the same pods written directly to the super
    /// cluster (baseline) for the ratios.
    Burst(Shape),
    /// A steady create/update/delete rate for a duration: lag percentiles over time, baseline included.
    Churn(ChurnArgs),
    /// G greedy tenants burst while L light tenants create pods one at a time: the light tenants' latency
    /// with fairness, then with `--no-fairness`.
    NoisyNeighbor(NoisyArgs),
    /// SIGKILL the syncer mid-burst, write more while it is down, restart it: time to converge, and every
    /// tenant pod compared with its super copy (lost and duplicated must be zero).
    Restart(RestartArgs),
    /// Only the direct path: the same pods written straight to the super cluster.
    Baseline(Shape),
}

/// The shape of a burst.
#[derive(Clone, Debug, Args)]
pub struct Shape {
    /// Virtual clusters (tenants).
    #[arg(long, default_value_t = 3)]
    pub vcs: usize,
    /// Namespaces per VC.
    #[arg(long, default_value_t = 2)]
    pub namespaces: usize,
    /// Pods per namespace.
    #[arg(long, default_value_t = 5)]
    pub pods: usize,
    /// Creates per second across all tenants (0 = as fast as `--concurrency` allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// Churn options.
#[derive(Clone, Debug, Args)]
pub struct ChurnArgs {
    /// Virtual clusters.
    #[arg(long, default_value_t = 3)]
    pub vcs: usize,
    /// Namespaces per VC.
    #[arg(long, default_value_t = 2)]
    pub namespaces: usize,
    /// How long the churn runs (each phase: the baseline, then through the syncer).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Operations per second across all tenants (exponential inter-arrival times from the seed).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Shares of operations that create, update (relabel) and delete, `create:update:delete` (or with
    /// commas), e.g. `60:30:10`.
    #[arg(long, default_value = "60:30:10", value_parser = parse_mix)]
    pub mix: (u32, u32, u32),
    /// Window of the lag-over-time series.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub window: Duration,
    /// Live pods at most, across all tenants (a create beyond it becomes a delete). Default: 20 per
    /// namespace.
    #[arg(long)]
    pub max_pods: Option<usize>,
}

/// Parses `create:update:delete` shares (`:` or `,` between them).
pub fn parse_mix(s: &str) -> Result<(u32, u32, u32), String> {
    let v: Vec<u32> = s
        .split([',', ':'])
        .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [c, u, d] if c + u + d > 0 && *c > 0 => Ok((*c, *u, *d)),
        _ => Err("expected three shares create:update:delete with create > 0".into()),
    }
}

/// Noisy-neighbor options.
#[derive(Clone, Debug, Args)]
pub struct NoisyArgs {
    /// Greedy tenants.
    #[arg(long, default_value_t = 2)]
    pub greedy: usize,
    /// Light tenants.
    #[arg(long, default_value_t = 2)]
    pub light: usize,
    /// Pods each greedy tenant creates in its burst (as fast as `--concurrency` allows).
    #[arg(long, default_value_t = 500)]
    pub greedy_pods: usize,
    /// Pods each light tenant creates one at a time (each waits for the previous one's super copy).
    #[arg(long, default_value_t = 20)]
    pub light_pods: usize,
    /// Which runs: `on` (the syncer's fairness), `off` (`--no-fairness`) or `both` (on, then off on fresh
    /// clusters and a fresh data directory).
    #[arg(long, value_enum, default_value_t = Fairness::Both)]
    pub fairness: Fairness,
}

/// Which noisy-neighbor runs to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fairness {
    /// Only with fairness.
    On,
    /// Only with `--no-fairness`.
    Off,
    /// Both, fairness first.
    Both,
}

impl Fairness {
    /// The runs, as "fairness on?" flags, in order.
    pub fn runs(self) -> Vec<bool> {
        match self {
            Fairness::On => vec![true],
            Fairness::Off => vec![false],
            Fairness::Both => vec![true, false],
        }
    }
}

/// Restart options.
#[derive(Clone, Debug, Args)]
pub struct RestartArgs {
    /// The burst.
    #[command(flatten)]
    pub shape: Shape,
    /// Kill the syncer once this fraction of the burst has its super copies.
    #[arg(long, default_value_t = 0.5)]
    pub kill_at: f64,
    /// Pods created per VC while the syncer is down.
    #[arg(long, default_value_t = 2)]
    pub create_while_down: usize,
    /// Pods deleted per VC while the syncer is down.
    #[arg(long, default_value_t = 1)]
    pub delete_while_down: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_mix_parse() {
        assert_eq!(parse_target("embedded"), Ok(Target::Embedded));
        assert_eq!(
            parse_target("kubeconfig=/tmp/k"),
            Ok(Target::Kubeconfig(PathBuf::from("/tmp/k")))
        );
        assert!(parse_target("kubeconfig=").is_err());
        assert!(parse_target("kind").is_err());
        assert_eq!(parse_mix("60,30,10"), Ok((60, 30, 10)));
        assert_eq!(parse_mix("5:3:2"), Ok((5, 3, 2)));
        assert!(parse_mix("0,50,50").is_err());
        assert!(parse_mix("1,2").is_err());
        assert_eq!(Fairness::Both.runs(), vec![true, false]);
        assert_eq!(Fairness::Off.runs(), vec![false]);
    }

    #[test]
    fn cli_parses_global_flags_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "loadtest",
            "burst",
            "--vcs",
            "4",
            "--seed",
            "9",
            "--target",
            "kubeconfig=/k",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.global.seed, 9);
        assert_eq!(cli.global.target, Target::Kubeconfig(PathBuf::from("/k")));
        match cli.scenario {
            Scenario::Burst(s) => assert_eq!((s.vcs, s.namespaces, s.pods), (4, 2, 5)),
            other => panic!("{other:?}"),
        }
    }
}
