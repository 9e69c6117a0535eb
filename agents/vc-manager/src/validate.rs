//! Checks of a VirtualCluster's spec done before anything is created, so an invalid VirtualCluster
//! leaves nothing behind in the super cluster.

use std::net::Ipv4Addr;

use tenancy_naming as naming;
use vc_api::conditions::reasons;
use vc_api::{
    DEFAULT_CLUSTER_DOMAIN, DEFAULT_PKI_EXPIRE_DAYS, DEFAULT_SERVICE_CIDR, VirtualCluster,
};

/// Why a spec is refused: a status reason and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Status reason (see [`vc_api::conditions::reasons`]).
    pub reason: &'static str,
    /// Explanation.
    pub message: String,
}

impl Invalid {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// The first usable address: the tenant's `kubernetes` Service ClusterIP.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }
}

/// Parses `a.b.c.d/n` with a prefix of 8 to 30 (at least two service addresses).
pub fn parse_service_cidr(text: &str) -> Result<Cidr, Invalid> {
    let bad = |why: &str| {
        Invalid::new(
            reasons::INVALID_SERVICE_CIDR,
            format!("spec.serviceCidr {text:?} is not a usable IPv4 CIDR: {why}"),
        )
    };
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| bad("expected address/prefix"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad("bad address"))?;
    let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
    if !(8..=30).contains(&prefix) {
        return Err(bad("prefix length must be between 8 and 30"));
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    let network = Ipv4Addr::from(u32::from(addr) & mask);
    if network != addr {
        return Err(bad("host bits are set"));
    }
    Ok(Cidr { network, prefix })
}

/// Whether `s` is a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(naming::is_dns1123_label)
}

/// The spec after defaults, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Cluster key and root namespace in the super cluster.
    pub cluster_key: String,
    /// Tenant service range.
    pub service_cidr: Cidr,
    /// Tenant DNS domain.
    pub cluster_domain: String,
    /// Certificate lifetime in days.
    pub pki_expire_days: i64,
}

/// Checks `vc`'s spec and computes the names derived from it. The cluster key follows the syncer's
/// naming rule (`status.clusterNamespace` wins when already set).
pub fn check(vc: &VirtualCluster) -> Result<Checked, Invalid> {
    let namespace = vc.metadata.namespace.as_deref().unwrap_or("default");
    let name = vc.metadata.name.as_deref().unwrap_or_default();
    let uid = vc.metadata.uid.as_deref().unwrap_or_default();
    if vc.spec.cluster_version_name.trim().is_empty() {
        return Err(Invalid::new(
            reasons::INVALID_SPEC,
            "spec.clusterVersionName is empty",
        ));
    }
    let status_ns = vc
        .status
        .as_ref()
        .and_then(|s| s.cluster_namespace.as_deref());
    let cluster_key = naming::cluster_key_with_status(namespace, name, uid, status_ns);
    if !naming::is_dns1123_label(&cluster_key) {
        return Err(Invalid::new(
            reasons::NAME_TOO_LONG,
            format!(
                "namespace and name are too long: the root namespace {cluster_key:?} ({} characters) \
                 must be a DNS label of at most {} characters; shorten the name to at most {} characters",
                cluster_key.len(),
                naming::MAX_LABEL_LEN,
                (naming::MAX_LABEL_LEN + name.len()).saturating_sub(cluster_key.len())
            ),
        ));
    }
    let service_cidr = parse_service_cidr(
        vc.spec
            .service_cidr
            .as_deref()
            .unwrap_or(DEFAULT_SERVICE_CIDR),
    )?;
    let cluster_domain = vc
        .spec
        .cluster_domain
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string());
    if !is_dns_subdomain(&cluster_domain) {
        return Err(Invalid::new(
            reasons::INVALID_SPEC,
            format!("spec.clusterDomain {cluster_domain:?} is not a DNS subdomain"),
        ));
    }
    let pki_expire_days = vc.spec.pki_expire_days.unwrap_or(DEFAULT_PKI_EXPIRE_DAYS);
    if !(1..=36_500).contains(&pki_expire_days) {
        return Err(Invalid::new(
            reasons::INVALID_SPEC,
            format!("spec.pkiExpireDays {pki_expire_days} is outside 1..=36500"),
        ));
    }
    for prefix in vc
        .spec
        .opaque_meta_prefixes
        .iter()
        .chain(&vc.spec.transparent_meta_prefixes)
    {
        if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
            return Err(Invalid::new(
                reasons::INVALID_SPEC,
                format!("meta prefix {prefix:?} is empty or contains whitespace"),
            ));
        }
    }
    Ok(Checked {
        cluster_key,
        service_cidr,
        cluster_domain,
        pki_expire_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use vc_api::VirtualClusterSpec;

    fn vc(ns: &str, name: &str, cidr: Option<&str>) -> VirtualCluster {
        let mut vc = VirtualCluster::new(
            name,
            VirtualClusterSpec {
                cluster_version_name: "cv".into(),
                service_cidr: cidr.map(str::to_string),
                ..VirtualClusterSpec::default()
            },
        );
        vc.metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some("0b0e7b8e-1111-2222-3333-444455556666".into()),
            ..ObjectMeta::default()
        };
        vc
    }

    #[test]
    fn cidrs() {
        let c = parse_service_cidr("10.96.0.0/12").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.first_host(), Ipv4Addr::new(10, 96, 0, 1));
        for bad in [
            "10.96.0.0",
            "10.96.0.1/12",
            "10.96.0.0/31",
            "300.1.1.1/8",
            "x/8",
            "10.0.0.0/4",
        ] {
            let err = parse_service_cidr(bad).err();
            assert_eq!(
                err.map(|e| e.reason),
                Some(reasons::INVALID_SERVICE_CIDR),
                "{bad}"
            );
        }
    }

    #[test]
    fn cluster_key_follows_the_syncer_rule_and_long_names_are_refused() {
        let ok = check(&vc("team-a", "vc1", None)).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            ok.cluster_key,
            naming::cluster_key("team-a", "vc1", "0b0e7b8e-1111-2222-3333-444455556666")
        );
        assert_eq!(ok.cluster_domain, "cluster.local");
        // namespace (20) + 1 + 6 + 1 + name: 63 fits, 64 does not.
        let ns = "n".repeat(20);
        assert!(check(&vc(&ns, &"a".repeat(35), None)).is_ok());
        let err = check(&vc(&ns, &"a".repeat(36), None)).err();
        assert_eq!(err.map(|e| e.reason), Some(reasons::NAME_TOO_LONG));
        let err = check(&vc("a", "b", Some("10.0.0.0/33"))).err();
        assert_eq!(err.map(|e| e.reason), Some(reasons::INVALID_SERVICE_CIDR));
    }
}
