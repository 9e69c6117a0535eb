//! A child process that is killed when its owner is dropped, with its output captured in a log file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::TestClusterError;

/// How many trailing log lines an error message carries.
const LOG_TAIL_LINES: usize = 40;

/// A running component (`etcd`, `kube-apiserver`, ...).
///
/// Dropping it sends SIGKILL and reaps the process, so a panicking test (which unwinds and drops its
/// cluster) leaves nothing behind. A process killed from outside (SIGKILL of the test binary) cannot run
/// destructors; its children then exit when their temp dir disappears or must be reaped by the CI runner.
#[derive(Debug)]
pub(crate) struct ManagedProcess {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
}

impl ManagedProcess {
    /// Starts `program` with `args` and `envs`; stdout and stderr both go to `log_path`.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log_path: PathBuf,
    ) -> Result<Self, TestClusterError> {
        let write_err = |source| TestClusterError::WriteFile {
            path: log_path.clone(),
            source,
        };
        let stdout = File::create(&log_path).map_err(write_err)?;
        let stderr = stdout.try_clone().map_err(write_err)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().map_err(|source| TestClusterError::Spawn {
            name,
            program: program.to_path_buf(),
            source,
        })?;
        tracing::debug!(name, pid = child.id(), log = %log_path.display(), "started process");
        Ok(Self {
            name,
            child,
            log_path,
        })
    }

    /// The component name used in errors.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// `Some(status)` when the process has already exited.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the process's output, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[start..].join("\n")
    }

    /// The error to return when the process exited early, or `None` while it runs.
    pub(crate) fn exited_error(&mut self) -> Option<TestClusterError> {
        let status = self.exit_status()?;
        Some(TestClusterError::Exited {
            name: self.name,
            status,
            log_tail: self.log_tail(),
        })
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            // Errors here mean the process is already gone.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        tracing::debug!(name = self.name, "stopped process");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_kills_a_running_process() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let process = ManagedProcess::spawn(
            "sleep",
            Path::new("sleep"),
            &["30".to_string()],
            &[],
            dir.path().join("sleep.log"),
        )?;
        let pid = process.child.id();
        drop(process);
        // After drop the process was reaped: its /proc entry is gone.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        Ok(())
    }

    #[test]
    fn exited_error_carries_the_log_tail() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut process = ManagedProcess::spawn(
            "sh",
            Path::new("sh"),
            &[
                "-c".to_string(),
                "echo boom-from-child >&2; exit 3".to_string(),
            ],
            &[],
            dir.path().join("sh.log"),
        )?;
        let _ = process.child.wait()?;
        match process.exited_error() {
            Some(TestClusterError::Exited {
                log_tail, status, ..
            }) => {
                assert_eq!(status.code(), Some(3));
                assert!(log_tail.contains("boom-from-child"), "{log_tail}");
            }
            other => panic!("expected Exited, got {other:?}"),
        }
        Ok(())
    }
}
