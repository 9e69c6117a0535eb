//! Behaviour of the REST handlers, driven through `handle` without sockets.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::testing::{call, state, state_with};
use crate::{KubeletConfig, SimConfig};

/// Secrets, because every namespace starts with a `kube-root-ca.crt` config map.
const CMS: &str = "/api/v1/namespaces/default/secrets";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {"a": "MQ=="}})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` every 20 ms for at most `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn create_fills_system_metadata() {
    let st = state();
    let (code, obj) = call(&st, Method::POST, CMS, cm("a")).await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["metadata"]["uid"].as_str().map(str::len), Some(36));
    let ts = obj["metadata"]["creationTimestamp"].as_str().unwrap_or("");
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z') && ts.len() == 20,
        "{ts}"
    );
    assert_eq!(rv(&obj), st.store.revision());
    assert!(
        obj["metadata"].get("generation").is_none(),
        "secrets have no generation"
    );
    let (_, d) = call(&st, Method::POST, DEPLOYS, deployment("d", 1)).await;
    assert_eq!(d["metadata"]["generation"], 1);
    let (code, g) = call(
        &st,
        Method::POST,
        CMS,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"generateName": "gen-"}}),
    )
    .await;
    assert_eq!(code, 201);
    let name = g["metadata"]["name"].as_str().unwrap_or("");
    let suffix = name.strip_prefix("gen-").unwrap_or("");
    assert_eq!(suffix.len(), 5, "{name}");
    assert!(
        suffix
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{name}"
    );
}

#[tokio::test]
async fn create_errors_match_the_real_server() {
    let st = state();
    call(&st, Method::POST, CMS, cm("a")).await;
    let (code, s) = call(&st, Method::POST, CMS, cm("a")).await;
    assert_eq!((code, s["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(s["message"], "secrets \"a\" already exists");
    let (code, s) = call(
        &st,
        Method::POST,
        "/api/v1/namespaces/nope/secrets",
        cm("a"),
    )
    .await;
    assert_eq!(
        (code, s["message"].as_str()),
        (404, Some("namespaces \"nope\" not found"))
    );
    let (code, s) = call(&st, Method::POST, CMS, cm("Bad_Name")).await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    let mut other_ns = cm("b");
    other_ns["metadata"]["namespace"] = json!("kube-system");
    assert_eq!(call(&st, Method::POST, CMS, other_ns).await.0, 400);
    let mut wrong_kind = cm("b");
    wrong_kind["kind"] = json!("ConfigMap");
    assert_eq!(call(&st, Method::POST, CMS, wrong_kind).await.0, 400);
    let no_kind = json!({"apiVersion": "v1", "metadata": {"name": "b"}});
    assert_eq!(call(&st, Method::POST, CMS, no_kind).await.0, 400);
    let mut with_rv = cm("b");
    with_rv["metadata"]["resourceVersion"] = json!("5");
    assert_eq!(call(&st, Method::POST, CMS, with_rv).await.0, 500);
    for (code, s) in [
        call(&st, Method::PUT, &format!("{CMS}/zzz"), cm("zzz")).await,
        call(&st, Method::GET, &format!("{CMS}/zzz"), Value::Null).await,
    ] {
        assert_eq!(
            (code, s["message"].as_str()),
            (404, Some("secrets \"zzz\" not found"))
        );
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["status"], "Failure");
    }
}

#[tokio::test]
async fn updates_conflict_on_stale_versions_and_skip_no_ops() {
    let st = state();
    let (_, a) = call(&st, Method::POST, CMS, cm("a")).await;
    let mut changed = a.clone();
    changed["data"]["a"] = json!("2");
    let (code, b) = call(&st, Method::PUT, &format!("{CMS}/a"), changed.clone()).await;
    assert_eq!(code, 200);
    assert!(rv(&b) > rv(&a));
    let (code, s) = call(&st, Method::PUT, &format!("{CMS}/a"), changed).await;
    assert_eq!(code, 409, "stale resourceVersion");
    assert_eq!(
        s["message"],
        "Operation cannot be fulfilled on secrets \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let before = st.store.revision();
    let (code, same) = call(&st, Method::PUT, &format!("{CMS}/a"), b.clone()).await;
    assert_eq!(
        (code, rv(&same)),
        (200, rv(&b)),
        "a no-op update keeps the resourceVersion"
    );
    let (_, same) = call(
        &st,
        Method::PATCH,
        &format!("{CMS}/a"),
        json!({"data": {"a": "2"}}),
    )
    .await;
    assert_eq!(rv(&same), rv(&b));
    assert_eq!(st.store.revision(), before, "no-op writes make no event");
    let mut unconditional = b.clone();
    unconditional["metadata"]["resourceVersion"] = json!("");
    unconditional["metadata"]["uid"] = json!("");
    unconditional["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    unconditional["data"]["a"] = json!("3");
    let (code, c) = call(&st, Method::PUT, &format!("{CMS}/a"), unconditional).await;
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["metadata"]["uid"], a["metadata"]["uid"]);
    assert_eq!(
        c["metadata"]["creationTimestamp"],
        a["metadata"]["creationTimestamp"]
    );
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let st = state();
    call(&st, Method::POST, DEPLOYS, deployment("d", 1)).await;
    let (_, d) = call(
        &st,
        Method::PATCH,
        &format!("{DEPLOYS}/d"),
        json!({"status": {"replicas": 7}}),
    )
    .await;
    assert!(
        d["status"].get("replicas").is_none(),
        "main resource ignores status: {d}"
    );
    let (_, d) = call(
        &st,
        Method::PATCH,
        &format!("{DEPLOYS}/d"),
        json!({"metadata": {"labels": {"x": "y"}}}),
    )
    .await;
    assert_eq!(
        d["metadata"]["generation"], 1,
        "metadata changes keep the generation"
    );
    let (_, d) = call(
        &st,
        Method::PATCH,
        &format!("{DEPLOYS}/d/status"),
        json!({"status": {"replicas": 7}, "spec": {"replicas": 9}}),
    )
    .await;
    assert_eq!(
        (
            d["status"]["replicas"].as_i64(),
            d["spec"]["replicas"].as_i64()
        ),
        (Some(7), Some(1)),
        "{d}"
    );
    assert_eq!(
        d["metadata"]["generation"], 1,
        "status changes keep the generation"
    );
    let (_, d) = call(
        &st,
        Method::PATCH,
        &format!("{DEPLOYS}/d"),
        json!({"spec": {"replicas": 3}}),
    )
    .await;
    assert_eq!(d["metadata"]["generation"], 2);
    let (code, scale) = call(&st, Method::GET, &format!("{DEPLOYS}/d/scale"), Value::Null).await;
    assert_eq!((code, scale["spec"]["replicas"].as_i64()), (200, Some(3)));
    assert_eq!(scale["status"]["selector"], "app=d");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let st = state();
    let mut obj = cm("f");
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (_, created) = call(&st, Method::POST, CMS, obj).await;
    let bad_uid =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "other"}});
    let (code, s) = call(&st, Method::DELETE, &format!("{CMS}/f"), bad_uid).await;
    assert_eq!(code, 409);
    let uid = created["metadata"]["uid"].as_str().unwrap_or("");
    assert_eq!(
        s["message"],
        format!(
            "Operation cannot be fulfilled on secrets \"f\": Precondition failed: UID in precondition: other, UID in object meta: {uid}"
        )
    );
    let (code, pending) = call(&st, Method::DELETE, &format!("{CMS}/f"), Value::Null).await;
    assert_eq!(code, 200);
    assert!(
        pending["metadata"]["deletionTimestamp"].is_string(),
        "{pending}"
    );
    assert_eq!(pending["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(
        call(&st, Method::GET, &format!("{CMS}/f"), Value::Null)
            .await
            .0,
        200
    );
    let (code, _) = call(
        &st,
        Method::PATCH,
        &format!("{CMS}/f"),
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        call(&st, Method::GET, &format!("{CMS}/f"), Value::Null)
            .await
            .0,
        404
    );
    let (_, plain) = call(&st, Method::POST, CMS, cm("g")).await;
    let (code, s) = call(&st, Method::DELETE, &format!("{CMS}/g"), Value::Null).await;
    assert_eq!((code, s["status"].as_str()), (200, Some("Success")), "{s}");
    assert_eq!(s["details"]["uid"], plain["metadata"]["uid"]);
}

#[tokio::test]
async fn list_pages_are_consistent_and_expire_with_compaction() {
    let st = state();
    for i in 0..5 {
        call(&st, Method::POST, CMS, cm(&format!("c{i}"))).await;
    }
    let (_, page1) = call(&st, Method::GET, &format!("{CMS}?limit=2"), Value::Null).await;
    let names = |l: &Value| -> Vec<String> {
        l["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&page1), vec!["c0", "c1"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 3);
    let token = page1["metadata"]["continue"]
        .as_str()
        .unwrap_or("")
        .to_string();
    // A change between pages is not visible: every page is served at the first page's revision.
    call(&st, Method::POST, CMS, cm("c15")).await;
    let (_, page2) = call(
        &st,
        Method::GET,
        &format!("{CMS}?limit=2&continue={token}"),
        Value::Null,
    )
    .await;
    assert_eq!(names(&page2), vec!["c2", "c3"]);
    assert_eq!(
        page2["metadata"]["resourceVersion"],
        page1["metadata"]["resourceVersion"]
    );
    let token2 = page2["metadata"]["continue"]
        .as_str()
        .unwrap_or("")
        .to_string();
    st.store.compact();
    let (code, s) = call(
        &st,
        Method::GET,
        &format!("{CMS}?limit=2&continue={token2}"),
        Value::Null,
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (410, Some("Expired")), "{s}");
    // The 410 carries a fresh token that continues after the same key, at the latest revision.
    let fresh = s["metadata"]["continue"].as_str().unwrap_or("").to_string();
    let (code, rest) = call(
        &st,
        Method::GET,
        &format!("{CMS}?limit=10&continue={fresh}"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(names(&rest), vec!["c4"]);
    let (code, all) = call(&st, Method::GET, "/api/v1/secrets", Value::Null).await;
    assert_eq!((code, names(&all).len()), (200, 6));
    let (code, _) = call(
        &st,
        Method::GET,
        &format!("{CMS}?fieldSelector=data.a%3D1"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn exact_lists_come_from_history() {
    let st = state();
    let (_, a) = call(&st, Method::POST, CMS, cm("a")).await;
    call(&st, Method::DELETE, &format!("{CMS}/a"), Value::Null).await;
    let at = rv(&a);
    let (code, past) = call(
        &st,
        Method::GET,
        &format!("{CMS}?resourceVersion={at}&resourceVersionMatch=Exact"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(past["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(past["metadata"]["resourceVersion"], at.to_string());
    let (_, now) = call(&st, Method::GET, CMS, Value::Null).await;
    assert_eq!(now["items"].as_array().map(Vec::len), Some(0));
    st.store.compact();
    let (code, _) = call(
        &st,
        Method::GET,
        &format!("{CMS}?resourceVersion={at}&resourceVersionMatch=Exact"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 410);
    let future = st.store.revision() + 100;
    let (code, s) = call(
        &st,
        Method::GET,
        &format!("{CMS}?resourceVersion={future}&resourceVersionMatch=NotOlderThan"),
        Value::Null,
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (504, Some("Timeout")), "{s}");
}

#[tokio::test]
async fn namespace_termination_deletes_content_then_the_namespace() {
    let st = state();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    assert_eq!(
        call(&st, Method::POST, "/api/v1/namespaces", ns).await.0,
        201
    );
    let team_cms = "/api/v1/namespaces/team/secrets";
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    call(&st, Method::POST, team_cms, held).await;
    call(&st, Method::POST, team_cms, cm("free")).await;
    let (code, ns) = call(&st, Method::DELETE, "/api/v1/namespaces/team", Value::Null).await;
    assert_eq!(
        (code, ns["status"]["phase"].as_str()),
        (200, Some("Terminating"))
    );
    let (code, s) = call(&st, Method::POST, team_cms, cm("late")).await;
    assert_eq!(code, 403);
    assert_eq!(
        s["message"],
        "secrets \"late\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    assert_eq!(s["details"]["causes"][0]["reason"], "NamespaceTerminating");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.namespace");
    let free_gone = eventually(Duration::from_secs(5), async || {
        call(&st, Method::GET, &format!("{team_cms}/free"), Value::Null)
            .await
            .0
            == 404
    })
    .await;
    assert!(free_gone);
    let (_, held) = call(&st, Method::GET, &format!("{team_cms}/held"), Value::Null).await;
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(
        call(&st, Method::GET, "/api/v1/namespaces/team", Value::Null)
            .await
            .0,
        200,
        "held by the finalizer"
    );
    call(
        &st,
        Method::PATCH,
        &format!("{team_cms}/held"),
        json!({"metadata": {"finalizers": []}}),
    )
    .await;
    let ns_gone = eventually(Duration::from_secs(5), async || {
        call(&st, Method::GET, "/api/v1/namespaces/team", Value::Null)
            .await
            .0
            == 404
    })
    .await;
    assert!(ns_gone);
    let (code, s) = call(
        &st,
        Method::DELETE,
        "/api/v1/namespaces/kube-system",
        Value::Null,
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (403, Some("Forbidden")));
}

#[tokio::test]
async fn services_get_addresses_and_release_them() {
    let st = state();
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let svcs = "/api/v1/namespaces/default/services";
    let (_, k) = call(&st, Method::GET, &format!("{svcs}/kubernetes"), Value::Null).await;
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    let (_, a) = call(
        &st,
        Method::POST,
        svcs,
        svc("a", json!({"ports": [{"port": 80}]})),
    )
    .await;
    let ip = a["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    assert!(ip.starts_with("10.") && ip != "10.96.0.1", "{a}");
    assert_eq!(a["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(a["spec"]["ports"][0]["targetPort"], 80);
    let (code, s) = call(
        &st,
        Method::POST,
        svcs,
        svc("b", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert_eq!(
        s["message"],
        format!(
            "Service \"b\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )
    );
    let (_, h) = call(
        &st,
        Method::POST,
        svcs,
        svc("h", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
    )
    .await;
    assert_eq!(h["spec"]["clusterIP"], "None");
    let (_, e) = call(
        &st,
        Method::POST,
        svcs,
        svc(
            "e",
            json!({"type": "ExternalName", "externalName": "x.example.com"}),
        ),
    )
    .await;
    assert!(e["spec"].get("clusterIP").is_none(), "{e}");
    let (_, n) = call(
        &st,
        Method::POST,
        svcs,
        svc("n", json!({"type": "NodePort", "ports": [{"port": 80}]})),
    )
    .await;
    let port = n["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or(0);
    assert!((30000..=32767).contains(&port), "{n}");
    call(&st, Method::DELETE, &format!("{svcs}/a"), Value::Null).await;
    let (code, _) = call(
        &st,
        Method::POST,
        svcs,
        svc("b", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
    )
    .await;
    assert_eq!(code, 201, "the deleted service's IP is free again");
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let st = state();
    call(&st, Method::POST, PODS, pod("p")).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, s) = call(
        &st,
        Method::POST,
        &format!("{PODS}/p/binding"),
        binding.clone(),
    )
    .await;
    assert_eq!((code, s["status"].as_str()), (201, Some("Success")));
    let (_, p) = call(&st, Method::GET, &format!("{PODS}/p"), Value::Null).await;
    assert_eq!(p["spec"]["nodeName"], "n1");
    assert!(p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
    }));
    let (code, _) = call(&st, Method::POST, &format!("{PODS}/p/binding"), binding).await;
    assert_eq!(code, 409);
    call(&st, Method::POST, PODS, pod("q")).await;
    let stale = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "q", "uid": "other"},
                       "target": {"kind": "Node", "name": "n1"}});
    let (code, s) = call(&st, Method::POST, &format!("{PODS}/q/binding"), stale).await;
    assert_eq!(code, 409, "{s}");
    assert!(s["message"].as_str().is_some_and(|m| m.starts_with(
        "Operation cannot be fulfilled on pods \"q\": Precondition failed: UID in precondition: other, UID in object meta: "
    )), "{s}");
    let (_, q) = call(&st, Method::GET, &format!("{PODS}/q"), Value::Null).await;
    assert!(
        q["spec"].get("nodeName").is_none(),
        "the pod stays unbound: {q}"
    );
    // A bound pod is deleted gracefully; with grace 0 at once.
    let (_, pending) = call(&st, Method::DELETE, &format!("{PODS}/p"), Value::Null).await;
    assert_eq!(pending["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = call(
        &st,
        Method::DELETE,
        &format!("{PODS}/p?gracePeriodSeconds=0"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        call(&st, Method::GET, &format!("{PODS}/p"), Value::Null)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn kubelet_runs_pods_and_finishes_deletions() {
    let config = SimConfig {
        kubelet: Some(KubeletConfig {
            nodes: 2,
            start_delay: Duration::from_millis(10),
            ..KubeletConfig::default()
        }),
        ..SimConfig::default()
    };
    let st = state_with(config);
    crate::kubelet::spawn(&st);
    let nodes_ready = eventually(Duration::from_secs(5), async || {
        let (_, nodes) = call(&st, Method::GET, "/api/v1/nodes", Value::Null).await;
        nodes["items"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    assert!(nodes_ready);
    let (code, lease) = call(
        &st,
        Method::GET,
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{lease}");
    call(&st, Method::POST, PODS, pod("a")).await;
    call(&st, Method::POST, PODS, pod("b")).await;
    let running = eventually(Duration::from_secs(5), async || {
        let (_, pods) = call(&st, Method::GET, PODS, Value::Null).await;
        pods["items"].as_array().is_some_and(|items| {
            items.len() == 2 && items.iter().all(|p| p["status"]["phase"] == "Running")
        })
    })
    .await;
    assert!(running);
    let (_, pods) = call(&st, Method::GET, PODS, Value::Null).await;
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    let nodes: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert_eq!(nodes.len(), 2, "round-robin over the nodes: {pods}");
    for p in &items {
        assert!(
            p["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.244.")),
            "{p}"
        );
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        assert!(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].is_string());
    }
    let (code, pending) = call(&st, Method::DELETE, &format!("{PODS}/a"), Value::Null).await;
    assert_eq!(code, 200);
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    let gone = eventually(Duration::from_secs(5), async || {
        call(&st, Method::GET, &format!("{PODS}/a"), Value::Null)
            .await
            .0
            == 404
    })
    .await;
    assert!(gone, "the kubelet finishes graceful deletions");
}

#[tokio::test]
async fn crds_serve_custom_resources() {
    let st = state();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}},
                                   "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}}}]},
    });
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    assert_eq!(call(&st, Method::POST, crds, crd).await.0, 201);
    let (_, got) = call(
        &st,
        Method::GET,
        &format!("{crds}/widgets.example.com"),
        Value::Null,
    )
    .await;
    let conditions = got["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|c| c["type"] == t && c["status"] == "True"),
            "{got}"
        );
    }
    assert_eq!(got["status"]["acceptedNames"]["kind"], "Widget");
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"ok": true}});
    let (code, created) = call(&st, Method::POST, widgets, w).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(
        created.get("status").is_none(),
        "status is dropped on create with a status subresource"
    );
    let (_, updated) = call(
        &st,
        Method::PATCH,
        &format!("{widgets}/w"),
        json!({"spec": {"size": 2, "unknown": true}}),
    )
    .await;
    assert_eq!(
        updated["spec"],
        json!({"size": 2}),
        "unknown fields are pruned"
    );
    let (code, bad) = call(
        &st,
        Method::PATCH,
        &format!("{widgets}/w"),
        json!({"spec": {"size": 0}}),
    )
    .await;
    assert_eq!(
        (code, bad["reason"].as_str()),
        (422, Some("Invalid")),
        "{bad}"
    );
    assert_eq!(
        bad["message"],
        "Widget.example.com \"w\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
    assert_eq!(updated["metadata"]["generation"], 2, "{updated} {created}");
    let smp = crate::handlers::handle(
        &st,
        crate::handlers::ApiRequest {
            method: Method::PATCH,
            path: match crate::routing::route(&format!("{widgets}/w")) {
                crate::routing::Route::Resource(p) => p,
                other => panic!("{other:?}"),
            },
            query: Default::default(),
            content_type: Some("application/strategic-merge-patch+json".into()),
            accept: None,
            body: bytes::Bytes::from_static(b"{}"),
        },
    )
    .await;
    assert_eq!(smp.status().as_u16(), 415);
    let (code, _) = call(
        &st,
        Method::PATCH,
        &format!("{crds}/widgets.example.com"),
        json!({"spec": {"names": "not-an-object"}}),
    )
    .await;
    assert_eq!(code, 422, "CRD updates are validated too");
    assert_eq!(
        call(
            &st,
            Method::DELETE,
            &format!("{crds}/widgets.example.com"),
            Value::Null
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&st, Method::GET, widgets, Value::Null).await.0,
        404,
        "the type is no longer served"
    );
    assert!(
        st.store.keys("example.com/widgets", None).is_empty(),
        "custom resources are deleted with the CRD"
    );
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let st = state();
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let mut o = cm(name);
        o["metadata"]["labels"] = json!({"app": app});
        call(&st, Method::POST, CMS, o).await;
    }
    let (code, deleted) = call(
        &st,
        Method::DELETE,
        &format!("{CMS}?labelSelector=app%3Dweb"),
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(deleted["items"].as_array().map(Vec::len), Some(2));
    let (_, left) = call(&st, Method::GET, CMS, Value::Null).await;
    assert_eq!(left["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        call(&st, Method::DELETE, "/api/v1/namespaces", Value::Null)
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn pod_updates_may_only_change_the_allowed_fields() {
    let st = state();
    let (_, p) = call(&st, Method::POST, PODS, pod("p")).await;
    assert_eq!(
        p["spec"]["restartPolicy"], "Always",
        "defaults are applied: {p}"
    );
    let (code, _) = call(
        &st,
        Method::PATCH,
        &format!("{PODS}/p"),
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, s) = call(
        &st,
        Method::PATCH,
        &format!("{PODS}/p"),
        json!({"spec": {"nodeName": "elsewhere"}}),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert_eq!(s["details"]["causes"][0]["field"], "spec");
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("pod updates may not change fields")),
        "{s}"
    );
    // Replacing the object with defaulted fields left out is not a change to them.
    let (_, mut replaced) = call(&st, Method::GET, &format!("{PODS}/p"), Value::Null).await;
    replaced["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    if let Some(c) = replaced["spec"]["containers"][0].as_object_mut() {
        c.remove("terminationMessagePath");
    }
    let (code, updated) = call(&st, Method::PUT, &format!("{PODS}/p"), replaced).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(
        updated["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
}

#[tokio::test]
async fn service_updates_keep_allocated_addresses() {
    let st = state();
    let svcs = "/api/v1/namespaces/default/services";
    let spec = json!({"type": "NodePort", "ports": [{"port": 80}]});
    let svc =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec});
    let (_, created) = call(&st, Method::POST, svcs, svc.clone()).await;
    let mut labelled = svc.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let (code, updated) = call(&st, Method::PUT, &format!("{svcs}/s"), labelled).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["spec"]["clusterIP"], created["spec"]["clusterIP"]);
    assert_eq!(
        updated["spec"]["ports"][0]["nodePort"],
        created["spec"]["ports"][0]["nodePort"]
    );
    assert_eq!(updated["status"], created["status"]);
    let mut moved = svc;
    moved["spec"]["clusterIP"] = json!("10.96.0.99");
    assert_eq!(
        call(&st, Method::PUT, &format!("{svcs}/s"), moved).await.0,
        422
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_leases_are_created_by_put() {
    let st = state();
    let (_, a) = call(&st, Method::POST, CMS, cm("a")).await;
    let before = st.store.revision();
    let (code, preview) = call(
        &st,
        Method::PATCH,
        &format!("{CMS}/a?dryRun=All"),
        json!({"data": {"a": "9"}}),
    )
    .await;
    assert_eq!((code, preview["data"]["a"].as_str()), (200, Some("9")));
    assert_eq!(rv(&preview), rv(&a));
    let (code, _) = call(&st, Method::POST, &format!("{CMS}?dryRun=All"), cm("b")).await;
    assert_eq!(code, 201);
    assert_eq!(st.store.revision(), before, "dry runs write nothing");
    assert_eq!(
        call(&st, Method::GET, &format!("{CMS}/b"), Value::Null)
            .await
            .0,
        404
    );
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}});
    assert_eq!(
        call(&st, Method::PUT, &format!("{leases}/l"), lease)
            .await
            .0,
        201,
        "leases allow create on update"
    );
    assert_eq!(
        call(&st, Method::PUT, &format!("{CMS}/zz"), cm("zz"))
            .await
            .0,
        404,
        "secrets do not"
    );
}

#[tokio::test]
async fn namespaces_get_a_default_service_account_that_pods_use() {
    let st = state();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    call(&st, Method::POST, "/api/v1/namespaces", ns).await;
    let (code, _) = call(
        &st,
        Method::GET,
        "/api/v1/namespaces/team/serviceaccounts/default",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    let (code, ca) = call(
        &st,
        Method::GET,
        "/api/v1/namespaces/team/configmaps/kube-root-ca.crt",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        ca["data"]["ca.crt"]
            .as_str()
            .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
    );
    let team_pods = "/api/v1/namespaces/team/pods";
    let (code, p) = call(&st, Method::POST, team_pods, pod("p")).await;
    assert_eq!(code, 201, "{p}");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    let volume = p["spec"]["volumes"][0]["name"].as_str().unwrap_or("");
    assert!(
        volume.starts_with("kube-api-access-") && volume.len() == "kube-api-access-".len() + 5,
        "{p}"
    );
    let mount = &p["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(
        (mount["name"].as_str(), mount["mountPath"].as_str()),
        (Some(volume), Some(super::admission::TOKEN_MOUNT_PATH))
    );
    let tolerations = p["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/not-ready" && t["tolerationSeconds"] == 300)
    );
    let mut no_token = pod("q");
    no_token["spec"]["automountServiceAccountToken"] = json!(false);
    let (_, q) = call(&st, Method::POST, team_pods, no_token).await;
    assert!(q["spec"].get("volumes").is_none(), "{q}");
    let mut missing_sa = pod("r");
    missing_sa["spec"]["serviceAccountName"] = json!("builder");
    let (code, s) = call(&st, Method::POST, team_pods, missing_sa).await;
    assert_eq!(code, 403);
    assert_eq!(
        s["message"],
        "pods \"r\" is forbidden: error looking up service account team/builder: serviceaccount \"builder\" not found"
    );
}

#[tokio::test]
async fn a_recreated_namespace_starts_with_only_its_defaults() {
    let st = state();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "again"}});
    call(&st, Method::POST, "/api/v1/namespaces", ns.clone()).await;
    let cms = "/api/v1/namespaces/again/configmaps";
    let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old"}});
    assert_eq!(call(&st, Method::POST, cms, old).await.0, 201);
    call(&st, Method::DELETE, "/api/v1/namespaces/again", Value::Null).await;
    let gone = eventually(Duration::from_secs(5), async || {
        call(&st, Method::GET, "/api/v1/namespaces/again", Value::Null)
            .await
            .0
            == 404
    })
    .await;
    assert!(gone);
    assert!(
        st.store.keys("/configmaps", Some("again")).is_empty(),
        "contents go before the namespace"
    );
    call(&st, Method::POST, "/api/v1/namespaces", ns).await;
    let (_, list) = call(&st, Method::GET, cms, Value::Null).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, vec!["kube-root-ca.crt"]);
}

#[tokio::test]
async fn a_patch_must_leave_an_object() {
    let st = state();
    call(&st, Method::POST, CMS, cm("a")).await;
    let resp = crate::handlers::handle(
        &st,
        crate::handlers::ApiRequest {
            method: Method::PATCH,
            path: match crate::routing::route(&format!("{CMS}/a")) {
                crate::routing::Route::Resource(p) => p,
                other => panic!("{other:?}"),
            },
            query: Default::default(),
            content_type: Some("application/json-patch+json".into()),
            accept: None,
            body: bytes::Bytes::from_static(br#"[{"op": "replace", "path": "", "value": 5}]"#),
        },
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        call(&st, Method::GET, &format!("{CMS}/a"), Value::Null)
            .await
            .1["data"]["a"],
        "MQ=="
    );
}
