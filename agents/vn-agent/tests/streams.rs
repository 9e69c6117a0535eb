//! Streaming verbs through the agent (exec, attach, port forwarding as WebSocket and raw SPDY-style upgrades),
//! `/run`, `/pods`, refusals, disconnect propagation, backpressure, metrics, and the API-server forwarding
//! mode against a fake HTTPS API server.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    AGENT_TOKEN, Channels, Mode, Rig, Tenant, channel_message, location, metric, read_channels,
    text, wait_for,
};
use futures::{SinkExt, StreamExt};
use http_body_util::{Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

const V5: &str = "v5.channel.k8s.io";

fn long_namespace() -> String {
    format!("ns-{}", "y".repeat(57))
}

/// `exec -- echo hi` on pod `web` (container `app`) of namespace `ns` over WebSocket v5, read to the end.
async fn exec_echo_hi(rig: &Rig, id: Option<(&str, &str)>, ns: &str) -> Channels {
    let (mut ws, _) = rig
        .ws(
            id,
            &format!("/exec/{ns}/web/app?command=echo&command=hi&output=1&error=1"),
            V5,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read_channels(&mut ws).await
}

/// Status of a refused WebSocket upgrade.
async fn ws_status(rig: &Rig, id: Option<(&str, &str)>, path: &str, proto: &str) -> u16 {
    match rig.ws(id, path, proto).await {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("{path}: unexpected error {other}"),
        Ok(_) => panic!("{path}: upgrade unexpectedly accepted"),
    }
}

fn headers_seen(rig: &Rig) -> Vec<http::HeaderMap> {
    rig.kubelet.headers.lock().clone()
}

#[tokio::test]
async fn exec_echo_over_websocket_in_a_long_namespace() {
    let a = Tenant::new("stream-a", "uid-a");
    let ns = long_namespace();
    let pod = location(&a.key, &ns, "web", "n1");
    let rig = Rig::start(&[&a], vec![pod.clone()]).await;

    let tls = rig.connect(a.id()).await;
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "wss://localhost/exec/{ns}/web/app?command=echo&command=hi&output=1&error=1&bogus=1"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let h = request.headers_mut();
    h.insert("sec-websocket-protocol", http::HeaderValue::from_static(V5));
    h.insert(
        "authorization",
        http::HeaderValue::from_static("Bearer tenant-secret"),
    );
    h.insert("x-remote-user", http::HeaderValue::from_static("admin"));
    let (mut ws, resp) = tokio_tungstenite::client_async(request, tls)
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(V5.as_bytes()),
        "the kubelet's subprotocol is answered"
    );
    let out = read_channels(&mut ws).await;
    assert_eq!(out.stdout, "hi\n");
    assert!(out.status.contains("Success"), "{out:?}");
    assert!(out.closed, "closed by the kubelet");

    assert_eq!(
        rig.kubelet.paths.lock().clone(),
        vec![format!(
            "/exec/{}/web/app?command=echo&command=hi&output=1&error=1",
            pod.super_namespace
        )]
    );
    let seen = &headers_seen(&rig)[0];
    assert!(
        seen.get("authorization").is_none(),
        "caller credentials stay behind"
    );
    assert!(seen.get("x-remote-user").is_none());
    assert_eq!(
        seen.get("upgrade").map(|v| v.as_bytes()),
        Some(&b"websocket"[..])
    );
    assert!(seen.get("sec-websocket-key").is_some());
}

#[tokio::test]
async fn exec_stdin_is_echoed_and_attach_uses_the_super_uid() {
    let a = Tenant::new("stream-a", "uid-a");
    let pod = location(&a.key, "default", "web", "n1");
    let rig = Rig::start(&[&a], vec![pod.clone()]).await;

    let (mut ws, _) = rig
        .ws(
            a.id(),
            "/exec/default/web/app?command=cat&input=1&output=1",
            V5,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for line in ["hello\n", "world\n"] {
        ws.send(channel_message(0, line.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Ok(Message::Binary(echo))) = ws.next().await else {
            panic!("no echo")
        };
        assert_eq!(&echo[..], [&[1u8][..], line.as_bytes()].concat().as_slice());
    }
    // v5: close stdin; the command ends with a success status.
    ws.send(Message::Binary(vec![255u8, 0].into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = read_channels(&mut ws).await;
    assert!(out.status.contains("Success"), "{out:?}");

    // Attach by tenant UID: forwarded with the super UID.
    let (mut ws, _) = rig
        .ws(
            a.id(),
            "/attach/default/web/web-tenant-uid/app?input=1&output=1&command=x",
            V5,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws.send(channel_message(0, b"attached\n"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(Ok(Message::Binary(echo))) = ws.next().await else {
        panic!("no echo")
    };
    assert_eq!(&echo[1..], b"attached\n");
    ws.send(Message::Binary(vec![255u8, 0].into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(read_channels(&mut ws).await.status.contains("Success"));
    assert_eq!(
        rig.kubelet.paths.lock().last().cloned(),
        Some(format!(
            "/attach/{}/web/web-super-uid/app?input=1&output=1",
            pod.super_namespace
        ))
    );

    // A UID that is not the pod's: refused, nothing forwarded.
    let before = rig.kubelet.paths.lock().len();
    assert_eq!(
        ws_status(
            &rig,
            a.id(),
            "/attach/default/web/other-uid/app?output=1",
            V5
        )
        .await,
        404
    );
    assert_eq!(rig.kubelet.paths.lock().len(), before);
}

#[tokio::test]
async fn port_forward_echoes_the_data_stream() {
    let a = Tenant::new("stream-a", "uid-a");
    let pod = location(&a.key, "default", "web", "n1");
    let rig = Rig::start(&[&a], vec![pod.clone()]).await;

    let (mut ws, resp) = rig
        .ws(
            a.id(),
            "/portForward/default/web?port=8080",
            "portforward.k8s.io",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"portforward.k8s.io"[..])
    );
    // The kubelet announces the port on the data and error channels.
    for channel in [0u8, 1] {
        let Some(Ok(Message::Binary(m))) = ws.next().await else {
            panic!("no announcement")
        };
        assert_eq!(&m[..], &[channel, 0x90, 0x1f]);
    }
    let payload = vec![7u8; 100_000];
    ws.send(channel_message(0, &payload))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(Ok(Message::Binary(echo))) = ws.next().await else {
        panic!("no echo")
    };
    assert_eq!(echo[0], 0);
    assert_eq!(&echo[1..], payload.as_slice());
    assert_eq!(
        rig.kubelet.paths.lock().clone(),
        vec![format!(
            "/portForward/{}/web?port=8080",
            pod.super_namespace
        )]
    );
}

#[tokio::test]
async fn spdy_style_upgrade_is_spliced_without_parsing() {
    let a = Tenant::new("stream-a", "uid-a");
    let pod = location(&a.key, "default", "web", "n1");
    let rig = Rig::start(&[&a], vec![pod]).await;

    let req = http::Request::post("/exec/default/web/app?command=sh&input=1&output=1")
        .header(http::header::HOST, "localhost")
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .header("x-stream-protocol-version", "channel.k8s.io")
        .header(http::header::AUTHORIZATION, "Bearer tenant-secret")
        .body(Empty::<Bytes>::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut resp = rig.send(a.id(), req).await;
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        resp.headers()
            .get("x-stream-protocol-version")
            .map(|v| v.as_bytes()),
        Some(&b"v4.channel.k8s.io"[..])
    );
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut io = TokioIo::new(upgraded);
    io.write_all(b"\x80\x03\x00\x01 not really spdy")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 20];
    io.read_exact(&mut buf)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&buf, b"\x80\x03\x00\x01 not really spdy");

    let seen = &headers_seen(&rig)[0];
    assert_eq!(
        seen.get_all("x-stream-protocol-version").iter().count(),
        2,
        "every offered protocol version passes"
    );
    assert!(seen.get("authorization").is_none());
}

#[tokio::test]
async fn run_returns_the_output_and_non_upgrade_answers_pass_through() {
    let a = Tenant::new("stream-a", "uid-a");
    let pod = location(&a.key, "default", "web", "n1");
    let rig = Rig::start(&[&a], vec![pod.clone()]).await;

    let resp = rig
        .post(a.id(), "/run/default/web/app?cmd=echo+hi+there")
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "hi there\n");
    // The kubelet also reads `cmd` from a form body (`curl -d cmd=…`): it is moved to the query.
    let req = http::Request::post("/run/default/web/app")
        .header(http::header::HOST, "localhost")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from_static(b"cmd=echo+from+form&evil=1")))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = rig.send_body(a.id(), req).await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "from form\n");
    // exec without an upgrade: the kubelet's 400 comes back as is.
    let resp = rig.get(a.id(), "/exec/default/web/app?command=ls").await;
    assert_eq!(resp.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(text(resp).await, "Upgrade request required");
    assert_eq!(
        rig.kubelet.paths.lock().clone(),
        vec![
            format!("/run/{}/web/app?cmd=echo+hi+there", pod.super_namespace),
            format!("/run/{}/web/app?cmd=echo+from+form", pod.super_namespace),
            format!("/exec/{}/web/app?command=ls", pod.super_namespace),
        ]
    );
}

#[tokio::test]
async fn pods_lists_only_the_callers_pods_on_this_node() {
    let a = Tenant::new("stream-a", "uid-a");
    let b = Tenant::new("stream-b", "uid-b");
    let rig = Rig::start(
        &[&a, &b],
        vec![
            location(&a.key, "default", "web", "n1"),
            location(&a.key, "tools", "debug", "n1"),
            location(&a.key, "default", "far", "n2"),
            location(&b.key, "default", "db", "n1"),
        ],
    )
    .await;

    let resp = rig.get(a.id(), "/pods").await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    let list: serde_json::Value =
        serde_json::from_str(&text(resp).await).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["kind"], "PodList");
    let mut names: Vec<(String, String, String)> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {list}"))
        .iter()
        .map(|p| {
            let m = &p["metadata"];
            (
                m["namespace"].as_str().unwrap_or_default().to_string(),
                m["name"].as_str().unwrap_or_default().to_string(),
                m["uid"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("default".into(), "web".into(), "web-tenant-uid".into()),
            ("tools".into(), "debug".into(), "debug-tenant-uid".into()),
        ],
        "tenant names, this node only, nothing of tenant B"
    );
    let calls = rig.fake.pods_on_node_calls.lock().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].cluster_key.as_str(), calls[0].node_name.as_str()),
        (a.key.as_str(), "n1")
    );

    let resp = rig.get(b.id(), "/pods").await;
    let list: serde_json::Value =
        serde_json::from_str(&text(resp).await).unwrap_or_else(|e| panic!("{e}"));
    let items = list["items"].as_array().unwrap_or_else(|| panic!("{list}"));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "db");

    assert_eq!(
        rig.get(None, "/pods").await.status(),
        http::StatusCode::UNAUTHORIZED
    );
    assert!(
        rig.kubelet.paths.lock().is_empty(),
        "/pods never reaches the kubelet"
    );
}

#[tokio::test]
async fn every_verb_refuses_strangers_and_other_tenants() {
    let a = Tenant::new("stream-a", "uid-a");
    let b = Tenant::new("stream-b", "uid-b");
    let rig = Rig::start(
        &[&a, &b],
        vec![
            location(&a.key, "default", "web", "n1"),
            location(&b.key, "default", "db", "n1"),
        ],
    )
    .await;
    let rogue =
        tenancy_proto::pki::CertificateAuthority::generate().unwrap_or_else(|e| panic!("{e}"));
    let forged = rogue.issue_client(&a.key).unwrap_or_else(|e| panic!("{e}"));
    let forged_id = Some((forged.cert_pem.as_str(), forged.key_pem.as_str()));

    let upgrades = [
        ("/exec/default/web/app?command=echo&command=hi&output=1", V5),
        ("/attach/default/web/app?output=1", V5),
        ("/portForward/default/web?port=80", "portforward.k8s.io"),
    ];
    for (path, proto) in upgrades {
        assert_eq!(ws_status(&rig, None, path, proto).await, 401, "{path}");
        assert_eq!(ws_status(&rig, forged_id, path, proto).await, 401, "{path}");
        // B has no pod default/web: A's pod is not reachable for B.
        assert_eq!(ws_status(&rig, b.id(), path, proto).await, 403, "{path}");
    }
    let run = |id| rig.post(id, "/run/default/web/app?cmd=echo+hi");
    assert_eq!(run(None).await.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        run(forged_id).await.status(),
        http::StatusCode::UNAUTHORIZED
    );
    assert_eq!(run(b.id()).await.status(), http::StatusCode::FORBIDDEN);
    // Unknown verbs and methods.
    assert_eq!(
        rig.get(a.id(), "/run/default/web/app?cmd=ls")
            .await
            .status(),
        http::StatusCode::NOT_FOUND
    );
    assert_eq!(
        rig.get(a.id(), "/exec/default/web").await.status(),
        http::StatusCode::NOT_FOUND
    );
    assert!(
        rig.kubelet.paths.lock().is_empty(),
        "nothing forwarded: {:?}",
        rig.kubelet.paths.lock()
    );
}

#[tokio::test]
async fn a_disconnect_on_either_side_closes_the_other() {
    let a = Tenant::new("stream-a", "uid-a");
    let rig = Rig::start(&[&a], vec![location(&a.key, "default", "web", "n1")]).await;

    // The caller goes away (no close handshake): the kubelet side is closed.
    let (ws, _) = rig
        .ws(a.id(), "/exec/default/web/app?command=sleep&input=1", V5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("kubelet stream open", || {
        rig.kubelet.streams_opened.load(Ordering::SeqCst) == 1
    })
    .await;
    let left = Instant::now();
    drop(ws);
    wait_for("kubelet side closed", || {
        rig.kubelet.streams_closed.load(Ordering::SeqCst) == 1
    })
    .await;
    println!(
        "kubelet side closed {:?} after the caller left",
        left.elapsed()
    );

    // The kubelet drops its connection without a close handshake: the caller's stream ends.
    let (mut ws, _) = rig
        .ws(a.id(), "/exec/default/web/app?command=drop&output=1", V5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        let mut stdout = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(data) = msg {
                stdout.extend_from_slice(&data[1..]);
            }
        }
        stdout
    })
    .await
    .unwrap_or_else(|_| panic!("caller stream still open a minute after the kubelet left"));
    assert_eq!(ended, b"bye\n");
}

#[tokio::test]
async fn a_caller_that_does_not_read_stalls_the_kubelet() {
    let a = Tenant::new("stream-a", "uid-a");
    let rig = Rig::start(&[&a], vec![location(&a.key, "default", "web", "n1")]).await;

    let (mut ws, _) = rig
        .ws(a.id(), "/exec/default/web/app?command=flood&output=1", V5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait until the kubelet's writes stop making progress (stable for a second).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = rig.kubelet.flood_written.load(Ordering::SeqCst);
    let mut since = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "kubelet never stalled: {last} bytes written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = rig.kubelet.flood_written.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if last > 0 && since.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    println!("kubelet stalled after {last} bytes");
    const BOUND: u64 = 64 << 20;
    assert!(last < BOUND, "{last} bytes in flight: the agent buffers");
    // Reading resumes the kubelet's writes.
    let mut read = 0u64;
    while rig.kubelet.flood_written.load(Ordering::SeqCst) < last + (1 << 20) {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => read += data.len() as u64,
            other => panic!("stream ended: {other:?}"),
        }
    }
    assert!(read > 0);
}

#[tokio::test]
async fn metrics_count_requests_streams_and_bytes() {
    common::metrics();
    let a = Tenant::new("metrics-a", "uid-m");
    let b = Tenant::new("metrics-b", "uid-m");
    let rig = Rig::start(&[&a, &b], vec![location(&a.key, "default", "web", "n1")]).await;
    let down_before = metric(
        "vn_agent_bytes_proxied_total",
        &[("verb", "exec"), ("direction", "down")],
    );
    let up_before = metric(
        "vn_agent_bytes_proxied_total",
        &[("verb", "exec"), ("direction", "up")],
    );

    let (mut ws, _) = rig
        .ws(
            a.id(),
            "/exec/default/web/app?command=cat&input=1&output=1",
            V5,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("stream in flight", || {
        metric(
            "vn_agent_streams_in_flight",
            &[("tenant", &a.key), ("verb", "exec")],
        ) == 1.0
    })
    .await;
    ws.send(channel_message(0, b"0123456789"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = ws.next().await;
    ws.send(Message::Binary(vec![255u8, 0].into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = read_channels(&mut ws).await;
    assert!(out.status.contains("Success"));
    drop(ws);
    wait_for("stream no longer in flight", || {
        metric(
            "vn_agent_streams_in_flight",
            &[("tenant", &a.key), ("verb", "exec")],
        ) == 0.0
    })
    .await;
    assert_eq!(
        ws_status(&rig, b.id(), "/exec/default/web/app?output=1", V5).await,
        403
    );

    let count = |tenant: &str, outcome: &str| {
        metric(
            "vn_agent_requests_total",
            &[("tenant", tenant), ("verb", "exec"), ("outcome", outcome)],
        )
    };
    assert_eq!(count(&a.key, "ok"), 1.0);
    assert_eq!(count(&b.key, "forbidden"), 1.0);
    assert_eq!(count(&a.key, "forbidden"), 0.0);
    // Frames of 11 bytes of stdin (+ WebSocket framing) went up; the echo and the status came down.
    let down = metric(
        "vn_agent_bytes_proxied_total",
        &[("verb", "exec"), ("direction", "down")],
    );
    let up = metric(
        "vn_agent_bytes_proxied_total",
        &[("verb", "exec"), ("direction", "up")],
    );
    assert!(down >= down_before + 11.0 + 30.0, "{down_before} -> {down}");
    assert!(up >= up_before + 11.0, "{up_before} -> {up}");
}

#[tokio::test]
async fn apiserver_mode_maps_to_pod_subresources() {
    let a = Tenant::new("stream-a", "uid-a");
    let ns = long_namespace();
    let pod = location(&a.key, &ns, "web", "n1");
    let rig = Rig::start_mode(&[&a], vec![pod.clone()], Mode::ApiServer).await;
    let sns = &pod.super_namespace;

    let resp = rig
        .get(
            a.id(),
            &format!("/containerLogs/{ns}/web/app?tailLines=2&evil=1"),
        )
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "line 1\nline 2\n");

    let out = exec_echo_hi(&rig, a.id(), &ns).await;
    assert_eq!(out.stdout, "hi\n");
    assert!(out.status.contains("Success"));

    let (mut ws, _) = rig
        .ws(
            a.id(),
            &format!("/portForward/{ns}/web?port=8080"),
            "portforward.k8s.io",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(Ok(Message::Binary(m))) = ws.next().await else {
        panic!("no announcement")
    };
    assert_eq!(&m[..], &[0, 0x90, 0x1f]);

    // /run has no API-server subresource: it runs through pods/exec and answers the collected output.
    let resp = rig
        .post(a.id(), &format!("/run/{ns}/web/app?cmd=echo+run%20me"))
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "run me\n");
    let resp = rig
        .post(a.id(), &format!("/run/{ns}/web/app?cmd=false"))
        .await;
    assert_eq!(resp.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(resp).await.contains("Failure"));

    // A followed log streams through the API server; the caller leaving closes the upstream stream.
    let resp = rig
        .get(a.id(), &format!("/containerLogs/{ns}/web/app?follow=true"))
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    let mut body = resp.into_body();
    let got = common::read_lines(&mut body, 3).await;
    assert!(got.starts_with("line 1\nline 2\nline 3\n"), "{got:?}");
    assert!(!rig.kubelet.follow_closed.load(Ordering::SeqCst));
    drop(body);
    rig.wait_for("API server log stream closed after the caller left", || {
        rig.kubelet.follow_closed.load(Ordering::SeqCst)
    })
    .await;

    assert_eq!(
        rig.kubelet.paths.lock().clone(),
        vec![
            format!("/api/v1/namespaces/{sns}/pods/web/log?container=app&tailLines=2"),
            format!(
                "/api/v1/namespaces/{sns}/pods/web/exec?container=app&command=echo&command=hi&stdout=1&stderr=1"
            ),
            format!("/api/v1/namespaces/{sns}/pods/web/portforward?ports=8080"),
            format!(
                "/api/v1/namespaces/{sns}/pods/web/exec?container=app&command=echo&command=run&command=me&stdout=1&stderr=1"
            ),
            format!(
                "/api/v1/namespaces/{sns}/pods/web/exec?container=app&command=false&stdout=1&stderr=1"
            ),
            format!("/api/v1/namespaces/{sns}/pods/web/log?container=app&follow=true"),
        ]
    );
    for headers in headers_seen(&rig) {
        assert_eq!(
            headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {AGENT_TOKEN}").as_str()),
            "the agent's own credentials"
        );
    }
}

#[tokio::test]
async fn apiserver_mode_through_the_simulator_reaches_the_kubelet() {
    let a = Tenant::new("stream-a", "uid-a");
    let ns = long_namespace();
    let pod = location(&a.key, &ns, "web", "n1");
    let rig = Rig::start_mode(&[&a], vec![pod.clone()], Mode::Simulator).await;
    let sns = &pod.super_namespace;

    let resp = rig
        .get(a.id(), &format!("/containerLogs/{ns}/web/app?tailLines=2"))
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "line 1\nline 2\n");

    let out = exec_echo_hi(&rig, a.id(), &ns).await;
    assert_eq!(out.stdout, "hi\n");
    assert!(out.status.contains("Success"), "{out:?}");

    // /run as an exec through the simulator.
    let resp = rig
        .post(a.id(), &format!("/run/{ns}/web/app?cmd=echo+via+exec"))
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "via exec\n");

    // What reached the kubelet went agent → simulator pods/{log,exec} → kubelet, under super names.
    let paths = rig.kubelet.paths.lock().clone();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths[2].starts_with(&format!("/exec/{sns}/web/app?")),
        "{paths:?}"
    );
    assert!(
        paths[0].starts_with(&format!("/containerLogs/{sns}/web/app?"))
            && paths[0].contains("tailLines=2"),
        "{paths:?}"
    );
    assert!(
        paths[1].starts_with(&format!("/exec/{sns}/web/app?")),
        "{paths:?}"
    );
    for part in ["command=echo", "command=hi", "output=1", "error=1"] {
        assert!(paths[1].contains(part), "{part} in {paths:?}");
    }
}
