//! A single-member etcd on loopback, with its data in a temporary directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::http_probe;
use super::ports::free_loopback_port;
use super::process::ManagedProcess;
use crate::TestClusterError;

/// How long etcd may take to answer `/health` with `{"health":"true"}`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two health probes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Start attempts with fresh ports when etcd exits early (for example because a port was taken).
const START_ATTEMPTS: usize = 3;

/// A running etcd server (3.4 or newer). Dropping it kills the process.
///
/// It listens for clients on `http://127.0.0.1:<port>` and for peers on another loopback port; its data
/// directory is a subdirectory of the directory given to [`Etcd::start`], which the caller owns.
#[derive(Debug)]
pub struct Etcd {
    process: ManagedProcess,
    client_addr: SocketAddr,
    data_dir: PathBuf,
}

/// Go's name for the machine architecture, as etcd's `ETCD_UNSUPPORTED_ARCH` check expects it.
///
/// etcd 3.4 refuses to start on architectures other than amd64 (and ppc64le) unless this variable names
/// the running one; setting it on amd64 is harmless.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Command-line flags for one etcd member named `default` on the given ports.
fn etcd_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=default".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=default={peer_url}"),
        "--initial-cluster-state=new".to_string(),
    ]
}

impl Etcd {
    /// Starts etcd from `binary`, keeping data and logs under `dir`, and waits until it is healthy.
    ///
    /// Retries with fresh ports (up to 3 attempts) when the process exits before it is healthy.
    pub async fn start(binary: &Path, dir: &Path) -> Result<Self, TestClusterError> {
        let mut last_error = None;
        for attempt in 0..START_ATTEMPTS {
            match Self::start_once(binary, dir, attempt).await {
                Ok(etcd) => return Ok(etcd),
                Err(error @ TestClusterError::Exited { .. }) => {
                    tracing::warn!(attempt, %error, "etcd exited during start-up; retrying");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(TestClusterError::NotReady {
            name: "etcd",
            waited: Duration::ZERO,
            last_check: "no start attempt was made".to_string(),
            log_tail: String::new(),
        }))
    }

    async fn start_once(
        binary: &Path,
        dir: &Path,
        attempt: usize,
    ) -> Result<Self, TestClusterError> {
        let client_port = free_loopback_port().map_err(TestClusterError::FreePort)?;
        let peer_port = free_loopback_port().map_err(TestClusterError::FreePort)?;
        let data_dir = dir.join(format!("etcd-data-{attempt}"));
        let arch = std::env::var("ETCD_UNSUPPORTED_ARCH").unwrap_or_else(|_| go_arch().to_string());
        let process = ManagedProcess::spawn(
            "etcd",
            binary,
            &etcd_args(&data_dir, client_port, peer_port),
            &[("ETCD_UNSUPPORTED_ARCH", arch)],
            dir.join(format!("etcd-{attempt}.log")),
        )?;
        let mut etcd = Self {
            process,
            client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, client_port)),
            data_dir,
        };
        etcd.wait_healthy().await?;
        Ok(etcd)
    }

    async fn wait_healthy(&mut self) -> Result<(), TestClusterError> {
        let started = Instant::now();
        let mut last_check = String::from("not probed yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(error) = self.process.exited_error() {
                return Err(error);
            }
            match self.health().await {
                Ok(()) => {
                    tracing::debug!(url = %self.client_url(), waited = ?started.elapsed(), "etcd healthy");
                    return Ok(());
                }
                Err(check) => last_check = check,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Err(TestClusterError::NotReady {
            name: self.process.name(),
            waited: started.elapsed(),
            last_check,
            log_tail: self.process.log_tail(),
        })
    }

    /// `Ok(())` when `GET /health` answers 200 with `"health":"true"`, otherwise what it answered.
    pub async fn health(&self) -> Result<(), String> {
        let (code, body) = http_probe::get(self.client_addr, "/health").await?;
        if code == 200 && body.replace(' ', "").contains("\"health\":\"true\"") {
            Ok(())
        } else {
            Err(format!("/health answered {code}: {body}"))
        }
    }

    /// The URL clients (kube-apiserver's `--etcd-servers`) use.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.client_addr)
    }

    /// The directory etcd keeps its data in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The last lines of etcd's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// `true` while the process is running.
    pub fn is_running(&mut self) -> bool {
        self.process.exit_status().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_use_loopback_urls_and_one_member_cluster() {
        let args = etcd_args(Path::new("/d"), 1111, 2222);
        for expected in [
            "--data-dir=/d",
            "--listen-client-urls=http://127.0.0.1:1111",
            "--advertise-client-urls=http://127.0.0.1:1111",
            "--listen-peer-urls=http://127.0.0.1:2222",
            "--initial-cluster=default=http://127.0.0.1:2222",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{expected} missing from {args:?}"
            );
        }
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let result = Etcd::start(Path::new("/nonexistent/etcd"), dir.path()).await;
        assert!(
            matches!(result, Err(TestClusterError::Spawn { name: "etcd", .. })),
            "{result:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn binary_that_exits_is_reported_with_its_log() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let fake = dir.path().join("fake-etcd");
        std::fs::write(&fake, "#!/bin/sh\necho fake etcd refuses >&2\nexit 1\n")?;
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&fake)
            .status()?;
        let result = Etcd::start(&fake, dir.path()).await;
        match result {
            Err(TestClusterError::Exited { name, log_tail, .. }) => {
                assert_eq!(name, "etcd");
                assert!(log_tail.contains("fake etcd refuses"), "{log_tail}");
            }
            other => panic!("expected Exited, got {other:?}"),
        }
        Ok(())
    }
}
