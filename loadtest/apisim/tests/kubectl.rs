//! Runs the real `kubectl` against a fresh simulator: discovery, create, get (tables, YAML), apply
//! (client-side, strategic merge patch), delete and watch. Skipped (with a note) when kubectl is absent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use apisim::{SimConfig, Simulator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Bound on every kubectl invocation.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

fn kubectl_path() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("kubectl"))
        .find(|p| p.is_file())
}

struct Env {
    _sim: Simulator,
    dir: tempfile::TempDir,
    kubectl: PathBuf,
}

impl Env {
    async fn start() -> Option<Env> {
        let Some(kubectl) = kubectl_path() else {
            eprintln!("kubectl not on PATH: skipping kubectl tests");
            return None;
        };
        let sim = Simulator::start(SimConfig::default())
            .await
            .expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("kubeconfig"), sim.kubeconfig_yaml("sim"))
            .expect("write kubeconfig");
        Some(Env {
            _sim: sim,
            dir,
            kubectl,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(
            ok,
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write manifest");
        path.to_string_lossy().into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_api_resources() {
    let Some(env) = Env::start().await else {
        return;
    };
    let version = env.ok(&["version", "-o", "json"]).await;
    assert!(version.contains("v1.33.0-apisim"), "{version}");
    let resources = env.ok(&["api-resources"]).await;
    let line = |name: &str| {
        resources
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(str::to_string)
    };
    let pods = line("pods").unwrap_or_else(|| panic!("no pods in {resources}"));
    assert!(pods.contains(" po ") && pods.contains("Pod"), "{pods}");
    let deploy = line("deployments").unwrap_or_else(|| panic!("no deployments in {resources}"));
    assert!(
        deploy.contains("deploy") && deploy.contains("apps/v1"),
        "{deploy}"
    );
    assert!(
        line("customresourcedefinitions").is_some_and(|l| l.contains("crd,crds")),
        "{resources}"
    );
    let namespaced = env
        .ok(&["api-resources", "--namespaced=false", "-o", "name"])
        .await;
    assert!(namespaced.lines().any(|l| l == "nodes"), "{namespaced}");
    assert!(!namespaced.lines().any(|l| l == "pods"), "{namespaced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_delete() {
    let Some(env) = Env::start().await else {
        return;
    };
    let manifest = env.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels:\n    app: web\ndata:\n  mode: fast\n",
    );
    let created = env.ok(&["create", "-f", &manifest]).await;
    assert!(created.contains("configmap/settings created"), "{created}");
    let (ok, _, stderr) = env.run(&["create", "-f", &manifest]).await;
    assert!(!ok);
    assert!(
        stderr.contains("AlreadyExists")
            && stderr.contains("configmaps \"settings\" already exists"),
        "{stderr}"
    );
    let yaml = env
        .ok(&["get", "configmap", "settings", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("mode: fast") && yaml.contains("resourceVersion:") && yaml.contains("uid:"),
        "{yaml}"
    );
    let table = env.ok(&["get", "cm", "-l", "app=web"]).await;
    let mut lines = table.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("NAME")),
        "{table}"
    );
    assert!(lines.any(|l| l.starts_with("settings")), "{table}");
    let namespaces = env.ok(&["get", "ns"]).await;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces
                .lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{namespaces}"
        );
    }
    let deleted = env.ok(&["delete", "configmap", "settings"]).await;
    assert!(
        deleted.contains("configmap \"settings\" deleted"),
        "{deleted}"
    );
    let (ok, _, stderr) = env.run(&["get", "configmap", "settings"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("(NotFound)") && stderr.contains("configmaps \"settings\" not found"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_then_patches() {
    let Some(env) = Env::start().await else {
        return;
    };
    let deployment = |replicas: u32, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  \
             selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    \
             spec:\n      containers:\n      - name: web\n        image: {image}\n"
        )
    };
    let first = env.write("deploy1.yaml", &deployment(1, "nginx:1.25"));
    let out = env.ok(&["apply", "-f", &first]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let second = env.write("deploy2.yaml", &deployment(3, "nginx:1.27"));
    let out = env.ok(&["apply", "-f", &second]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let out = env.ok(&["apply", "-f", &second]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let json = env.ok(&["get", "deployment", "web", "-o", "json"]).await;
    let obj: serde_json::Value = serde_json::from_str(&json).expect("deployment JSON");
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(obj["metadata"]["generation"], 2);
    let last_applied =
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("last-applied annotation");
    assert!(last_applied.contains("nginx:1.27"), "{last_applied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let Some(env) = Env::start().await else {
        return;
    };
    let first = env.write(
        "first.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n",
    );
    env.ok(&["create", "-f", &first]).await;
    let mut child = env
        .command(&[
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
            "--request-timeout",
            "30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl watch starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let manifest = env.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n",
    );
    // Wait until the watch is established (the header line), then create the object.
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        let mut created = false;
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line.clone());
            if !created {
                created = true;
                env.ok(&["create", "-f", &manifest]).await;
            }
            if line.contains("watched") && line.contains("ADDED") {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(found, Ok(true), "watch output: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_from_a_crd() {
    let Some(env) = Env::start().await else {
        return;
    };
    let crd = env.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n\
         spec:\n  group: example.com\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    \
         kind: Widget\n    shortNames: [wd]\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    \
         subresources:\n      status: {}\n    additionalPrinterColumns:\n    - name: Size\n      type: string\n      \
         jsonPath: .spec.size\n    schema:\n      openAPIV3Schema:\n        type: object\n        \
         x-kubernetes-preserve-unknown-fields: true\n",
    );
    let out = env.ok(&["apply", "-f", &crd]).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}"
    );
    let widget = env.write(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: large\n",
    );
    let out = env.ok(&["apply", "-f", &widget]).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");
    let table = env.ok(&["get", "wd"]).await;
    let header = table.lines().next().unwrap_or_default().to_string();
    assert!(
        header.contains("NAME") && header.contains("SIZE"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("w1") && l.contains("large")),
        "{table}"
    );
    let out = env.ok(&["delete", "-f", &crd]).await;
    assert!(out.contains("deleted"), "{out}");
    let (ok, _, stderr) = env.run(&["get", "widgets.example.com"]).await;
    assert!(!ok, "custom resources must be gone with their CRD");
    assert!(
        stderr.contains("the server doesn't have a resource type"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_generators_that_send_protobuf() {
    let Some(env) = Env::start().await else {
        return;
    };
    let out = env.ok(&["create", "namespace", "team"]).await;
    assert!(out.contains("namespace/team created"), "{out}");
    let out = env
        .ok(&[
            "-n",
            "team",
            "create",
            "configmap",
            "c",
            "--from-literal=a=b",
        ])
        .await;
    assert!(out.contains("configmap/c created"), "{out}");
    let out = env
        .ok(&[
            "-n",
            "team",
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=p=hunter2",
        ])
        .await;
    assert!(out.contains("secret/s created"), "{out}");
    let out = env
        .ok(&["-n", "team", "create", "serviceaccount", "builder"])
        .await;
    assert!(out.contains("serviceaccount/builder created"), "{out}");
    let data = env
        .ok(&[
            "-n",
            "team",
            "get",
            "secret",
            "s",
            "-o",
            "jsonpath={.data.p}",
        ])
        .await;
    assert_eq!(data, "aHVudGVyMg==", "secret data is stored base64-encoded");
    let value = env
        .ok(&[
            "-n",
            "team",
            "get",
            "configmap",
            "c",
            "-o",
            "jsonpath={.data.a}",
        ])
        .await;
    assert_eq!(value, "b");
    // Kinds the protobuf decoder does not know are refused with a clear message, not half-decoded.
    let (ok, _, stderr) = env
        .run(&["-n", "team", "create", "deployment", "d", "--image=nginx"])
        .await;
    assert!(!ok);
    assert!(
        stderr.contains("not supported by this simulated API server; send JSON"),
        "{stderr}"
    );
}
