//! Helpers shared by the conformance tests: start a cluster, make raw requests, read `Status` errors,
//! wait for conditions with a bound.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use http::{HeaderMap, Method, Request};
use kube::core::Status;
use testcluster::{Backend, ClusterOptions, TestCluster};

/// Longest a conformance test may run, start-up included (real binaries take a few seconds to start).
pub const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Runs a test body with the [`TEST_LIMIT`] bound, so a server that never answers fails the test
/// instead of hanging the suite.
pub async fn bounded<F>(body: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .map_err(|_| anyhow!("test did not finish within {TEST_LIMIT:?}"))?
}

/// A cluster, a client for it and a fresh namespace named after the test.
pub struct Env {
    pub cluster: TestCluster,
    pub client: kube::Client,
    pub ns: String,
}

/// Starts a cluster with default options and creates a namespace `<prefix>-<random>`.
pub async fn env(prefix: &str) -> anyhow::Result<Env> {
    env_with(prefix, ClusterOptions::default()).await
}

/// Starts a cluster with `opts` and creates a namespace `<prefix>-<random>`.
pub async fn env_with(prefix: &str, opts: ClusterOptions) -> anyhow::Result<Env> {
    init_tracing();
    let cluster = TestCluster::start_with(opts)
        .await
        .context("starting the test cluster")?;
    let client = cluster.client().await.context("building a client")?;
    let ns = cluster
        .create_namespace(prefix)
        .await
        .context("creating the test namespace")?;
    Ok(Env {
        cluster,
        client,
        ns,
    })
}

fn init_tracing() {
    // Several tests in one binary: only the first installation succeeds, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Prints why a test does nothing on this backend. Returns `true` so callers can `return Ok(())`.
pub fn skip(test: &str, backend: Backend, why: &str) {
    eprintln!("SKIPPED {test} on {backend:?}: {why}");
}

/// The `Status` of an API error, or an error saying the call unexpectedly succeeded / failed otherwise.
pub fn api_status<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> anyhow::Result<Status> {
    match result {
        Err(kube::Error::Api(status)) => Ok(*status),
        Err(other) => bail!("expected an API error Status, got a client error: {other:?}"),
        Ok(value) => bail!("expected an API error Status, the call succeeded: {value:?}"),
    }
}

/// The `details` of a `Status`, required to be present.
pub fn status_details(status: &Status) -> anyhow::Result<kube::core::response::StatusDetails> {
    status
        .details
        .clone()
        .ok_or_else(|| anyhow!("Status has no details: {status:?}"))
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Raw {
    pub code: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Raw {
    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Sends `method path` with an optional body and content type, returning code, headers and body
/// whatever the status code.
pub async fn raw(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<Raw> {
    let mut builder = Request::builder().method(method.clone()).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, content_type);
    }
    builder = builder.header(http::header::ACCEPT, "application/json");
    let request = builder.body(kube::client::Body::from(body))?;
    let response = client
        .send(request)
        .await
        .with_context(|| format!("{method} {path}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect_bytes()
        .await
        .with_context(|| format!("reading {method} {path}"))?;
    Ok(Raw {
        code: parts.status.as_u16(),
        headers: parts.headers,
        body: body.to_vec(),
    })
}

/// GET `path` and parse the JSON answer, failing on a non-2xx code.
pub async fn get_json(client: &kube::Client, path: &str) -> anyhow::Result<serde_json::Value> {
    let response = raw(client, Method::GET, path, None, Vec::new()).await?;
    if !(200..300).contains(&response.code) {
        bail!("GET {path} answered {}: {}", response.code, response.text());
    }
    response.json()
}

/// Checks the common shape of a `Status` failure body: `kind: Status`, `apiVersion: v1`,
/// `status: Failure`, and `code` equal to the HTTP code. Returns the body for further checks.
pub fn assert_status_body(
    response: &Raw,
    code: u16,
    reason: &str,
) -> anyhow::Result<serde_json::Value> {
    let body = response.json()?;
    anyhow::ensure!(
        response.code == code,
        "HTTP {} (want {code}): {body}",
        response.code
    );
    anyhow::ensure!(body["kind"] == "Status", "kind is not Status: {body}");
    anyhow::ensure!(body["apiVersion"] == "v1", "apiVersion is not v1: {body}");
    anyhow::ensure!(body["status"] == "Failure", "status is not Failure: {body}");
    anyhow::ensure!(body["code"] == code, "code field is not {code}: {body}");
    anyhow::ensure!(body["reason"] == reason, "reason is not {reason}: {body}");
    Ok(body)
}

/// Parses a resourceVersion. The API calls them opaque strings; both backends use decimal etcd-style
/// revisions, and the tests rely only on their order.
pub fn rv_num(rv: Option<&String>) -> anyhow::Result<u64> {
    let rv = rv.ok_or_else(|| anyhow!("no resourceVersion"))?;
    rv.parse()
        .with_context(|| format!("resourceVersion {rv:?} is not a number"))
}

/// Polls `check` until it returns `Ok(Some(value))`, at most for `limit`. Each `Ok(None)` or `Err`
/// means "not yet"; the last one is reported on timeout.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    let mut last = String::from("never checked");
    while started.elapsed() < limit {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => last = "condition not met".to_string(),
            Err(error) => last = format!("{error:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not true after {limit:?} (last: {last})")
}

/// A ConfigMap named `name` with `labels` and one data key.
pub fn configmap(name: &str, labels: &[(&str, &str)]) -> k8s_openapi::api::core::v1::ConfigMap {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    k8s_openapi::api::core::v1::ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into_iter().collect()),
        ..Default::default()
    }
}

/// A pod named `name` with one container per entry of `containers` (name, image).
pub fn pod(name: &str, containers: &[(&str, &str)]) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: containers
                .iter()
                .map(|(name, image)| Container {
                    name: name.to_string(),
                    image: Some(image.to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Deployment named `name` with `replicas` and one container; the selector matches `app=<name>`.
pub fn deployment(
    name: &str,
    replicas: i32,
) -> anyhow::Result<k8s_openapi::api::apps::v1::Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [ { "name": "main", "image": "registry.k8s.io/pause:3.9" } ] }
            }
        }
    }))?)
}
