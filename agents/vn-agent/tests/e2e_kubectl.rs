//! End to end through the vn-agent with the real syncer (see `e2e_support.rs` for the rig): a tenant's
//! `kubectl logs` (and the same through `kube::Client`) travels tenant API server → virtual node → vn-agent →
//! syncer translation → the node's kubelet, and prints the kubelet's lines for the *super* pod.
//!
//! * logs, `logs -f`, `exec -- echo hi` (WebSocket `v5.channel.k8s.io` through the tenant API server's
//!   upgrade splice, the agent's and the kubelet's), a 60-character tenant namespace (hashed super namespace);
//! * two tenants with a pod of the same name each see their own super pod's lines; tenant B reaches no pod
//!   of tenant A, neither through its API server nor with its kubelet-client certificate at the agent.
//!
//! The kubectl test is skipped (with a message) when no `kubectl` is on PATH.

mod e2e_support;

use std::process::Stdio;
use std::time::Duration;

use e2e_support::{World, log_line};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::io::AsyncBufReadExt as _;

/// A 60-character tenant namespace: `<cluster key>-<ns>` is far over 63, so the super namespace is hashed.
fn long_namespace() -> String {
    format!("team-{}", "n".repeat(55))
}

fn lines(super_ns: &str, pod: &str) -> String {
    format!(
        "{}\n{}\n",
        log_line(super_ns, pod, 1),
        log_line(super_ns, pod, 2)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_logs_reach_the_super_pod_through_the_agent() {
    let world = World::start(&["alpha", "beta"]).await;
    let long = long_namespace();
    assert_eq!(long.len(), 60);
    let alpha_web = world.running_pod("alpha", "default", "web").await;
    let alpha_long = world.running_pod("alpha", &long, "api").await;
    let beta_web = world.running_pod("beta", "default", "web").await;
    assert_eq!(alpha_long.len(), 63, "hashed super namespace");
    assert_ne!(alpha_web, beta_web);

    let alpha = world.tenant("alpha");
    let beta = world.tenant("beta");
    let alpha_pods: Api<Pod> = Api::namespaced(alpha.client.clone(), "default");
    let text = alpha_pods
        .logs("web", &LogParams::default())
        .await
        .unwrap_or_else(|e| panic!("alpha logs: {e}"));
    assert_eq!(text, lines(&alpha_web, "web"));
    let text = Api::<Pod>::namespaced(alpha.client.clone(), &long)
        .logs(
            "api",
            &LogParams {
                tail_lines: Some(2),
                timestamps: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("alpha logs in the long namespace: {e}"));
    assert_eq!(text, lines(&alpha_long, "api"));
    assert!(
        world.kubelet.paths.lock().contains(&format!(
            "/containerLogs/{alpha_long}/api/app?tailLines=2&timestamps=true"
        )),
        "the kubelet was asked for the super pod with the options: {:?}",
        world.kubelet.paths.lock()
    );

    // Follow: lines arrive while the kubelet writes them.
    let stream = alpha_pods
        .log_stream(
            "web",
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("log stream: {e}"));
    let mut followed = stream.lines();
    for n in 1..=3 {
        let line = tokio::time::timeout(Duration::from_secs(60), followed.try_next())
            .await
            .unwrap_or_else(|_| panic!("line {n} did not arrive"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(line, Some(log_line(&alpha_web, "web", n)));
    }
    drop(followed);
    e2e_support::wait_for("the kubelet's follow stream to close", || {
        let closed = world
            .kubelet
            .follow_closed
            .load(std::sync::atomic::Ordering::SeqCst);
        async move { closed.then_some(()) }
    })
    .await;

    // Exec: the tenant API server's WebSocket upgrade reaches the kubelet's echo for the super pod.
    let (stdout, status) = world.ws_exec("alpha", &long, "api", &["hi", "there"]).await;
    assert_eq!(stdout, "hi there\n");
    assert!(status.contains("Success"), "exec status: {status:?}");
    let exec_paths = world.kubelet.streams.paths.lock().clone();
    assert!(
        exec_paths
            .iter()
            .any(|p| p.starts_with(&format!("/exec/{alpha_long}/api/app?"))),
        "exec reached the super pod: {exec_paths:?}"
    );

    // Tenant B: its own pod of the same name is its own super pod …
    let text = Api::<Pod>::namespaced(beta.client.clone(), "default")
        .logs("web", &LogParams::default())
        .await
        .unwrap_or_else(|e| panic!("beta logs: {e}"));
    assert_eq!(text, lines(&beta_web, "web"));
    // … A's pod does not exist for B's API server …
    match Api::<Pod>::namespaced(beta.client.clone(), &long)
        .logs("api", &LogParams::default())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{}", s.message),
        other => panic!("tenant B read tenant A's pod: {other:?}"),
    }
    // … and B's kubelet-client certificate at the agent gets no translation of A's pod.
    let asked = world.kubelet.paths.lock().len();
    let status = world
        .agent_get(
            &beta.kubelet_cert,
            &format!("/containerLogs/{long}/api/app"),
        )
        .await;
    assert_eq!(status, http::StatusCode::FORBIDDEN);
    // The same request with A's own certificate is served.
    let status = world
        .agent_get(
            &alpha.kubelet_cert,
            &format!("/containerLogs/{long}/api/app"),
        )
        .await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        world.kubelet.paths.lock().len(),
        asked + 1,
        "only the allowed request reached the kubelet"
    );
    world.stop().await;
}

/// The minor version of the `kubectl` on PATH, if there is one.
fn kubectl_minor() -> Option<u32> {
    let out = std::process::Command::new("kubectl")
        .args(["version", "--client=true", "-o", "json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.pointer("/clientVersion/minor")?
        .as_str()?
        .trim_end_matches('+')
        .parse()
        .ok()
}

/// Oldest kubectl that can run `exec` over WebSocket (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS`, 1.29); older ones
/// speak only SPDY, which the simulated kubelet does not implement beyond a raw echo.
const WEBSOCKET_EXEC_MINOR: u32 = 29;

async fn kubectl_exec(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    kubectl_run(
        kubeconfig,
        args,
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true")],
    )
    .await
}

async fn kubectl_out(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    kubectl_run(kubeconfig, args, &[]).await
}

async fn kubectl_run(
    kubeconfig: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let out = tokio::process::Command::new("kubectl")
        .envs(env.iter().copied())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"))
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_of_a_tenant_pod_reach_the_super_pod() {
    let Some(minor) = kubectl_minor() else {
        eprintln!(
            "SKIPPED kubectl_logs_and_exec_of_a_tenant_pod_reach_the_super_pod: no kubectl on PATH"
        );
        return;
    };
    let world = World::start(&["alpha", "beta"]).await;
    let long = long_namespace();
    let alpha_web = world.running_pod("alpha", "default", "web").await;
    let alpha_long = world.running_pod("alpha", &long, "api").await;
    let alpha = world.tenant("alpha");
    let beta = world.tenant("beta");

    let (ok, out, err) = kubectl_out(&alpha.kubeconfig, &["logs", "web"]).await;
    assert!(ok, "kubectl logs failed: {err}");
    assert_eq!(out, lines(&alpha_web, "web"));
    let (ok, out, err) = kubectl_out(
        &alpha.kubeconfig,
        &["logs", "-n", &long, "api", "-c", "app"],
    )
    .await;
    assert!(ok, "kubectl logs in the long namespace failed: {err}");
    assert_eq!(out, lines(&alpha_long, "api"));
    let (ok, _, err) = kubectl_out(&beta.kubeconfig, &["logs", "-n", &long, "api"]).await;
    assert!(!ok, "tenant B read tenant A's pod");
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // `kubectl exec` over WebSocket (the default of kubectl >= 1.31; forced for older ones).
    if minor >= WEBSOCKET_EXEC_MINOR {
        let (ok, out, err) =
            kubectl_exec(&alpha.kubeconfig, &["exec", "web", "--", "echo", "hi"]).await;
        assert!(ok, "kubectl exec failed: {err}");
        assert_eq!(out, "hi\n");
        let (ok, out, err) = kubectl_exec(
            &alpha.kubeconfig,
            &[
                "exec",
                "-n",
                &long,
                "api",
                "--",
                "echo",
                "long",
                "namespace",
            ],
        )
        .await;
        assert!(ok, "kubectl exec in the long namespace failed: {err}");
        assert_eq!(out, "long namespace\n");
    } else {
        eprintln!(
            "SKIPPED kubectl exec: kubectl 1.{minor} is older than 1.{WEBSOCKET_EXEC_MINOR} (no WebSocket exec)"
        );
    }

    // `kubectl logs -f`: read three lines, then stop kubectl.
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&alpha.kubeconfig)
        .args(["logs", "-f", "web"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut reader = tokio::io::BufReader::new(stdout).lines();
    for n in 1..=3 {
        let line = tokio::time::timeout(Duration::from_secs(60), reader.next_line())
            .await
            .unwrap_or_else(|_| panic!("kubectl logs -f: line {n} did not arrive"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(line, Some(log_line(&alpha_web, "web", n)));
    }
    let _ = child.kill().await;
    world.stop().await;
}
