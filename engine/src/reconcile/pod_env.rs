//! Service environment variables of a super pod, computed from the tenant's services with their *super*
//! cluster IPs, the way a kubelet computes them (`FOO_SERVICE_HOST`, `FOO_SERVICE_PORT`,
//! `FOO_SERVICE_PORT_<NAME>`, and the docker-link set `FOO_PORT`, `FOO_PORT_80_TCP`, `_PROTO`, `_PORT`,
//! `_ADDR`).
//!
//! Which services count (as the kubelet decides): the `kubernetes` service of the `default` namespace always;
//! every service of the pod's own namespace unless the pod sets `enableServiceLinks: false`; a service whose
//! cluster IP is unset or `None` (headless, ExternalName) gives no variables.
//!
//! The variables are written into every container and init container (the super pod gets
//! `enableServiceLinks: false`, so the super kubelet adds none of the super cluster's services; it still adds
//! its own `KUBERNETES_*` unless the container already has them, which it then has). They go *before* the
//! tenant's own `env` entries, so `$(FOO_SERVICE_HOST)` in a tenant value still expands; a name the tenant
//! sets itself (in `env`, or through `envFrom` when the source's keys are known) is not added: the tenant's
//! value wins, as with a kubelet.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

/// Namespace of the master service.
pub const MASTER_NAMESPACE: &str = "default";
/// Name of the master service.
pub const MASTER_SERVICE: &str = "kubernetes";

/// One port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPort {
    /// Port name (may be empty for the only port).
    pub name: String,
    /// Port number.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP` (empty = TCP).
    pub protocol: String,
}

/// A tenant service as the variables need it: its name, its cluster IP *in the super cluster*, its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLink {
    /// Service name (tenant and super names are the same).
    pub name: String,
    /// The super copy's cluster IP.
    pub cluster_ip: String,
    /// Ports, in the service's order.
    pub ports: Vec<LinkPort>,
}

/// True when a `spec.clusterIP` value gives variables (set and not `None`).
#[must_use]
pub fn is_service_ip_set(cluster_ip: Option<&str>) -> bool {
    matches!(cluster_ip, Some(ip) if !ip.is_empty() && ip != "None")
}

/// `my-svc` → `MY_SVC`.
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

fn host_port(ip: &str, port: i32) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{ip}]:{port}"),
        _ => format!("{ip}:{port}"),
    }
}

fn var(name: String, value: String) -> EnvVar {
    EnvVar {
        name,
        value: Some(value),
        value_from: None,
    }
}

/// The variables of `services`, in the order given (the kubelet's `FromServices`).
#[must_use]
pub fn service_env(services: &[ServiceLink]) -> Vec<EnvVar> {
    let mut out = Vec::new();
    for svc in services {
        if !is_service_ip_set(Some(&svc.cluster_ip)) {
            continue;
        }
        let Some(first) = svc.ports.first() else {
            continue;
        };
        let prefix = env_name(&svc.name);
        out.push(var(
            format!("{prefix}_SERVICE_HOST"),
            svc.cluster_ip.clone(),
        ));
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push(var(port_var.clone(), first.port.to_string()));
        for p in svc.ports.iter().filter(|p| !p.name.is_empty()) {
            out.push(var(
                format!("{port_var}_{}", env_name(&p.name)),
                p.port.to_string(),
            ));
        }
        for (i, p) in svc.ports.iter().enumerate() {
            let protocol = if p.protocol.is_empty() {
                "TCP"
            } else {
                p.protocol.as_str()
            };
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{}", host_port(&svc.cluster_ip, p.port));
            if i == 0 {
                out.push(var(format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
            out.push(var(pp.clone(), url));
            out.push(var(format!("{pp}_PROTO"), lower));
            out.push(var(format!("{pp}_PORT"), p.port.to_string()));
            out.push(var(format!("{pp}_ADDR"), svc.cluster_ip.clone()));
        }
    }
    out
}

/// Which services a pod gets variables for: `master` (the tenant's `default/kubernetes`, if any) always, the
/// pod namespace's services (`in_namespace`) only with service links on. A service of the pod's namespace wins
/// over the master one of the same name.
#[must_use]
pub fn pod_services(
    links_enabled: bool,
    master: Option<ServiceLink>,
    in_namespace: Vec<ServiceLink>,
) -> Vec<ServiceLink> {
    let mut out: Vec<ServiceLink> = if links_enabled {
        in_namespace
    } else {
        Vec::new()
    };
    if let Some(m) = master
        && !out.iter().any(|s| s.name == m.name)
    {
        out.push(m);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Adds `vars` to every container and init container of `spec`, before the container's own entries, except
/// names the container sets itself (`env`, or `envfrom_keys[i]` = names its `envFrom` sources are known to
/// set, by container name). Sets `enableServiceLinks: false`.
pub fn apply_service_env(
    spec: &mut PodSpec,
    vars: &[EnvVar],
    envfrom_keys: &dyn Fn(&Container) -> BTreeSet<String>,
) {
    spec.enable_service_links = Some(false);
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        let mut taken = envfrom_keys(c);
        taken.extend(c.env.iter().flatten().map(|e| e.name.clone()));
        let mut env: Vec<EnvVar> = vars
            .iter()
            .filter(|v| !taken.contains(&v.name))
            .cloned()
            .collect();
        if env.is_empty() {
            continue;
        }
        env.extend(c.env.take().unwrap_or_default());
        c.env = Some(env);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> ServiceLink {
        ServiceLink {
            name: name.into(),
            cluster_ip: ip.into(),
            ports: ports
                .iter()
                .map(|(n, p, proto)| LinkPort {
                    name: (*n).into(),
                    port: *p,
                    protocol: (*proto).into(),
                })
                .collect(),
        }
    }

    fn pairs(vars: &[EnvVar]) -> Vec<(String, String)> {
        vars.iter()
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn variables_match_the_kubelet_set() {
        let svc = link(
            "redis-primary",
            "10.0.0.11",
            &[("", 6379, ""), ("metrics", 9121, "TCP")],
        );
        let got = pairs(&service_env(&[svc]));
        let want: Vec<(String, String)> = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.0.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
            ("REDIS_PRIMARY_PORT", "tcp://10.0.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.0.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.0.0.11"),
            ("REDIS_PRIMARY_PORT_9121_TCP", "tcp://10.0.0.11:9121"),
            ("REDIS_PRIMARY_PORT_9121_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_9121_TCP_PORT", "9121"),
            ("REDIS_PRIMARY_PORT_9121_TCP_ADDR", "10.0.0.11"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn udp_ipv6_headless_and_portless_services() {
        let dns = link("dns", "fd00::a", &[("dns", 53, "UDP")]);
        let got = pairs(&service_env(&[
            dns,
            link("headless", "None", &[("", 80, "")]),
            link("external", "", &[("", 80, "")]),
            link("noports", "10.0.0.9", &[]),
        ]));
        assert!(got.contains(&("DNS_PORT".into(), "udp://[fd00::a]:53".into())));
        assert!(got.contains(&("DNS_PORT_53_UDP_PROTO".into(), "udp".into())));
        assert!(got.contains(&("DNS_SERVICE_PORT_DNS".into(), "53".into())));
        assert!(
            got.iter().all(|(n, _)| n.starts_with("DNS_")),
            "headless, external and portless services give nothing: {got:?}"
        );
    }

    #[test]
    fn master_service_always_namespace_services_only_with_links() {
        let master = link("kubernetes", "10.0.0.1", &[("https", 443, "TCP")]);
        let web = link("web", "10.0.0.20", &[("", 80, "")]);
        let names = |v: Vec<ServiceLink>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(pod_services(true, Some(master.clone()), vec![web.clone()])),
            ["kubernetes", "web"]
        );
        assert_eq!(
            names(pod_services(false, Some(master.clone()), vec![web])),
            ["kubernetes"]
        );
        let own = link("kubernetes", "10.0.0.77", &[("", 80, "")]);
        let picked = pod_services(true, Some(master), vec![own]);
        assert_eq!(
            picked
                .iter()
                .map(|s| s.cluster_ip.as_str())
                .collect::<Vec<_>>(),
            ["10.0.0.77"],
            "a service of the pod's namespace named kubernetes wins"
        );
    }

    #[test]
    fn tenant_values_win_and_variables_precede_tenant_entries() {
        let mut spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx",
                "env": [{"name": "WEB_SERVICE_HOST", "value": "override"},
                        {"name": "URL", "value": "http://$(WEB_SERVICE_HOST)"}],
                "envFrom": [{"configMapRef": {"name": "cfg"}}]}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let vars = service_env(&[link("web", "10.0.0.20", &[("", 80, "")])]);
        let from_cm = |c: &Container| -> BTreeSet<String> {
            if c.name == "app" {
                ["WEB_PORT".to_owned()].into()
            } else {
                BTreeSet::new()
            }
        };
        apply_service_env(&mut spec, &vars, &from_cm);
        assert_eq!(spec.enable_service_links, Some(false));
        let app = pairs(spec.containers[0].env.as_deref().unwrap_or_default());
        let names: Vec<&str> = app.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"WEB_PORT"), "envFrom key wins: {names:?}");
        assert_eq!(
            names.iter().filter(|n| **n == "WEB_SERVICE_HOST").count(),
            1
        );
        assert_eq!(
            app.iter()
                .find(|(n, _)| n == "WEB_SERVICE_HOST")
                .map(|(_, v)| v.as_str()),
            Some("override")
        );
        assert_eq!(names.last().copied(), Some("URL"), "tenant entries last");
        assert_eq!(names.first().copied(), Some("WEB_SERVICE_PORT"));
        let init = pairs(
            spec.init_containers.as_deref().unwrap_or_default()[0]
                .env
                .as_deref()
                .unwrap_or_default(),
        );
        assert_eq!(init.len(), vars.len(), "init containers get every variable");
    }
}
