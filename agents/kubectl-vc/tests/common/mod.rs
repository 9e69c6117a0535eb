//! Shared by the kubectl-vc tests: running the binary.
#![allow(dead_code)]

use std::path::Path;

/// What one run printed and how it ended.
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `kubectl-vc` with the super kubeconfig and `args` (no syncer variables inherited).
pub async fn kubectl_vc(kubeconfig: &Path, args: &[&str]) -> Run {
    kubectl_vc_env(kubeconfig, args, &[]).await
}

/// Runs `kubectl-vc` with the super kubeconfig, `args` and the environment variables `env` (no syncer
/// variables inherited from the test's own environment).
pub async fn kubectl_vc_env(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-vc"));
    for var in [
        "KUBECTL_VC_SYNCER_ADDR",
        "KUBECTL_VC_SYNCER_TLS_DIR",
        "KUBECTL_VC_SYNCER_CA",
        "KUBECTL_VC_SYNCER_CERT",
        "KUBECTL_VC_SYNCER_KEY",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .envs(env.iter().copied())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run kubectl-vc: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
