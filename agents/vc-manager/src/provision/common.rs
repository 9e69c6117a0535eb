//! What every provisioner creates: the root namespace, the PKI Secrets and the kubeconfig Secrets.

use std::net::{IpAddr, Ipv4Addr};

use time::OffsetDateTime;
use vc_api::secrets as names;

use super::{Provisioned, Readiness, Tenant};
use crate::error::Error;
use crate::kubeconfig::{self, KubeconfigParts};
use crate::pki::{self, Pki, PkiSettings, Sans, SecretData, SecretSet};
use crate::super_api;

/// Name of the tenant's kubeconfig context/cluster/user: the cluster key.
fn context_name(tenant: &Tenant<'_>) -> String {
    tenant.checked.cluster_key.clone()
}

/// SANs of the tenant apiserver's serving certificate: loopback, the in-tenant `kubernetes` Service
/// names and its ClusterIP (first address of the tenant's service range), and, when it runs in the super
/// cluster, its Service's names in the root namespace and its ClusterIP.
pub fn apiserver_sans(tenant: &Tenant<'_>, service: Option<(&str, Option<IpAddr>)>) -> Sans {
    let domain = &tenant.checked.cluster_domain;
    let mut dns: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    dns.push(format!("kubernetes.default.svc.{domain}"));
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(tenant.checked.service_cidr.first_host()),
    ];
    if let Some((svc, cluster_ip)) = service {
        let ns = &tenant.checked.cluster_key;
        dns.push(svc.to_string());
        dns.push(format!("{svc}.{ns}"));
        dns.push(format!("{svc}.{ns}.svc"));
        dns.push(format!("{svc}.{ns}.svc.cluster.local"));
        ips.extend(cluster_ip);
    }
    Sans { dns, ips }
}

/// SANs of the etcd serving certificate: loopback and the names of an etcd StatefulSet `name` behind a
/// headless Service of the same name in the root namespace.
pub fn etcd_sans(tenant: &Tenant<'_>, name: &str) -> Sans {
    let ns = &tenant.checked.cluster_key;
    Sans {
        dns: vec![
            "localhost".into(),
            name.to_string(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("*.{name}"),
            format!("*.{name}.{ns}"),
            format!("*.{name}.{ns}.svc"),
            format!("*.{name}.{ns}.svc.cluster.local"),
        ],
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    }
}

/// The root namespace and PKI Secrets after [`ensure_base`].
pub struct Base {
    /// The tenant PKI (root CA usable for signing).
    pub pki: Pki,
    /// Secrets as stored before this pass (kubeconfig secrets are read from here).
    pub stored: SecretSet,
    /// Whether anything was written.
    pub changed: bool,
    /// Settings the PKI was computed with.
    pub settings: PkiSettings,
}

/// Creates the root namespace and writes the PKI Secrets that differ from what is stored.
pub async fn ensure_base(
    client: &kube::Client,
    tenant: &Tenant<'_>,
    apiserver: Sans,
    etcd: Sans,
) -> Result<Base, Error> {
    let ns = tenant.checked.cluster_key.as_str();
    let mut changed = super_api::ensure_namespace(client, ns, tenant.vc).await?;
    let stored = super_api::read_secrets(client, ns, tenant.vc).await?;
    let settings = PkiSettings {
        expire_days: tenant.checked.pki_expire_days,
        apiserver_sans: apiserver,
        etcd_sans: etcd,
        now: tenant.now,
    };
    let pki = pki::ensure(&settings, &stored)?;
    if !pki.outcome.issued.is_empty() {
        tracing::info!(namespace = ns, issued = ?pki.outcome.issued, "tenant PKI issued");
    }
    for (name, data) in &pki.outcome.secrets {
        if stored.get(name) != Some(data) {
            changed |= super_api::ensure_secret(client, ns, name, data, tenant.vc).await?;
        }
    }
    Ok(Base {
        pki,
        stored,
        changed,
        settings,
    })
}

/// [`ensure_base`] for a control plane on loopback (embedded, process): serving certificates for the
/// loopback and in-tenant names only.
pub async fn ensure_local_base(client: &kube::Client, tenant: &Tenant<'_>) -> Result<Base, Error> {
    ensure_base(
        client,
        tenant,
        apiserver_sans(tenant, None),
        etcd_sans(tenant, "etcd"),
    )
    .await
}

/// Kubeconfig users: secret name, key, common name, organisation.
const USERS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        names::ADMIN_KUBECONFIG,
        names::ADMIN_KUBECONFIG_KEY,
        "admin",
        Some("system:masters"),
    ),
    (
        names::CONTROLLER_MANAGER_KUBECONFIG,
        names::CONTROLLER_MANAGER_KUBECONFIG_KEY,
        "system:kube-controller-manager",
        None,
    ),
];

/// The kubeconfig Secrets, after [`ensure_kubeconfigs`].
pub struct Kubeconfigs {
    /// The cluster-admin kubeconfig.
    pub admin: String,
    /// Whether anything was written.
    pub changed: bool,
    /// Earliest renewal of the client certificates.
    pub next_renewal: OffsetDateTime,
}

/// Writes the admin and controller-manager kubeconfig Secrets for `server` (client certificates signed by
/// the root CA, kept until due like any leaf).
pub async fn ensure_kubeconfigs(
    client: &kube::Client,
    tenant: &Tenant<'_>,
    base: &Base,
    server: &str,
) -> Result<Kubeconfigs, Error> {
    let ns = tenant.checked.cluster_key.as_str();
    let name = context_name(tenant);
    let mut out = Kubeconfigs {
        admin: String::new(),
        changed: false,
        next_renewal: base.pki.outcome.next_renewal,
    };
    for (secret, key, cn, org) in USERS {
        let stored = base.stored.get(*secret);
        let (leaf, _, due) = pki::client_cert(&base.pki.root, cn, *org, stored, &base.settings)?;
        out.next_renewal = out.next_renewal.min(due);
        let yaml = kubeconfig::render(&KubeconfigParts {
            name: &name,
            server,
            ca_pem: &base.pki.root.cert_pem,
            client_cert_pem: &leaf.cert_pem,
            client_key_pem: &leaf.key_pem,
        });
        let data: SecretData = [
            (names::TLS_CRT.to_string(), leaf.cert_pem.clone()),
            (names::TLS_KEY.to_string(), leaf.key_pem.clone()),
            ((*key).to_string(), yaml.clone()),
        ]
        .into_iter()
        .collect();
        if stored != Some(&data) {
            out.changed |= super_api::ensure_secret(client, ns, secret, &data, tenant.vc).await?;
        }
        if *secret == names::ADMIN_KUBECONFIG {
            out.admin = yaml;
        }
    }
    Ok(out)
}

/// The tenant's service range as `network/prefix` (the API server's `--service-cluster-ip-range`).
pub fn service_cidr(tenant: &Tenant<'_>) -> String {
    format!(
        "{}/{}",
        tenant.checked.service_cidr.network, tenant.checked.service_cidr.prefix
    )
}

/// Probes the tenant API server through the admin kubeconfig (verifying TLS against the tenant CA).
pub async fn probe(admin: &str) -> Readiness {
    match kubeconfig::client(admin).await {
        Ok(client) => match client.apiserver_version().await {
            Ok(_) => Readiness::Ready,
            Err(e) => Readiness::Waiting(format!("tenant API server not answering yet: {e}")),
        },
        Err(e) => Readiness::Waiting(format!("tenant kubeconfig unusable: {e}")),
    }
}

/// The end of a provisioner whose API server runs outside the super cluster at `url` (embedded,
/// process): writes the kubeconfig Secrets for it, probes it through the admin kubeconfig, reports.
pub async fn finish_at(
    client: &kube::Client,
    tenant: &Tenant<'_>,
    base: &Base,
    url: &str,
) -> Result<Provisioned, Error> {
    let kubeconfigs = ensure_kubeconfigs(client, tenant, base, url).await?;
    let readiness = probe(&kubeconfigs.admin).await;
    Ok(Provisioned {
        readiness,
        admin_kubeconfig: kubeconfigs.admin,
        root_ca_pem: base.pki.root.cert_pem.clone(),
        changed: base.changed || kubeconfigs.changed,
        next_renewal: kubeconfigs.next_renewal,
    })
}
