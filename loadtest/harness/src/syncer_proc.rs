//! The syncer as a child process: started with the kubeconfigs the harness wrote, stopped with SIGTERM or
//! killed with SIGKILL, its CPU and memory read from `/proc`, its metrics scraped over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procfs;
use crate::stop::Stop;

/// How to start the syncer.
#[derive(Clone, Debug)]
pub struct SyncerLaunch {
    /// The `syncer` executable.
    pub bin: PathBuf,
    /// Super cluster kubeconfig.
    pub super_kubeconfig: PathBuf,
    /// Directory of tenant kubeconfigs (`--tenants-dir`).
    pub tenants_dir: PathBuf,
    /// Data directory (the durable log).
    pub data_dir: PathBuf,
    /// `--shards`, if set.
    pub shards: Option<usize>,
    /// Serve tenants FIFO (`--no-fairness`).
    pub no_fairness: bool,
    /// Extra flags, passed as they are.
    pub extra_args: Vec<String>,
    /// Where the child's stderr goes (a log file in the output folder).
    pub log_file: PathBuf,
}

/// Finds the `syncer` executable: `explicit`, else next to the running executable (or one folder up, for a
/// test binary in `target/<profile>/deps/`), else `syncer` on `PATH`.
pub fn find_syncer_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("--syncer-bin {} is not a file", p.display());
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        for candidate in [dir.join("syncer"), dir.join("../syncer")] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join("syncer");
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    bail!(
        "no syncer binary next to the loadtest binary or on PATH; build it (cargo build --release -p syncer) \
         or pass --syncer-bin"
    )
}

/// A running syncer child.
pub struct SyncerProcess {
    child: Child,
    /// `host:port` of its metrics endpoint.
    pub metrics_addr: String,
    /// `host:port` of its gRPC API (mutual TLS, PKI in `<data-dir>/grpc/`).
    pub grpc_addr: String,
    started: Instant,
}

impl SyncerProcess {
    /// Starts the syncer on a free loopback port for its metrics.
    pub fn start(launch: &SyncerLaunch) -> Result<Self> {
        let metrics_addr = format!("127.0.0.1:{}", free_port()?);
        // Its own gRPC port too: the syncer's default (127.0.0.1:9465) would collide between concurrent runs.
        let grpc_addr = format!("127.0.0.1:{}", free_port()?);
        std::fs::create_dir_all(&launch.data_dir)
            .with_context(|| format!("create {}", launch.data_dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log_file)
            .with_context(|| format!("open {}", launch.log_file.display()))?;
        let mut cmd = Command::new(&launch.bin);
        cmd.arg("--super-kubeconfig")
            .arg(&launch.super_kubeconfig)
            .arg("--tenants-dir")
            .arg(&launch.tenants_dir)
            .arg("--data-dir")
            .arg(&launch.data_dir)
            .args(["--metrics-addr", &metrics_addr])
            .args(["--grpc-addr", &grpc_addr]);
        if let Some(n) = launch.shards {
            cmd.args(["--shards", &n.to_string()]);
        }
        if launch.no_fairness {
            cmd.arg("--no-fairness");
        }
        cmd.args(&launch.extra_args);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {}", launch.bin.display()))?;
        Ok(Self {
            child,
            metrics_addr,
            grpc_addr,
            started: Instant::now(),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        Ok(procfs::cpu_seconds(self.pid())?)
    }

    /// Current resident memory in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        Ok(procfs::status_bytes(self.pid(), "VmRSS")?)
    }

    /// Peak resident memory in bytes (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        Ok(procfs::status_bytes(self.pid(), "VmHWM")?)
    }

    /// The Prometheus text of its `/metrics` endpoint.
    pub async fn scrape(&self) -> Result<String> {
        scrape(&self.metrics_addr).await
    }

    /// Waits (bounded by `limit` and `stop`) until `vc_syncer_tenant_up` sums to `tenants`; returns the time
    /// since the process was started.
    pub async fn wait_up(
        &mut self,
        tenants: usize,
        limit: Duration,
        stop: &Stop,
    ) -> Result<Duration> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("syncer exited during start-up: {status} (see its log)");
            }
            if let Ok(text) = self.scrape().await
                && crate::promtext::sum(&text, "vc_syncer_tenant_up").unwrap_or(0.0)
                    >= tenants as f64
            {
                return Ok(self.started.elapsed());
            }
            if !stop.sleep(Duration::from_millis(100)).await {
                bail!("stopped while waiting for the syncer to start");
            }
        }
        bail!(
            "syncer did not bring {tenants} tenants up within {} s",
            limit.as_secs()
        )
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill().context("SIGKILL syncer")?;
        self.child.wait().context("reap syncer")?;
        Ok(())
    }

    /// SIGTERM (graceful: sources stop, shards finish, log flushed), SIGKILL if it has not exited after `grace`.
    pub async fn terminate(mut self, grace: Duration) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid")?;
        // SAFETY: sends a signal to our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            "syncer did not exit within {} s of SIGTERM; killing it",
            grace.as_secs()
        );
        self.kill9()
    }
}

impl Drop for SyncerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET `/metrics` from `addr` (`host:port`), bounded to 10 s.
pub async fn scrape(addr: &str) -> Result<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        anyhow::Ok(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .context("metrics scrape timed out")??;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text);
    Ok(body)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
