//! Logs through the agent: verified mTLS identity, translation from the (in-test) Translation service,
//! forwarding to a simulated kubelet over mutual TLS, streaming and refusals.

mod common;

use std::sync::atomic::Ordering;

use common::{Rig, Tenant, location, read_lines, text};
use tenancy_proto::v1::translation_event::Event;

fn long_namespace() -> String {
    // 60 characters: "<clusterKey>-<ns>" is far over 63, so the super namespace is the hashed form.
    format!("ns-{}", "x".repeat(57))
}

fn id(t: &Tenant) -> Option<(&str, &str)> {
    Some((t.cert.cert_pem.as_str(), t.cert.key_pem.as_str()))
}

#[tokio::test]
async fn logs_of_own_pod_are_forwarded_under_super_names() {
    let a = Tenant::new("team-a", "uid-a");
    let ns = long_namespace();
    let pod = location(&a.key, &ns, "web", "n1");
    assert_eq!(
        pod.super_namespace.chars().count(),
        63,
        "long namespace hashed to 63 characters"
    );
    let rig = Rig::start(&[&a], vec![pod.clone()]).await;

    let resp = rig
        .get(
            id(&a),
            &format!("/containerLogs/{ns}/web/app?tailLines=2&bogus=1&timestamps=true"),
        )
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(text(resp).await, "line 1\nline 2\n");
    let seen = rig.kubelet.paths.lock().clone();
    assert_eq!(
        seen,
        vec![format!(
            "/containerLogs/{}/web/app?tailLines=2&timestamps=true",
            pod.super_namespace
        )],
        "only the translated path and allowed parameters reach the kubelet"
    );
    assert_eq!(rig.translator.cached(), 1);
}

#[tokio::test]
async fn follow_streams_and_a_caller_disconnect_closes_the_kubelet_stream() {
    let a = Tenant::new("team-a", "uid-a");
    let pod = location(&a.key, "default", "web", "n1");
    let rig = Rig::start(&[&a], vec![pod]).await;

    let resp = rig
        .get(id(&a), "/containerLogs/default/web/app?follow=true")
        .await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    let mut body = resp.into_body();
    let got = read_lines(&mut body, 3).await;
    assert!(got.starts_with("line 1\nline 2\nline 3\n"), "{got:?}");
    assert!(
        !rig.kubelet.follow_closed.load(Ordering::SeqCst),
        "still streaming"
    );
    drop(body);
    rig.wait_for("kubelet stream closed after the caller left", || {
        rig.kubelet.follow_closed.load(Ordering::SeqCst)
    })
    .await;
}

#[tokio::test]
async fn refused_callers_never_reach_the_kubelet() {
    let a = Tenant::new("team-a", "uid-a");
    let b = Tenant::new("team-b", "uid-b");
    let pod_a = location(&a.key, "default", "web", "n1");
    let pod_b = location(&b.key, "default", "db", "n1");
    let elsewhere = location(&a.key, "default", "far", "n2");
    let rig = Rig::start(&[&a, &b], vec![pod_a, pod_b, elsewhere]).await;

    // No certificate.
    let resp = rig.get(None, "/containerLogs/default/web/app").await;
    assert_eq!(resp.status(), http::StatusCode::UNAUTHORIZED);
    // A certificate naming tenant A signed by an unregistered CA.
    let rogue =
        tenancy_proto::pki::CertificateAuthority::generate().unwrap_or_else(|e| panic!("{e}"));
    let forged = rogue.issue_client(&a.key).unwrap_or_else(|e| panic!("{e}"));
    let resp = rig
        .get(
            Some((&forged.cert_pem, &forged.key_pem)),
            "/containerLogs/default/web/app",
        )
        .await;
    assert_eq!(resp.status(), http::StatusCode::UNAUTHORIZED);
    // A certificate naming tenant A signed by tenant B's CA.
    let cross = b.ca.issue_client(&a.key).unwrap_or_else(|e| panic!("{e}"));
    let resp = rig
        .get(
            Some((&cross.cert_pem, &cross.key_pem)),
            "/containerLogs/default/web/app",
        )
        .await;
    assert_eq!(resp.status(), http::StatusCode::UNAUTHORIZED);
    // Tenant B asking for tenant A's pod (B has no pod default/web).
    let resp = rig.get(id(&b), "/containerLogs/default/web/app").await;
    assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
    // Tenant A's pod on another node.
    let resp = rig.get(id(&a), "/containerLogs/default/far/app").await;
    assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
    // Paths the agent does not serve.
    for path in [
        "/containerLogs/default/web",
        "/configz",
        "/containerLogs/default/../web/app",
    ] {
        let resp = rig.get(id(&a), path).await;
        assert_eq!(resp.status(), http::StatusCode::NOT_FOUND, "{path}");
    }
    assert!(
        rig.kubelet.paths.lock().is_empty(),
        "nothing forwarded: {:?}",
        rig.kubelet.paths.lock()
    );

    // B's own pod works with B's certificate.
    let resp = rig.get(id(&b), "/containerLogs/default/db/app").await;
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(rig.kubelet.paths.lock().len(), 1);
}

#[tokio::test]
async fn tenants_follow_the_watch_stream() {
    let a = Tenant::new("team-a", "uid-a");
    let c = Tenant::new("team-c", "uid-c");
    let pod_a = location(&a.key, "default", "web", "n1");
    let pod_c = location(&c.key, "default", "web", "n1");
    let rig = Rig::start(&[&a], vec![pod_a, pod_c]).await;

    // C is not registered yet.
    assert_eq!(
        rig.get(id(&c), "/containerLogs/default/web/app")
            .await
            .status(),
        http::StatusCode::UNAUTHORIZED
    );
    rig.fake.send(Event::TenantUpserted(c.identity())).await;
    rig.wait_for("tenant C registered", || rig.cas.len() == 2)
        .await;
    assert_eq!(
        rig.get(id(&c), "/containerLogs/default/web/app")
            .await
            .status(),
        http::StatusCode::OK
    );

    // A translation is cached; an invalidation drops it.
    assert_eq!(
        rig.get(id(&a), "/containerLogs/default/web/app")
            .await
            .status(),
        http::StatusCode::OK
    );
    assert_eq!(rig.translator.cached(), 2);
    rig.fake
        .send(Event::PodInvalidated(location(
            &a.key, "default", "web", "n1",
        )))
        .await;
    rig.wait_for("cached translation dropped", || {
        rig.translator.cached() == 1
    })
    .await;

    // A removed: refused from then on.
    rig.fake.send(Event::TenantRemoved(a.key.clone())).await;
    rig.wait_for("tenant A removed", || rig.cas.len() == 1)
        .await;
    assert_eq!(
        rig.get(id(&a), "/containerLogs/default/web/app")
            .await
            .status(),
        http::StatusCode::UNAUTHORIZED
    );
}
