//! A tenant as the lifecycle knows it: validated identity, cluster key, and a client built from the
//! kubeconfig it was registered with (or configured with).

use kube::config::{KubeConfigOptions, Kubeconfig};
use tenancy_proto::v1;

use crate::naming;
use crate::reconcile::{DEFAULT_CLUSTER_DOMAIN, TenantInfo};

/// Why a tenant spec was refused (answered as `INVALID_ARGUMENT`).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A required field is missing or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The kubeconfig does not parse or names no usable cluster.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}

/// Where a served tenant comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The syncer's configuration (`--tenants-dir`, `--tenants-config`, embedded): fixed for the run.
    Config,
    /// A `TenantRegistry.Register` call (durable in the registration store).
    Registered,
}

/// Checks the identity fields of a VC reference: namespace and name are DNS-1123 labels, uid non-empty.
pub fn validate_ref(vc: Option<&v1::VirtualClusterRef>, need_uid: bool) -> Result<(), SpecError> {
    let vc = vc.ok_or_else(|| SpecError::Invalid("vc is required".into()))?;
    if !naming::is_dns1123_label(&vc.namespace) {
        return Err(SpecError::Invalid(format!(
            "vc.namespace {:?} is not a DNS-1123 label",
            vc.namespace
        )));
    }
    if !naming::is_dns1123_label(&vc.name) {
        return Err(SpecError::Invalid(format!(
            "vc.name {:?} is not a DNS-1123 label",
            vc.name
        )));
    }
    if need_uid && vc.uid.trim().is_empty() {
        return Err(SpecError::Invalid("vc.uid is required".into()));
    }
    Ok(())
}

/// The cluster key of a spec: `cluster_namespace` when set, else the naming rule over the VC identity.
pub fn cluster_key(spec: &v1::TenantSpec) -> Result<String, SpecError> {
    validate_ref(spec.vc.as_ref(), true)?;
    let vc = spec.vc.clone().unwrap_or_default();
    let status = Some(spec.cluster_namespace.as_str()).filter(|s| !s.is_empty());
    if let Some(ns) = status
        && !naming::is_dns1123_label(ns)
    {
        return Err(SpecError::Invalid(format!(
            "cluster_namespace {ns:?} is not a DNS-1123 label"
        )));
    }
    Ok(naming::cluster_key_with_status(
        &vc.namespace,
        &vc.name,
        &vc.uid,
        status,
    ))
}

/// Validates a registration (identity, kubeconfig present and parseable, prefixes non-empty).
pub fn validate(spec: &v1::TenantSpec) -> Result<String, SpecError> {
    let key = cluster_key(spec)?;
    if spec.kubeconfig.trim().is_empty() {
        return Err(SpecError::Invalid("kubeconfig is required".into()));
    }
    parse_kubeconfig(&spec.kubeconfig)?;
    for p in spec
        .opaque_meta_prefixes
        .iter()
        .chain(&spec.transparent_meta_prefixes)
    {
        if p.trim().is_empty() {
            return Err(SpecError::Invalid("meta prefixes must not be empty".into()));
        }
    }
    if !spec.cluster_domain.is_empty() && !is_cluster_domain(&spec.cluster_domain) {
        return Err(SpecError::Invalid(format!(
            "cluster_domain {:?} is not a DNS subdomain",
            spec.cluster_domain
        )));
    }
    if !spec.kubelet_client_ca_pem.is_empty()
        && !spec
            .kubelet_client_ca_pem
            .contains("-----BEGIN CERTIFICATE-----")
    {
        return Err(SpecError::Invalid(
            "kubelet_client_ca_pem is not a PEM certificate".into(),
        ));
    }
    Ok(key)
}

fn parse_kubeconfig(text: &str) -> Result<Kubeconfig, SpecError> {
    let kc = Kubeconfig::from_yaml(text).map_err(|e| SpecError::Kubeconfig(e.to_string()))?;
    if kc.clusters.is_empty() {
        return Err(SpecError::Kubeconfig("no cluster in it".into()));
    }
    Ok(kc)
}

/// A client for the tenant API server of a kubeconfig given as text.
pub async fn client_from_yaml(text: &str) -> Result<kube::Client, SpecError> {
    let kc = parse_kubeconfig(text)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| SpecError::Kubeconfig(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| SpecError::Kubeconfig(e.to_string()))
}

/// What the reconcilers need to know about a tenant.
pub fn tenant_info(cluster_key: &str, spec: &v1::TenantSpec) -> TenantInfo {
    let vc = spec.vc.clone().unwrap_or_default();
    TenantInfo {
        cluster_key: cluster_key.to_string(),
        vc_name: vc.name,
        vc_namespace: vc.namespace,
        opaque_prefixes: spec.opaque_meta_prefixes.clone(),
        transparent_prefixes: spec.transparent_meta_prefixes.clone(),
        cluster_domain: if spec.cluster_domain.is_empty() {
            DEFAULT_CLUSTER_DOMAIN.to_owned()
        } else {
            spec.cluster_domain.clone()
        },
    }
}

/// Whether `domain` is a valid cluster domain: a DNS-1123 subdomain (labels of `[a-z0-9-]`, at most 253
/// characters) without a trailing dot.
pub fn is_cluster_domain(domain: &str) -> bool {
    domain.len() <= 253 && domain.split('.').all(naming::is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";

    fn spec() -> v1::TenantSpec {
        v1::TenantSpec {
            vc: Some(v1::VirtualClusterRef::new("team", "vc1", "u-1")),
            kubeconfig: KUBECONFIG.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_cluster_key_follows_the_naming_rule() -> Result<(), SpecError> {
        assert_eq!(
            validate(&spec())?,
            naming::cluster_key("team", "vc1", "u-1")
        );
        let mut with_status = spec();
        with_status.cluster_namespace = "custom-key".into();
        assert_eq!(validate(&with_status)?, "custom-key");
        Ok(())
    }

    #[test]
    fn the_cluster_domain_reaches_the_tenant_info() -> Result<(), SpecError> {
        let mut s = spec();
        let key = validate(&s)?;
        assert_eq!(tenant_info(&key, &s).cluster_domain, "cluster.local");
        s.cluster_domain = "tenant.example".into();
        let key = validate(&s)?;
        assert_eq!(tenant_info(&key, &s).cluster_domain, "tenant.example");
        assert!(is_cluster_domain("cluster.local") && is_cluster_domain("a-1.b"));
        assert!(
            !is_cluster_domain("") && !is_cluster_domain("x.") && !is_cluster_domain("UP.case")
        );
        Ok(())
    }

    type Mutation = Box<dyn Fn(&mut v1::TenantSpec)>;

    #[test]
    fn malformed_specs_are_refused() {
        let cases: Vec<(&str, Mutation)> = vec![
            ("no vc", Box::new(|s| s.vc = None)),
            (
                "bad name",
                Box::new(|s| s.vc.as_mut().map_or((), |v| v.name = "Bad_Name".into())),
            ),
            (
                "no uid",
                Box::new(|s| s.vc.as_mut().map_or((), |v| v.uid.clear())),
            ),
            ("no kubeconfig", Box::new(|s| s.kubeconfig.clear())),
            (
                "bad kubeconfig",
                Box::new(|s| s.kubeconfig = "clusters: [[[".into()),
            ),
            (
                "empty kubeconfig",
                Box::new(|s| s.kubeconfig = "apiVersion: v1\nkind: Config\n".into()),
            ),
            (
                "bad status",
                Box::new(|s| s.cluster_namespace = "UPPER".into()),
            ),
            (
                "bad ca",
                Box::new(|s| s.kubelet_client_ca_pem = "nope".into()),
            ),
            (
                "bad cluster domain",
                Box::new(|s| s.cluster_domain = "Tenant..example".into()),
            ),
            (
                "empty prefix",
                Box::new(|s| s.opaque_meta_prefixes = vec![" ".into()]),
            ),
        ];
        for (what, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert!(validate(&s).is_err(), "{what} must be refused");
        }
    }
}
