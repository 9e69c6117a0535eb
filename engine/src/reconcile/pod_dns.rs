//! Cluster DNS of a super pod: a tenant pod that resolves through its cluster's DNS (`ClusterFirst`, the
//! default, without host networking; or `ClusterFirstWithHostNet`) gets `dnsPolicy: None` and the
//! `dnsConfig` a kubelet would have written for the *tenant's* DNS: nameserver = the super cluster IP of the
//! tenant's `kube-system/kube-dns` service, searches `<ns>.svc.<domain>`, `svc.<domain>`, `<domain>`,
//! option `ndots:5`; the tenant's own `dnsConfig` is merged in as a kubelet merges it (nameservers and
//! searches appended without duplicates, options of the same name replaced), then cut to what validation
//! accepts (3 nameservers, 32 searches). The super node's own search domains are not added (a kubelet would
//! append them to `ClusterFirst`; `None` leaves them out).
//!
//! `Default` and `None` pods, and `ClusterFirst` pods on the host network (which a kubelet resolves like
//! `Default`), are left as they are.

use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

/// Nameservers a pod's DNS config may hold.
const MAX_NAMESERVERS: usize = 3;
/// Search domains a pod's DNS config may hold.
const MAX_SEARCHES: usize = 32;

/// The tenant's cluster DNS as the super pod should use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterDns {
    /// The super cluster IP of the tenant's `kube-system/kube-dns`.
    Nameserver(String),
    /// The tenant has no `kube-system/kube-dns` service: like a kubelet without cluster DNS, fall back to
    /// `Default` (the node's resolver).
    Missing,
}

/// True when the pod resolves through its cluster's DNS.
#[must_use]
pub fn uses_cluster_dns(spec: &PodSpec) -> bool {
    match spec.dns_policy.as_deref() {
        None | Some("" | "ClusterFirst") => !spec.host_network.unwrap_or(false),
        Some("ClusterFirstWithHostNet") => true,
        Some(_) => false,
    }
}

/// Rewrites the DNS policy of `spec` (a pod of tenant namespace `namespace`) to the tenant's cluster DNS;
/// returns whether anything changed.
pub fn apply_cluster_dns(
    spec: &mut PodSpec,
    namespace: &str,
    cluster_domain: &str,
    dns: &ClusterDns,
) -> bool {
    if !uses_cluster_dns(spec) {
        return false;
    }
    let nameserver = match dns {
        ClusterDns::Nameserver(ip) => ip.clone(),
        ClusterDns::Missing => {
            spec.dns_policy = Some("Default".into());
            return true;
        }
    };
    let domain = cluster_domain.trim_matches('.');
    let tenant = spec.dns_config.take().unwrap_or_default();
    let mut nameservers = vec![nameserver];
    push_unique(&mut nameservers, tenant.nameservers.unwrap_or_default());
    nameservers.truncate(MAX_NAMESERVERS);
    let mut searches = vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_owned(),
    ];
    push_unique(&mut searches, tenant.searches.unwrap_or_default());
    searches.truncate(MAX_SEARCHES);
    let mut options = vec![PodDNSConfigOption {
        name: Some("ndots".into()),
        value: Some("5".into()),
    }];
    for opt in tenant.options.unwrap_or_default() {
        match options.iter_mut().find(|o| o.name == opt.name) {
            Some(existing) => *existing = opt,
            None => options.push(opt),
        }
    }
    spec.dns_policy = Some("None".into());
    spec.dns_config = Some(PodDNSConfig {
        nameservers: Some(nameservers),
        searches: Some(searches),
        options: Some(options),
    });
    true
}

fn push_unique(list: &mut Vec<String>, more: Vec<String>) {
    for item in more {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ns(ip: &str) -> ClusterDns {
        ClusterDns::Nameserver(ip.into())
    }

    #[test]
    fn default_policy_gets_the_tenant_dns() {
        let mut s = spec(json!({"containers": [{"name": "app"}]}));
        assert!(apply_cluster_dns(
            &mut s,
            "web",
            "cluster.local",
            &ns("10.96.0.10")
        ));
        assert_eq!(s.dns_policy.as_deref(), Some("None"));
        let cfg = s.dns_config.unwrap_or_default();
        assert_eq!(cfg.nameservers, Some(vec!["10.96.0.10".to_owned()]));
        assert_eq!(
            cfg.searches,
            Some(vec![
                "web.svc.cluster.local".to_owned(),
                "svc.cluster.local".into(),
                "cluster.local".into()
            ])
        );
        assert_eq!(
            cfg.options,
            Some(vec![PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("5".into())
            }])
        );
    }

    #[test]
    fn tenant_dns_config_is_merged() {
        let mut s = spec(json!({
            "dnsPolicy": "ClusterFirst",
            "dnsConfig": {"nameservers": ["1.1.1.1", "10.96.0.10", "8.8.8.8", "9.9.9.9"],
                "searches": ["corp.example", "svc.tenant.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
            "containers": [{"name": "app"}]
        }));
        apply_cluster_dns(&mut s, "db", "tenant.example.", &ns("10.96.0.10"));
        let cfg = s.dns_config.unwrap_or_default();
        assert_eq!(
            cfg.nameservers,
            Some(vec![
                "10.96.0.10".to_owned(),
                "1.1.1.1".into(),
                "8.8.8.8".into()
            ]),
            "cluster DNS first, duplicates dropped, at most 3"
        );
        assert_eq!(
            cfg.searches,
            Some(vec![
                "db.svc.tenant.example".to_owned(),
                "svc.tenant.example".into(),
                "tenant.example".into(),
                "corp.example".into()
            ])
        );
        let opts: Vec<(Option<String>, Option<String>)> = cfg
            .options
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.name, o.value))
            .collect();
        assert_eq!(
            opts,
            [
                (Some("ndots".into()), Some("2".into())),
                (Some("edns0".into()), None)
            ]
        );
    }

    #[test]
    fn host_network_and_other_policies() {
        let host = json!({"hostNetwork": true, "containers": [{"name": "a"}]});
        let mut s = spec(host.clone());
        assert!(!apply_cluster_dns(
            &mut s,
            "web",
            "cluster.local",
            &ns("10.0.0.10")
        ));
        assert_eq!((s.dns_policy, s.dns_config), (None, None));
        let mut with_host_net = spec(host);
        with_host_net.dns_policy = Some("ClusterFirstWithHostNet".into());
        assert!(apply_cluster_dns(
            &mut with_host_net,
            "web",
            "cluster.local",
            &ns("10.0.0.10")
        ));
        assert_eq!(with_host_net.dns_policy.as_deref(), Some("None"));
        for policy in ["Default", "None"] {
            let mut s = spec(json!({"dnsPolicy": policy, "containers": [{"name": "a"}],
                "dnsConfig": {"nameservers": ["1.1.1.1"]}}));
            let before = s.clone();
            assert!(!apply_cluster_dns(
                &mut s,
                "web",
                "cluster.local",
                &ns("10.0.0.10")
            ));
            assert_eq!(s, before);
        }
    }

    #[test]
    fn missing_tenant_dns_falls_back_to_default() {
        let mut s = spec(json!({"containers": [{"name": "a"}]}));
        assert!(apply_cluster_dns(
            &mut s,
            "web",
            "cluster.local",
            &ClusterDns::Missing
        ));
        assert_eq!(s.dns_policy.as_deref(), Some("Default"));
        assert_eq!(s.dns_config, None);
    }
}
