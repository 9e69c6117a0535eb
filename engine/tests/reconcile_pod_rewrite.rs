//! Pod rewriting end to end against two simulated API servers: the tenant's own service-account token
//! (TokenRequest → Opaque super secret), cluster DNS and service variables from the super copies of the
//! tenant's services, and the waits when those copies are missing.
//!
//! The Service sync is not part of these tests: the super copies of tenant services are written here the way
//! the Service sync writes them (marks, super-allocated ClusterIP), and both sides are put in the view as the
//! sources would.

mod reconcile_support;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Pod, Secret, Service, ServiceAccount};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use reconcile_support::Env;
use serde_json::json;
use syncer::naming::{
    ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID, ANNOTATION_VC_NAME,
    ANNOTATION_VC_NAMESPACE, LABEL_CONTROLLED,
};
use syncer::record::SUPER_CLUSTER;

/// Base64url without padding (enough to read a JWT's claims).
fn base64url_decode(s: &str) -> Result<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            other => bail!("not base64url: {other}"),
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xff)?);
        }
    }
    Ok(out)
}

fn jwt_claims(token: &str) -> Result<serde_json::Value> {
    let payload = token.split('.').nth(1).context("JWT payload")?;
    Ok(serde_json::from_slice(&base64url_decode(payload)?)?)
}

async fn create_sa(env: &Env, ns: &str, name: &str) -> Result<ServiceAccount> {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    Ok(
        Api::<ServiceAccount>::namespaced(env.tenant_client.clone(), ns)
            .create(&PostParams::default(), &sa)
            .await?,
    )
}

fn record<K: serde::Serialize>(
    env: &Env,
    cluster: &str,
    kind: &str,
    ns: &str,
    obj: &K,
) -> Result<()> {
    let value = serde_json::to_value(obj)?;
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    env.view
        .record_write(cluster, kind, ns, &name, Some(&value))?;
    Ok(())
}

/// A tenant service (created unless it exists), put in the view.
async fn tenant_service(
    env: &Env,
    ns: &str,
    name: &str,
    ports: serde_json::Value,
) -> Result<Service> {
    let api: Api<Service> = Api::namespaced(env.tenant_client.clone(), ns);
    let svc = match api.get_opt(name).await? {
        Some(svc) => svc,
        None => {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"app": name}, "ports": ports}
            }))?;
            api.create(&PostParams::default(), &svc).await?
        }
    };
    record(env, env.key(), "Service", ns, &svc)?;
    Ok(svc)
}

/// The super copy of a tenant service as the Service sync writes it (super-allocated ClusterIP), in the view.
async fn super_copy(env: &Env, tenant_svc: &Service) -> Result<Service> {
    let ns = tenant_svc.metadata.namespace.clone().unwrap_or_default();
    let name = tenant_svc.metadata.name.clone().unwrap_or_default();
    env.reconcile(&env.namespace_key(&ns)).await?;
    let super_ns = env.super_ns(&ns);
    let ports = tenant_svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let copy: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": super_ns,
            "annotations": {ANNOTATION_CLUSTER: env.key(), ANNOTATION_NAMESPACE: ns,
                ANNOTATION_UID: tenant_svc.metadata.uid, ANNOTATION_VC_NAME: "vc1",
                ANNOTATION_VC_NAMESPACE: "team"},
            "labels": {ANNOTATION_VC_NAME: "vc1", ANNOTATION_VC_NAMESPACE: "team", LABEL_CONTROLLED: "true"}},
        "spec": {"ports": ports}
    }))?;
    let created = Api::<Service>::namespaced(env.super_client.clone(), &super_ns)
        .create(&PostParams::default(), &copy)
        .await?;
    record(env, SUPER_CLUSTER, "Service", &super_ns, &created)?;
    Ok(created)
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default()
}

fn env_value(pod: &Pod, container: usize, name: &str) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .get(container)?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

async fn events_with_reason(env: &Env, ns: &str, pod: &str, reason: &str) -> Result<Vec<Event>> {
    Ok(env
        .tenant_events(ns, pod)
        .await?
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_pod_mounts_a_tenant_token_never_a_super_one() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    let sa = create_sa(&env, "web", "builder").await?;
    let mut pod = reconcile_support::nginx("web", "api");
    pod["spec"]["serviceAccountName"] = json!("builder");
    let t = env.create_tenant_pod(pod).await?;
    assert!(
        t.spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .is_some_and(|v| v.iter().any(|v| v.name.starts_with("kube-api-access-"))),
        "the tenant's admission injected the token volume"
    );
    let key = env.pod_key("web", "api");
    env.reconcile(&key).await?;

    let s = env.super_pods("web").get("api").await?;
    let spec = s.spec.clone().unwrap_or_default();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.enable_service_links, Some(false));
    let sources: Vec<_> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name.starts_with("kube-api-access-"))
        .flat_map(|v| {
            v.projected
                .clone()
                .and_then(|p| p.sources)
                .unwrap_or_default()
        })
        .collect();
    assert!(sources.iter().all(|s| s.service_account_token.is_none()));
    let secret_name = sources
        .iter()
        .find_map(|s| s.secret.as_ref().map(|s| s.name.clone()))
        .context("token secret source")?;
    assert_eq!(secret_name, "vc-token-builder");
    assert!(sources.iter().any(|s| {
        s.config_map
            .as_ref()
            .is_some_and(|c| c.name == "tenant-kube-root-ca.crt")
    }));
    let mounted = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount");
    assert!(
        mounted,
        "the token is still mounted where clients look for it"
    );

    let secret = Api::<Secret>::namespaced(env.super_client.clone(), &env.super_ns("web"))
        .get(&secret_name)
        .await?;
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|t| String::from_utf8_lossy(&t.0).into_owned())
        .context("token in secret")?;
    let claims = jwt_claims(&token)?;
    assert_eq!(claims["sub"], "system:serviceaccount:web:builder");
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["uid"].as_str(),
        sa.metadata.uid.as_deref(),
        "a token of the tenant's service account"
    );
    assert!(
        !secret
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .contains_key(LABEL_CONTROLLED),
        "not picked up by the Secret sync"
    );

    // In sync: reconciling again writes nothing (token fresh, spec not compared on rewritten fields).
    env.settle(&key, 3).await?;
    let before = env.write_count();
    env.reconcile(&key).await?;
    assert_eq!(env.write_count(), before);

    // A second pod of the same account shares the secret: no new TokenRequest or Secret.
    let mut second = reconcile_support::nginx("web", "api-2");
    second["spec"]["serviceAccountName"] = json!("builder");
    env.create_tenant_pod(second).await?;
    let before = env.write_count();
    env.reconcile(&env.pod_key("web", "api-2")).await?;
    assert_eq!(env.write_count(), before + 1, "only the pod create");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_token_is_renewed_on_the_next_reconcile() -> Result<()> {
    let env = Env::start().await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(reconcile_support::nginx("web", "api"))
        .await?;
    let key = env.pod_key("web", "api");
    env.reconcile(&key).await?;
    env.settle(&key, 3).await?;
    let secrets: Api<Secret> = Api::namespaced(env.super_client.clone(), &env.super_ns("web"));
    let mut secret = secrets.get("vc-token-default").await?;
    let old_token = secret
        .data
        .clone()
        .unwrap_or_default()
        .get("token")
        .cloned();
    let ann = secret
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    ann.insert(
        "tenancy.x-k8s.io/token-issued".into(),
        "2020-01-01T00:00:00Z".into(),
    );
    ann.insert(
        "tenancy.x-k8s.io/token-expiration".into(),
        "2020-01-02T00:00:00Z".into(),
    );
    let aged = secrets
        .replace("vc-token-default", &PostParams::default(), &secret)
        .await?;
    env.view.record_write(
        SUPER_CLUSTER,
        "TokenSecret",
        &env.super_ns("web"),
        "vc-token-default",
        Some(&serde_json::to_value(&aged)?),
    )?;

    env.reconcile(&key).await?;
    let renewed = secrets.get("vc-token-default").await?;
    let new_token = renewed
        .data
        .clone()
        .unwrap_or_default()
        .get("token")
        .cloned();
    assert_ne!(new_token, old_token, "a new token");
    let expires = renewed
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .get("tenancy.x-k8s.io/token-expiration")
        .cloned()
        .unwrap_or_default();
    let expires: k8s_openapi::jiff::Timestamp = expires.parse()?;
    let day_from_now = k8s_openapi::jiff::Timestamp::now().as_second() + 24 * 3600;
    assert!(
        expires.as_second() > day_from_now,
        "fresh expiration: {expires}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_and_service_variables_use_the_super_cluster_ips() -> Result<()> {
    let env = Env::start_with_resources(&["Namespace", "Pod", "Service"]).await?;
    env.tenant_namespace("web").await?;
    let master = tenant_service(&env, "default", "kubernetes", json!([])).await?;
    let dns = tenant_service(
        &env,
        "kube-system",
        "kube-dns",
        json!([{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
    )
    .await?;
    let redis = tenant_service(&env, "web", "redis", json!([{"port": 6379}])).await?;
    let super_master = super_copy(&env, &master).await?;
    let super_dns = super_copy(&env, &dns).await?;
    let super_redis = super_copy(&env, &redis).await?;
    assert_ne!(
        cluster_ip(&super_dns),
        cluster_ip(&dns),
        "two clusters, two allocations"
    );

    let mut pod = reconcile_support::nginx("web", "app");
    pod["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    pod["spec"]["containers"][0]["env"] = json!([{"name": "REDIS_SERVICE_HOST", "value": "mine"}]);
    pod["spec"]["dnsConfig"] = json!({"searches": ["corp.example"]});
    env.create_tenant_pod(pod).await?;
    env.reconcile(&env.pod_key("web", "app")).await?;

    let s = env.super_pods("web").get("app").await?;
    let spec = s.spec.clone().unwrap_or_default();
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    let cfg = spec.dns_config.clone().unwrap_or_default();
    assert_eq!(cfg.nameservers, Some(vec![cluster_ip(&super_dns)]));
    assert_eq!(
        cfg.searches,
        Some(vec![
            "web.svc.cluster.local".to_owned(),
            "svc.cluster.local".into(),
            "cluster.local".into(),
            "corp.example".into()
        ])
    );
    assert_eq!(
        env_value(&s, 0, "KUBERNETES_SERVICE_HOST"),
        Some(cluster_ip(&super_master))
    );
    assert_eq!(
        env_value(&s, 0, "REDIS_SERVICE_HOST"),
        Some("mine".into()),
        "the tenant's own value wins"
    );
    assert_eq!(
        env_value(&s, 0, "REDIS_PORT"),
        Some(format!("tcp://{}:6379", cluster_ip(&super_redis)))
    );
    let init_env = spec.init_containers.clone().unwrap_or_default()[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(
        init_env
            .iter()
            .any(|e| e.name == "REDIS_SERVICE_HOST" && e.value == Some(cluster_ip(&super_redis)))
    );
    assert_eq!(spec.enable_service_links, Some(false));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waits_for_the_super_copy_of_kube_dns() -> Result<()> {
    let env = Env::start_with_resources(&["Namespace", "Pod", "Service"]).await?;
    env.tenant_namespace("web").await?;
    env.create_tenant_pod(reconcile_support::nginx("web", "early"))
        .await?;
    let err = env
        .reconcile(&env.pod_key("web", "early"))
        .await
        .err()
        .context("services not listed yet: must wait")?;
    assert_eq!(err.code, "waiting", "{}", err.message);
    assert!(err.message.contains("not listed"), "{}", err.message);
    let master = tenant_service(&env, "default", "kubernetes", json!([])).await?;
    super_copy(&env, &master).await?;
    let dns = tenant_service(
        &env,
        "kube-system",
        "kube-dns",
        json!([{"port": 53, "protocol": "UDP"}]),
    )
    .await?;
    env.create_tenant_pod(reconcile_support::nginx("web", "app"))
        .await?;
    let key = env.pod_key("web", "app");

    let err = env.reconcile(&key).await.err().context("must wait")?;
    assert_eq!(err.code, "waiting", "{}", err.message);
    assert!(env.super_pods("web").get_opt("app").await?.is_none());

    let super_dns = super_copy(&env, &dns).await?;
    env.reconcile(&key).await?;
    let s = env.super_pods("web").get("app").await?;
    assert_eq!(
        s.spec
            .and_then(|s| s.dns_config)
            .and_then(|c| c.nameservers),
        Some(vec![cluster_ip(&super_dns)])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_cluster_dns_gets_the_node_dns_and_an_event() -> Result<()> {
    let env = Env::start_with_resources(&["Namespace", "Pod", "Service"]).await?;
    env.tenant_namespace("web").await?;
    let master = tenant_service(&env, "default", "kubernetes", json!([])).await?;
    super_copy(&env, &master).await?;
    env.create_tenant_pod(reconcile_support::nginx("web", "app"))
        .await?;
    env.reconcile(&env.pod_key("web", "app")).await?;
    let s = env.super_pods("web").get("app").await?;
    assert_eq!(
        s.spec.and_then(|s| s.dns_policy).as_deref(),
        Some("Default")
    );
    let events = events_with_reason(&env, "web", "app", "MissingClusterDNS").await?;
    assert_eq!(events.len(), 1, "{events:?}");
    Ok(())
}
