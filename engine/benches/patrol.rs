//! One patrol pass over a large view: `cargo bench -p syncer --bench patrol`.
//!
//! A real sled view (a pipeline with a no-op reconciler) is filled directly with 10,000 running tenant pods
//! across 100 tenants (5 namespaces × 20 pods each) and their super copies as the syncer writes them, plus
//! the namespaces; 1 % of the pods are then made to drift (50 copies of bound pods removed, found as
//! `different`; 50 tenant pods removed, found as orphans). One
//! pass walks every enabled kind of the default resources with the kinds' real patrol checks and enqueues
//! the 100 repairs on the shards. Prints the median, fastest and slowest of 7 passes, the objects compared
//! and the findings (which must be exactly the drift made).
//!
//! Plain `main` (no harness); run it in release on an otherwise idle machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};
use syncer::log::View;
use syncer::naming::{cluster_key, super_namespace};
use syncer::patrol::{PatrolConfig, Patroller, Verdict};
use syncer::pipeline::{Pipeline, PipelineConfig};
use syncer::reconcile::{Resources, TenantInfo, Tenants, namespace, pod};
use syncer::record::{SUPER_CLUSTER, WorkKey};
use syncer::shard::{ReconcileError, Reconciler};

const TENANTS: usize = 100;
const NAMESPACES: usize = 5;
const PODS_PER_NAMESPACE: usize = 20;
const PASSES: usize = 7;

struct NoOp;

impl Reconciler for NoOp {
    fn reconcile(&self, _key: &WorkKey, _view: &View) -> Result<(), ReconcileError> {
        Ok(())
    }
}

/// A running tenant pod (≈ 1.5 KB of JSON) and its super copy, as the syncer leaves them once in sync.
fn pod_pair(info: &TenantInfo, ns: &str, name: &str, n: usize) -> (Value, Value) {
    let tenant: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("t-{}-{n}", info.cluster_key),
                     "resourceVersion": (2 * n + 10).to_string(),
                     "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "7d4b9c8f6d"},
                     "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/web:1.4.2",
                                 "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                 "env": [{"name": "MODE", "value": "production"}],
                                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                 "serviceAccountName": "default"}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let super_ns = super_namespace(&info.cluster_key, ns);
    let mut copy =
        pod::desired_super_pod(&tenant, info, &super_ns).unwrap_or_else(|e| panic!("{e}"));
    copy.metadata.uid = Some(format!("s-{}-{n}", info.cluster_key));
    copy.metadata.resource_version = Some((2 * n + 11).to_string());
    let status = json!({
        "phase": "Running", "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
        "hostIP": "192.168.10.2", "startTime": "2026-01-01T00:00:00Z", "qosClass": "Burstable",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
        "containerStatuses": [{"name": "app", "image": "registry.example/web:1.4.2",
            "imageID": "sha256:abc", "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]
    });
    let mut tenant = serde_json::to_value(&tenant).unwrap_or_else(|e| panic!("{e}"));
    let mut copy = serde_json::to_value(&copy).unwrap_or_else(|e| panic!("{e}"));
    for side in [&mut tenant, &mut copy] {
        side["spec"]["nodeName"] = json!("node-1");
        side["status"] = status.clone();
    }
    (tenant, copy)
}

fn fill(view: &View, infos: &[TenantInfo]) {
    let mut n = 0;
    for info in infos {
        for i in 0..NAMESPACES {
            let ns = format!("ns-{i}");
            let tenant_ns: Namespace = serde_json::from_value(json!({
                "metadata": {"name": ns, "uid": format!("n-{}-{i}", info.cluster_key), "resourceVersion": "5"}
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            let super_name = super_namespace(&info.cluster_key, &ns);
            let mut copy = namespace::desired_super_namespace(&tenant_ns, info, &super_name);
            copy.metadata.resource_version = Some("6".into());
            let put = |cluster: &str, kind: &str, ns: &str, name: &str, v: &Value| {
                view.record_write(cluster, kind, ns, name, Some(v))
                    .unwrap_or_else(|e| panic!("{e}"));
            };
            let tenant_ns = serde_json::to_value(&tenant_ns).unwrap_or_else(|e| panic!("{e}"));
            let copy = serde_json::to_value(&copy).unwrap_or_else(|e| panic!("{e}"));
            put(&info.cluster_key, "Namespace", "", &ns, &tenant_ns);
            put(SUPER_CLUSTER, "Namespace", "", &super_name, &copy);
            for p in 0..PODS_PER_NAMESPACE {
                let name = format!("web-{p}");
                let (tenant, copy) = pod_pair(info, &ns, &name, n);
                put(&info.cluster_key, "Pod", &ns, &name, &tenant);
                put(SUPER_CLUSTER, "Pod", &super_name, &name, &copy);
                n += 1;
            }
        }
    }
}

/// Removes 50 super copies (missing) and 50 tenant pods (orphans), spread over the tenants.
fn drift(view: &View, infos: &[TenantInfo]) -> (usize, usize) {
    let (mut missing, mut orphans) = (0, 0);
    for (t, info) in infos.iter().enumerate().filter(|(t, _)| t % 2 == 0) {
        let ns = format!("ns-{}", t % NAMESPACES);
        let super_ns = super_namespace(&info.cluster_key, &ns);
        view.record_write(SUPER_CLUSTER, "Pod", &super_ns, "web-0", None)
            .unwrap_or_else(|e| panic!("{e}"));
        missing += 1;
        view.record_write(&info.cluster_key, "Pod", &ns, "web-1", None)
            .unwrap_or_else(|e| panic!("{e}"));
        orphans += 1;
    }
    (missing, orphans)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pipeline = Pipeline::start(
            PipelineConfig {
                shards: 4,
                cache_capacity_bytes: 64 << 20,
                ..PipelineConfig::new(dir.path())
            },
            Arc::new(NoOp),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Clients are never used by a pass (it reads the view only); one that points nowhere will do.
        let config = kube::Config::new(
            "http://127.0.0.1:9"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"));
        let tenants = Tenants::new();
        let infos: Vec<TenantInfo> = (0..TENANTS)
            .map(|t| {
                let name = format!("vc{t}");
                TenantInfo {
                    cluster_key: cluster_key("bench", &name, &format!("uid-{t}")),
                    vc_name: name,
                    vc_namespace: "bench".into(),
                    ..TenantInfo::default()
                }
            })
            .collect();
        for info in &infos {
            tenants.insert(info.clone(), client.clone());
        }
        let view = pipeline.view();
        let started = Instant::now();
        fill(&view, &infos);
        let pods = TENANTS * NAMESPACES * PODS_PER_NAMESPACE;
        println!(
            "filled the view with {pods} tenant pods, their super copies and {} namespaces in {:.2} s",
            TENANTS * NAMESPACES,
            started.elapsed().as_secs_f64()
        );
        let (missing, orphans) = drift(&view, &infos);
        let patroller = Patroller::new(
            &pipeline,
            None,
            tenants,
            &Resources::defaults(),
            PatrolConfig {
                inject_timeout: Duration::from_secs(5),
                ..PatrolConfig::default()
            },
        );
        let mut times = Vec::with_capacity(PASSES);
        for pass in 0..PASSES {
            let report = patroller.pass(false).await;
            assert_eq!(report.errors, 0, "{report:?}");
            // The tenant pods are bound (nodeName set), so a lost super copy is classed `different`
            // (tenant side): the repair decides between re-creating the copy and deleting the tenant pod.
            assert_eq!(report.count(Verdict::Missing), 0, "pass {pass}");
            assert_eq!(report.count(Verdict::Orphan), orphans, "pass {pass}");
            assert_eq!(report.count(Verdict::Different), missing, "pass {pass}");
            assert_eq!(report.enqueued, missing + orphans);
            if pass == 0 {
                println!(
                    "one pass compares {} tenant objects and {} super copies; findings: {:?}",
                    report.tenant_objects, report.super_objects, report.findings
                );
            }
            times.push(report.duration);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "patrol pass over {pods} pods / {TENANTS} tenants: median {:.0} ms (fastest {:.0} ms, slowest {:.0} ms, {PASSES} passes)",
            ms(times[PASSES / 2]),
            ms(times[0]),
            ms(times[PASSES - 1])
        );
        pipeline.shutdown();
    });
}
