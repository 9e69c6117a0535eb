//! The tenant's PKI: what must exist, what may be kept, what must be re-issued.
//!
//! Pure (no API calls): [`ensure`] takes the PEM material already stored (Secret name → key → PEM) and
//! returns the material that must be stored, re-using everything still good:
//!
//! - **CAs** (root, etcd, front-proxy) keep their key forever; a CA certificate near expiry is renewed
//!   with the same key and subject, so every certificate it signed stays valid.
//! - **Leaf certificates** are re-issued (new key) when less than a third of their lifetime is left, when
//!   their lifetime differs from `pkiExpireDays`, when they no longer verify against their CA, or when
//!   they lack a required SAN (e.g. the apiserver Service got a new ClusterIP).
//! - The **service-account key pair** is never regenerated once stored (tokens the tenant issued stay
//!   valid); only a missing or unparsable pair is generated.
//!
//! Keys are ECDSA P-256 (rcgen with ring). Certificates carry random 127-bit serial numbers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use vc_api::secrets as names;

/// PEM texts of one Secret: key → PEM.
pub type SecretData = BTreeMap<String, String>;
/// Secrets by name.
pub type SecretSet = BTreeMap<String, SecretData>;

/// Why the PKI could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed to generate or sign.
    #[error("failed to generate {what}")]
    Generate {
        /// Which item.
        what: String,
        /// Cause.
        #[source]
        source: rcgen::Error,
    },
    /// A SAN is not a valid DNS name.
    #[error("invalid DNS name for a certificate: {0}")]
    DnsName(String),
}

/// Names and addresses a certificate must be valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sans {
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

/// Inputs of [`ensure`].
#[derive(Clone, Debug)]
pub struct PkiSettings {
    /// Certificate lifetime (`spec.pkiExpireDays`).
    pub expire_days: i64,
    /// SANs of the apiserver's serving certificate.
    pub apiserver_sans: Sans,
    /// SANs of the etcd serving certificate.
    pub etcd_sans: Sans,
    /// The current time (a parameter so rotation can be tested).
    pub now: OffsetDateTime,
}

/// The result of [`ensure`].
#[derive(Clone, Debug)]
pub struct PkiOutcome {
    /// Every PKI Secret with its full desired contents.
    pub secrets: SecretSet,
    /// What was generated or re-issued this time (empty when everything was kept).
    pub issued: Vec<String>,
    /// When the earliest certificate becomes due for renewal.
    pub next_renewal: OffsetDateTime,
}

/// A CA ready to sign.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// PEM of its certificate.
    pub cert_pem: String,
    /// PEM of its private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A leaf certificate with its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
}

/// What a leaf certificate is for.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Label in `issued` and errors.
    pub what: String,
    /// Subject common name.
    pub common_name: String,
    /// Subject organisation (RBAC group), if any.
    pub organization: Option<String>,
    /// SANs required.
    pub sans: Sans,
    /// Server authentication.
    pub server: bool,
    /// Client authentication.
    pub client: bool,
}

/// Tracks what was issued and the earliest renewal time across items.
struct Book {
    issued: Vec<String>,
    next_renewal: OffsetDateTime,
}

impl Book {
    fn note(&mut self, due: OffsetDateTime) {
        if due < self.next_renewal {
            self.next_renewal = due;
        }
    }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + use<> {
    let what = what.to_string();
    move |source| PkiError::Generate { what, source }
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from(bytes.to_vec())
}

/// When a certificate valid from `not_before` to `not_after` is due for renewal: when less than a third
/// of its lifetime is left.
pub fn renewal_due(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    not_after - lifetime / 3
}

/// Facts read from a stored certificate.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DER of its SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
}

/// Parses a PEM certificate; `None` when it does not parse.
pub fn cert_info(pem: &str) -> Option<CertInfo> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let validity = cert.validity();
    let not_before = OffsetDateTime::from_unix_timestamp(validity.not_before.timestamp()).ok()?;
    let not_after = OffsetDateTime::from_unix_timestamp(validity.not_after.timestamp()).ok()?;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push((*d).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                        ips.push(IpAddr::from(octets));
                    } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                        ips.push(IpAddr::from(octets));
                    }
                }
                _ => {}
            }
        }
    }
    Some(CertInfo {
        not_before,
        not_after,
        spki_der: cert.public_key().raw.to_vec(),
        dns,
        ips,
    })
}

/// Whether the certificate `cert_pem` carries a valid signature by the CA certificate `ca_pem`.
pub fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    fn parse(pem: &str) -> Option<(&[u8], x509_parser::pem::Pem)> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()
    }
    let (Some((_, cert)), Some((_, ca))) = (parse(cert_pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok(cert), Ok(ca)) = (cert.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// `true` when `info` was issued for `expire_days` (± one day), is not due, and covers `sans`.
fn still_good(info: &CertInfo, settings: &PkiSettings, sans: &Sans) -> bool {
    let lifetime = info.not_after - info.not_before;
    let wanted = Duration::days(settings.expire_days);
    let lifetime_ok = (lifetime - wanted).abs() <= Duration::days(1);
    let not_due = settings.now < renewal_due(info.not_before, info.not_after);
    let valid_now = settings.now >= info.not_before - Duration::minutes(5);
    let covers = sans.dns.iter().all(|d| info.dns.contains(d))
        && sans.ips.iter().all(|ip| info.ips.contains(ip));
    lifetime_ok && not_due && valid_now && covers
}

fn validity(params: &mut CertificateParams, settings: &PkiSettings) {
    // Backdated a little for clock skew between the super cluster's nodes.
    params.not_before = settings.now - Duration::minutes(5);
    params.not_after = settings.now + Duration::days(settings.expire_days) - Duration::minutes(5);
    params.serial_number = Some(serial());
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn key_from(pem: Option<&String>) -> Option<KeyPair> {
    pem.and_then(|p| KeyPair::from_pem(p).ok())
}

/// Keeps or (re)issues a CA: the key is kept whenever it parses; the certificate is kept while
/// [`still_good`] and matching the key, else renewed with the same key and subject.
fn ensure_ca(
    what: &str,
    common_name: &str,
    cert_pem: Option<&String>,
    key_pem: Option<&String>,
    settings: &PkiSettings,
    book: &mut Book,
) -> Result<Ca, PkiError> {
    let mut params = ca_params(common_name);
    let (key, fresh_key) = match key_from(key_pem) {
        Some(key) => (key, false),
        None => (KeyPair::generate().map_err(gen_err(what))?, true),
    };
    let key_pem = key.serialize_pem();
    if !fresh_key
        && let Some(pem) = cert_pem
        && let Some(info) = cert_info(pem)
        && info.spki_der == key.subject_public_key_info()
        && still_good(&info, settings, &Sans::default())
    {
        book.note(renewal_due(info.not_before, info.not_after));
        return Ok(Ca {
            params,
            key,
            cert_pem: pem.clone(),
            key_pem,
        });
    }
    validity(&mut params, settings);
    let cert = params.self_signed(&key).map_err(gen_err(what))?;
    book.issued.push(what.to_string());
    book.note(renewal_due(params.not_before, params.not_after));
    Ok(Ca {
        params,
        key,
        cert_pem: cert.pem(),
        key_pem,
    })
}

fn san_types(sans: &Sans) -> Result<Vec<SanType>, PkiError> {
    let mut out = Vec::with_capacity(sans.dns.len() + sans.ips.len());
    for name in &sans.dns {
        let ia5 = name
            .as_str()
            .try_into()
            .map_err(|_| PkiError::DnsName(name.clone()))?;
        out.push(SanType::DnsName(ia5));
    }
    out.extend(sans.ips.iter().copied().map(SanType::IpAddress));
    Ok(out)
}

/// Keeps or (re)issues a leaf certificate signed by `ca`.
pub fn ensure_leaf(
    spec: &LeafSpec,
    ca: &Ca,
    cert_pem: Option<&String>,
    key_pem: Option<&String>,
    settings: &PkiSettings,
) -> Result<(Leaf, bool, OffsetDateTime), PkiError> {
    if let (Some(cert), Some(key)) = (cert_pem, key_pem)
        && let Some(info) = cert_info(cert)
        && let Some(pair) = key_from(Some(key))
        && info.spki_der == pair.subject_public_key_info()
        && still_good(&info, settings, &spec.sans)
        && signed_by(cert, &ca.cert_pem)
    {
        let leaf = Leaf {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        };
        return Ok((leaf, false, renewal_due(info.not_before, info.not_after)));
    }
    let key = KeyPair::generate().map_err(gen_err(&spec.what))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name.as_str());
    if let Some(org) = &spec.organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org.as_str());
    }
    params.subject_alt_names = san_types(&spec.sans)?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if spec.server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    validity(&mut params, settings);
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(gen_err(&spec.what))?;
    let due = renewal_due(params.not_before, params.not_after);
    Ok((
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
        true,
        due,
    ))
}

fn leaf_into(
    book: &mut Book,
    spec: &LeafSpec,
    ca: &Ca,
    stored: Option<&SecretData>,
    cert_key: (&str, &str),
    settings: &PkiSettings,
) -> Result<Leaf, PkiError> {
    let cert = stored.and_then(|d| d.get(cert_key.0));
    let key = stored.and_then(|d| d.get(cert_key.1));
    let (leaf, issued, due) = ensure_leaf(spec, ca, cert, key, settings)?;
    if issued {
        book.issued.push(spec.what.clone());
    }
    book.note(due);
    Ok(leaf)
}

fn data(entries: &[(&str, &str)]) -> SecretData {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The root CA as stored (or freshly made) — for signing client certificates of kubeconfigs.
pub struct Pki {
    /// The tenant's root CA.
    pub root: Ca,
    /// What [`ensure`] decided.
    pub outcome: PkiOutcome,
}

/// Computes the PKI Secrets from what is stored (see the module docs for what is kept).
pub fn ensure(settings: &PkiSettings, stored: &SecretSet) -> Result<Pki, PkiError> {
    let mut book = Book {
        issued: Vec::new(),
        next_renewal: settings.now + Duration::days(settings.expire_days.max(1)),
    };
    let get = |name: &str| stored.get(name);
    let root_stored = get(names::ROOT_CA);
    let root = ensure_ca(
        "root CA",
        "vc-root-ca",
        root_stored.and_then(|d| d.get(names::TLS_CRT)),
        root_stored.and_then(|d| d.get(names::TLS_KEY)),
        settings,
        &mut book,
    )?;
    let apiserver = leaf_into(
        &mut book,
        &LeafSpec {
            what: "apiserver serving certificate".into(),
            common_name: "kube-apiserver".into(),
            organization: None,
            sans: settings.apiserver_sans.clone(),
            server: true,
            client: false,
        },
        &root,
        get(names::APISERVER_CA),
        (names::TLS_CRT, names::TLS_KEY),
        settings,
    )?;

    let etcd_stored = get(names::ETCD_CA);
    let etcd_ca = ensure_ca(
        "etcd CA",
        "vc-etcd-ca",
        etcd_stored.and_then(|d| d.get(names::CA_CRT)),
        etcd_stored.and_then(|d| d.get(names::CA_KEY)),
        settings,
        &mut book,
    )?;
    let etcd_server = leaf_into(
        &mut book,
        &LeafSpec {
            what: "etcd serving certificate".into(),
            common_name: "etcd".into(),
            organization: None,
            sans: settings.etcd_sans.clone(),
            server: true,
            client: true,
        },
        &etcd_ca,
        etcd_stored,
        (names::TLS_CRT, names::TLS_KEY),
        settings,
    )?;
    let etcd_client = leaf_into(
        &mut book,
        &LeafSpec {
            what: "apiserver etcd client certificate".into(),
            common_name: "kube-apiserver-etcd-client".into(),
            organization: None,
            sans: Sans::default(),
            server: false,
            client: true,
        },
        &etcd_ca,
        etcd_stored,
        (names::CLIENT_CRT, names::CLIENT_KEY),
        settings,
    )?;

    let fp_stored = get(names::FRONT_PROXY_CA);
    let front_proxy_ca = ensure_ca(
        "front-proxy CA",
        "vc-front-proxy-ca",
        fp_stored.and_then(|d| d.get(names::CA_CRT)),
        fp_stored.and_then(|d| d.get(names::CA_KEY)),
        settings,
        &mut book,
    )?;
    let front_proxy_client = leaf_into(
        &mut book,
        &LeafSpec {
            what: "front-proxy client certificate".into(),
            common_name: "front-proxy-client".into(),
            organization: None,
            sans: Sans::default(),
            server: false,
            client: true,
        },
        &front_proxy_ca,
        fp_stored,
        (names::TLS_CRT, names::TLS_KEY),
        settings,
    )?;

    // The service-account key pair: kept whenever the private key parses.
    let sa_stored = get(names::SERVICE_ACCOUNT);
    let sa_key = match key_from(sa_stored.and_then(|d| d.get(names::TLS_KEY))) {
        Some(key) => key,
        None => {
            book.issued.push("service-account key pair".into());
            KeyPair::generate().map_err(gen_err("service-account key pair"))?
        }
    };
    let sa_private = match sa_stored.and_then(|d| d.get(names::TLS_KEY)) {
        Some(pem) if KeyPair::from_pem(pem).is_ok() => pem.clone(),
        _ => sa_key.serialize_pem(),
    };

    let mut secrets = SecretSet::new();
    secrets.insert(
        names::ROOT_CA.into(),
        data(&[
            (names::TLS_CRT, &root.cert_pem),
            (names::TLS_KEY, &root.key_pem),
        ]),
    );
    secrets.insert(
        names::APISERVER_CA.into(),
        data(&[
            (names::TLS_CRT, &apiserver.cert_pem),
            (names::TLS_KEY, &apiserver.key_pem),
        ]),
    );
    secrets.insert(
        names::ETCD_CA.into(),
        data(&[
            (names::CA_CRT, &etcd_ca.cert_pem),
            (names::CA_KEY, &etcd_ca.key_pem),
            (names::TLS_CRT, &etcd_server.cert_pem),
            (names::TLS_KEY, &etcd_server.key_pem),
            (names::CLIENT_CRT, &etcd_client.cert_pem),
            (names::CLIENT_KEY, &etcd_client.key_pem),
        ]),
    );
    secrets.insert(
        names::FRONT_PROXY_CA.into(),
        data(&[
            (names::CA_CRT, &front_proxy_ca.cert_pem),
            (names::CA_KEY, &front_proxy_ca.key_pem),
            (names::TLS_CRT, &front_proxy_client.cert_pem),
            (names::TLS_KEY, &front_proxy_client.key_pem),
        ]),
    );
    secrets.insert(
        names::SERVICE_ACCOUNT.into(),
        data(&[
            (names::TLS_KEY, &sa_private),
            (names::TLS_PUB, &sa_key.public_key_pem()),
        ]),
    );
    Ok(Pki {
        root,
        outcome: PkiOutcome {
            secrets,
            issued: book.issued,
            next_renewal: book.next_renewal,
        },
    })
}

/// A client certificate for a kubeconfig user, kept or re-issued like any leaf.
pub fn client_cert(
    root: &Ca,
    common_name: &str,
    organization: Option<&str>,
    stored: Option<&SecretData>,
    settings: &PkiSettings,
) -> Result<(Leaf, bool, OffsetDateTime), PkiError> {
    let spec = LeafSpec {
        what: format!("{common_name} client certificate"),
        common_name: common_name.to_string(),
        organization: organization.map(str::to_string),
        sans: Sans::default(),
        server: false,
        client: true,
    };
    ensure_leaf(
        &spec,
        root,
        stored.and_then(|d| d.get(names::TLS_CRT)),
        stored.and_then(|d| d.get(names::TLS_KEY)),
        settings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn settings(now: OffsetDateTime, days: i64, cluster_ip: Ipv4Addr) -> PkiSettings {
        PkiSettings {
            expire_days: days,
            apiserver_sans: Sans {
                dns: vec!["apiserver-svc.ns.svc".into(), "kubernetes.default".into()],
                ips: vec![IpAddr::V4(cluster_ip), IpAddr::V4(Ipv4Addr::LOCALHOST)],
            },
            etcd_sans: Sans {
                dns: vec!["etcd-0.etcd".into()],
                ips: vec![],
            },
            now,
        }
    }

    fn leaf_pem(set: &SecretSet, secret: &str, key: &str) -> String {
        set.get(secret)
            .and_then(|d| d.get(key))
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn fresh_pki_chains_and_honours_expire_days() {
        let now = OffsetDateTime::now_utc();
        let pki = ensure(
            &settings(now, 30, Ipv4Addr::new(10, 0, 0, 7)),
            &SecretSet::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let s = &pki.outcome.secrets;
        assert_eq!(pki.outcome.issued.len(), 8, "{:?}", pki.outcome.issued);
        let root = leaf_pem(s, names::ROOT_CA, names::TLS_CRT);
        let api = leaf_pem(s, names::APISERVER_CA, names::TLS_CRT);
        assert!(signed_by(&api, &root));
        let etcd_ca = leaf_pem(s, names::ETCD_CA, names::CA_CRT);
        assert!(signed_by(
            &leaf_pem(s, names::ETCD_CA, names::TLS_CRT),
            &etcd_ca
        ));
        assert!(signed_by(
            &leaf_pem(s, names::ETCD_CA, names::CLIENT_CRT),
            &etcd_ca
        ));
        assert!(!signed_by(
            &leaf_pem(s, names::ETCD_CA, names::TLS_CRT),
            &root
        ));
        let info = cert_info(&api).unwrap_or_else(|| panic!("parse"));
        let days = (info.not_after - info.not_before).whole_days();
        assert_eq!(days, 30);
        assert!(info.ips.contains(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))));
        assert!(info.dns.contains(&"apiserver-svc.ns.svc".to_string()));
        // Renewal is due when a third of the lifetime is left.
        let due = pki.outcome.next_renewal - now;
        assert!(
            (due - Duration::days(20)).abs() < Duration::hours(1),
            "{due}"
        );
    }

    #[test]
    fn second_run_keeps_everything() {
        let now = OffsetDateTime::now_utc();
        let st = settings(now, 365, Ipv4Addr::new(10, 0, 0, 7));
        let first = ensure(&st, &SecretSet::new()).unwrap_or_else(|e| panic!("{e}"));
        let second = ensure(&st, &first.outcome.secrets).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            second.outcome.issued.is_empty(),
            "{:?}",
            second.outcome.issued
        );
        assert_eq!(second.outcome.secrets, first.outcome.secrets);
    }

    #[test]
    fn rotation_reissues_certificates_but_never_the_service_account_key() {
        let now = OffsetDateTime::now_utc();
        let st = settings(now, 90, Ipv4Addr::new(10, 0, 0, 7));
        let first = ensure(&st, &SecretSet::new()).unwrap_or_else(|e| panic!("{e}"));
        // 61 days later less than a third of the 90 days is left: everything is renewed …
        let later = settings(now + Duration::days(61), 90, Ipv4Addr::new(10, 0, 0, 7));
        let second = ensure(&later, &first.outcome.secrets).unwrap_or_else(|e| panic!("{e}"));
        let a = &first.outcome.secrets;
        let b = &second.outcome.secrets;
        assert_ne!(
            leaf_pem(a, names::APISERVER_CA, names::TLS_CRT),
            leaf_pem(b, names::APISERVER_CA, names::TLS_CRT)
        );
        assert_ne!(
            leaf_pem(a, names::ROOT_CA, names::TLS_CRT),
            leaf_pem(b, names::ROOT_CA, names::TLS_CRT)
        );
        // … the CAs keep their keys, so certificates signed by the old CA certificate still verify …
        assert_eq!(
            leaf_pem(a, names::ROOT_CA, names::TLS_KEY),
            leaf_pem(b, names::ROOT_CA, names::TLS_KEY)
        );
        assert!(signed_by(
            &leaf_pem(a, names::APISERVER_CA, names::TLS_CRT),
            &leaf_pem(b, names::ROOT_CA, names::TLS_CRT)
        ));
        // … and the service-account key pair is untouched.
        assert_eq!(a.get(names::SERVICE_ACCOUNT), b.get(names::SERVICE_ACCOUNT));
        assert!(
            !second
                .outcome
                .issued
                .iter()
                .any(|i| i.contains("service-account"))
        );
        // 20 days after the first issue nothing is due yet.
        let early = settings(now + Duration::days(20), 90, Ipv4Addr::new(10, 0, 0, 7));
        let third = ensure(&early, &first.outcome.secrets).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            third.outcome.issued.is_empty(),
            "{:?}",
            third.outcome.issued
        );
    }

    #[test]
    fn new_cluster_ip_reissues_only_the_apiserver_certificate() {
        let now = OffsetDateTime::now_utc();
        let first = ensure(
            &settings(now, 365, Ipv4Addr::new(10, 0, 0, 7)),
            &SecretSet::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let moved = settings(now, 365, Ipv4Addr::new(10, 0, 0, 9));
        let second = ensure(&moved, &first.outcome.secrets).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            second.outcome.issued,
            vec!["apiserver serving certificate".to_string()]
        );
    }

    #[test]
    fn changed_expire_days_reissues_and_lost_ca_key_reissues_leaves() {
        let now = OffsetDateTime::now_utc();
        let first = ensure(
            &settings(now, 365, Ipv4Addr::new(10, 0, 0, 7)),
            &SecretSet::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shorter = ensure(
            &settings(now, 30, Ipv4Addr::new(10, 0, 0, 7)),
            &first.outcome.secrets,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            shorter
                .outcome
                .issued
                .contains(&"apiserver serving certificate".to_string())
        );
        let mut lost = first.outcome.secrets.clone();
        lost.remove(names::ROOT_CA);
        let again = ensure(&settings(now, 365, Ipv4Addr::new(10, 0, 0, 7)), &lost)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.outcome.issued.contains(&"root CA".to_string()));
        assert!(
            again
                .outcome
                .issued
                .contains(&"apiserver serving certificate".to_string())
        );
        assert_eq!(
            again.outcome.secrets.get(names::SERVICE_ACCOUNT),
            first.outcome.secrets.get(names::SERVICE_ACCOUNT)
        );
    }
}
