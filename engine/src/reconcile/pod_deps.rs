//! Resolves what the object-dependent pod rules need ([`super::pod_spec::Dependencies`]) from the view, right
//! before a super pod is created: the super cluster IPs of the tenant's `kube-system/kube-dns`, of its
//! `default/kubernetes` and of the services of the pod's namespace, and the keys the containers' `envFrom`
//! sources set.
//!
//! Reads come from the view only (the tenant's Services and their super copies, as their sources saw them).
//! The tenant's `default/kubernetes` Service in the view is the sign that the tenant's Services have been
//! listed (every API server has it); until then the pod waits. After that, a tenant without
//! `kube-system/kube-dns` in the view has no cluster DNS: the pod falls back to `Default`, as a kubelet
//! without cluster DNS does, with a `MissingClusterDNS` event.
//!
//! **Waiting.** A tenant service whose super copy has no cluster IP yet (not synced yet) makes the pod wait:
//! the reconcile fails with `SyncError::Waiting` (code `waiting`) and the shard retries it with its backoff.
//! For `kube-dns` and `kubernetes` the wait has no end (a pod with broken DNS or a wrong API address is never
//! created); after [`DEPENDENCY_WAIT`] a `WaitingForClusterServices` Warning event tells the tenant why. For
//! other services of the namespace the wait ends after [`DEPENDENCY_WAIT`] (from the tenant pod's creation):
//! the pod is created without those services' variables and a `ServiceEnvIncomplete` event names them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;

use super::metadata::{Ownership, ownership};
use super::pod_dns::{ClusterDns, uses_cluster_dns};
use super::pod_env::{
    LinkPort, MASTER_NAMESPACE, MASTER_SERVICE, ServiceLink, is_service_ip_set, pod_services,
    service_env,
};
use super::pod_spec::Dependencies;
use super::{Ctx, Read, SyncError};
use crate::naming::super_namespace;
use crate::record::SUPER_CLUSTER;

/// Kind name of Services in the view.
pub(crate) const KIND_SERVICE: &str = "Service";
/// Kind name of ConfigMaps in the view.
const KIND_CONFIG_MAP: &str = "ConfigMap";
/// Kind name of Secrets in the view.
const KIND_SECRET: &str = "Secret";
/// Namespace of the tenant's DNS service.
pub const DNS_NAMESPACE: &str = "kube-system";
/// Name of the tenant's DNS service.
pub const DNS_SERVICE: &str = "kube-dns";
/// How long (from the tenant pod's creation) a pod waits for the super copies of its namespace's services
/// before it is created without their variables; also when the cluster-services wait is reported.
pub const DEPENDENCY_WAIT: Duration = Duration::from_secs(60);

/// Event reason: the tenant has no `kube-system/kube-dns`; the pod resolves with the node's DNS.
pub const REASON_MISSING_DNS: &str = "MissingClusterDNS";
/// Event reason: the pod waits for the super copies of `kube-dns` / `kubernetes`.
pub const REASON_WAITING: &str = "WaitingForClusterServices";
/// Event reason: the pod was created without the variables of services not synced in time.
pub const REASON_ENV_INCOMPLETE: &str = "ServiceEnvIncomplete";

/// Outcome of resolving a pod's dependencies.
#[derive(Debug)]
pub(crate) enum Resolution {
    /// Create the pod with these; report each notice (reason, message) on the tenant pod.
    Ready(Dependencies, Vec<(&'static str, String)>),
    /// Not yet: what is missing; report the notice, if any, then retry later.
    Waiting(String, Option<(&'static str, String)>),
}

/// Resolves the dependencies of `tenant_pod` (see the module docs).
pub(crate) fn resolve(ctx: &Ctx<'_>, tenant_pod: &Pod) -> Result<Resolution, SyncError> {
    let Some(spec) = tenant_pod.spec.as_ref() else {
        return Ok(Resolution::Ready(Dependencies::default(), Vec::new()));
    };
    let namespace = ctx.key.namespace.as_str();
    let waited_long = pod_age(tenant_pod) >= DEPENDENCY_WAIT;
    let mut notices = Vec::new();
    let mut critical: Vec<String> = Vec::new();
    let mut optional: Vec<String> = Vec::new();

    let Some(master) = tenant_service(ctx, MASTER_NAMESPACE, MASTER_SERVICE)? else {
        let what = format!(
            "the tenant's services are not listed yet (no {MASTER_NAMESPACE}/{MASTER_SERVICE} in the view)"
        );
        let notice = waited_long.then(|| {
            (
                REASON_WAITING,
                format!("the pod waits for the cluster services: {what}"),
            )
        });
        return Ok(Resolution::Waiting(what, notice));
    };
    let dns = if uses_cluster_dns(spec) {
        match tenant_service(ctx, DNS_NAMESPACE, DNS_SERVICE)? {
            None => {
                notices.push((
                    REASON_MISSING_DNS,
                    format!(
                        "the cluster has no {DNS_NAMESPACE}/{DNS_SERVICE} service; the pod uses the node's \
                         DNS (policy Default)"
                    ),
                ));
                Some(ClusterDns::Missing)
            }
            Some(svc) => match link(ctx, DNS_NAMESPACE, &svc)? {
                Some(l) => Some(ClusterDns::Nameserver(l.cluster_ip)),
                None => {
                    critical.push(format!("{DNS_NAMESPACE}/{DNS_SERVICE}"));
                    None
                }
            },
        }
    } else {
        None
    };

    let master = if is_service_ip_set(cluster_ip(&master)) {
        let l = link(ctx, MASTER_NAMESPACE, &master)?;
        if l.is_none() {
            critical.push(format!("{MASTER_NAMESPACE}/{MASTER_SERVICE}"));
        }
        l
    } else {
        None
    };
    let links_enabled = spec.enable_service_links != Some(false);
    let mut in_namespace = Vec::new();
    if links_enabled {
        for (name, stored) in ctx
            .view
            .list_namespace(&ctx.key.cluster, KIND_SERVICE, namespace)
            .map_err(SyncError::View)?
        {
            let Ok(svc) = serde_json::from_value::<Service>(stored.object) else {
                continue;
            };
            if !is_service_ip_set(cluster_ip(&svc)) {
                continue;
            }
            match link(ctx, namespace, &svc)? {
                Some(l) => in_namespace.push(l),
                None => optional.push(format!("{namespace}/{name}")),
            }
        }
    }

    if !critical.is_empty() {
        let what = format!(
            "super copies of {} have no cluster IP yet",
            critical.join(", ")
        );
        let notice = waited_long.then(|| {
            (
                REASON_WAITING,
                format!("the pod waits for the cluster services: {what}"),
            )
        });
        return Ok(Resolution::Waiting(what, notice));
    }
    if !optional.is_empty() {
        let what = format!(
            "super copies of {} have no cluster IP yet",
            optional.join(", ")
        );
        if !waited_long {
            return Ok(Resolution::Waiting(what, None));
        }
        notices.push((
            REASON_ENV_INCOMPLETE,
            format!(
                "created without the environment variables of services not synced in time: {what}"
            ),
        ));
    }

    let vars = service_env(&pod_services(links_enabled, master, in_namespace));
    let mut envfrom_keys = BTreeMap::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let mut keys = BTreeSet::new();
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            let names = if let Some(cm) = from.config_map_ref.as_ref() {
                config_map_keys(ctx, namespace, &cm.name)?
            } else if let Some(sec) = from.secret_ref.as_ref() {
                secret_keys(ctx, namespace, &sec.name)?
            } else {
                Vec::new()
            };
            keys.extend(names.into_iter().map(|k| format!("{prefix}{k}")));
        }
        envfrom_keys.insert(c.name.clone(), keys);
    }
    Ok(Resolution::Ready(
        Dependencies {
            dns,
            service_env: Some(vars),
            envfrom_keys,
        },
        notices,
    ))
}

/// How long ago the tenant pod was created (zero when unknown or in the future).
fn pod_age(pod: &Pod) -> Duration {
    let Some(created) = pod.metadata.creation_timestamp.as_ref() else {
        return Duration::ZERO;
    };
    let secs = Timestamp::now().as_second() - created.0.as_second();
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn cluster_ip(svc: &Service) -> Option<&str> {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref())
}

/// A tenant service, as the view holds it.
fn tenant_service(
    ctx: &Ctx<'_>,
    namespace: &str,
    name: &str,
) -> Result<Option<Service>, SyncError> {
    Ok(
        match ctx.read::<Service>(&ctx.key.cluster, KIND_SERVICE, namespace, name)? {
            Read::Object(svc) => Some(*svc),
            Read::Absent | Read::Malformed { .. } => None,
        },
    )
}

/// The tenant service `svc` of tenant namespace `namespace` with the cluster IP of its super copy; `None`
/// when the super copy is missing, not ours, or has no cluster IP yet.
fn link(ctx: &Ctx<'_>, namespace: &str, svc: &Service) -> Result<Option<ServiceLink>, SyncError> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let super_ns = super_namespace(&ctx.tenant.info.cluster_key, namespace);
    let Read::Object(copy) = ctx.read::<Service>(SUPER_CLUSTER, KIND_SERVICE, &super_ns, &name)?
    else {
        return Ok(None);
    };
    let tenant_uid = svc.metadata.uid.clone().unwrap_or_default();
    match ownership(&copy.metadata, &ctx.tenant.info, namespace) {
        Ownership::Ours { tenant_uid: uid } if uid == tenant_uid => {}
        _ => return Ok(None),
    }
    let Some(ip) = cluster_ip(&copy).filter(|ip| is_service_ip_set(Some(ip))) else {
        return Ok(None);
    };
    // Ports as the tenant declared them (the super copy has the same ports; node ports differ).
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| LinkPort {
            name: p.name.unwrap_or_default(),
            port: p.port,
            protocol: p.protocol.unwrap_or_default(),
        })
        .collect();
    Ok(Some(ServiceLink {
        name,
        cluster_ip: ip.to_owned(),
        ports,
    }))
}

fn config_map_keys(ctx: &Ctx<'_>, namespace: &str, name: &str) -> Result<Vec<String>, SyncError> {
    Ok(
        match ctx.read::<ConfigMap>(&ctx.key.cluster, KIND_CONFIG_MAP, namespace, name)? {
            Read::Object(cm) => cm.data.unwrap_or_default().into_keys().collect(),
            _ => Vec::new(),
        },
    )
}

fn secret_keys(ctx: &Ctx<'_>, namespace: &str, name: &str) -> Result<Vec<String>, SyncError> {
    Ok(
        match ctx.read::<Secret>(&ctx.key.cluster, KIND_SECRET, namespace, name)? {
            Read::Object(s) => s.data.unwrap_or_default().into_keys().collect(),
            _ => Vec::new(),
        },
    )
}
