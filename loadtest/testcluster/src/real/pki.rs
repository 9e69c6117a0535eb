//! The certificates and keys a real kube-apiserver needs, generated fresh for every cluster.
//!
//! One CA signs the apiserver's serving certificate and the admin client certificate; a separate key pair
//! signs service-account tokens. The admin certificate's organisation is `system:masters`, the group the
//! apiserver's RBAC bootstrap policy binds to `cluster-admin`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::TestClusterError;

/// PEM files of one cluster's PKI, all inside one directory.
#[derive(Debug, Clone)]
pub(crate) struct PkiFiles {
    /// CA certificate: `--client-ca-file`, and the kubeconfig's `certificate-authority-data`.
    pub(crate) ca_cert: PathBuf,
    /// Serving certificate of the apiserver (`--tls-cert-file`).
    pub(crate) serving_cert: PathBuf,
    /// Its key (`--tls-private-key-file`).
    pub(crate) serving_key: PathBuf,
    /// Service-account public key (`--service-account-key-file`).
    pub(crate) sa_public_key: PathBuf,
    /// Service-account private key (`--service-account-signing-key-file`).
    pub(crate) sa_private_key: PathBuf,
    /// PEM of the CA certificate, embedded in the kubeconfig.
    pub(crate) ca_cert_pem: String,
    /// PEM of the admin client certificate (`O=system:masters`), embedded in the kubeconfig.
    pub(crate) admin_cert_pem: String,
    /// PEM of the admin client key, embedded in the kubeconfig.
    pub(crate) admin_key_pem: String,
}

/// The DNS names and addresses the serving certificate is valid for: every name a client inside or
/// outside the cluster may use for the apiserver.
fn serving_sans(first_service_ip: Ipv4Addr) -> Vec<SanType> {
    let mut sans = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V4(first_service_ip)),
    ];
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        if let Ok(name) = name.try_into() {
            sans.push(SanType::DnsName(name));
        }
    }
    sans
}

fn cert_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> TestClusterError {
    move |source| TestClusterError::Certificate { what, source }
}

fn write(path: &Path, contents: &str) -> Result<(), TestClusterError> {
    std::fs::write(path, contents).map_err(|source| TestClusterError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Generates the CA, serving, admin and service-account material and writes it to `dir`.
pub(crate) fn generate(
    dir: &Path,
    first_service_ip: Ipv4Addr,
) -> Result<PkiFiles, TestClusterError> {
    let ca_key = KeyPair::generate().map_err(cert_err("CA key"))?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "testcluster-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(cert_err("CA certificate"))?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let serving_key = KeyPair::generate().map_err(cert_err("serving key"))?;
    let mut serving_params = CertificateParams::default();
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving_params.subject_alt_names = serving_sans(first_service_ip);
    serving_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving_params
        .signed_by(&serving_key, &issuer)
        .map_err(cert_err("serving certificate"))?;

    let admin_key = KeyPair::generate().map_err(cert_err("admin key"))?;
    let mut admin_params = CertificateParams::default();
    admin_params.distinguished_name = rcgen::DistinguishedName::new();
    admin_params
        .distinguished_name
        .push(DnType::CommonName, "testcluster-admin");
    admin_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin_params
        .signed_by(&admin_key, &issuer)
        .map_err(cert_err("admin client certificate"))?;

    let sa_key = KeyPair::generate().map_err(cert_err("service-account key"))?;

    let files = PkiFiles {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        sa_public_key: dir.join("sa.pub"),
        sa_private_key: dir.join("sa.key"),
        ca_cert_pem: ca_cert.pem(),
        admin_cert_pem: admin_cert.pem(),
        admin_key_pem: admin_key.serialize_pem(),
    };
    write(&files.ca_cert, &files.ca_cert_pem)?;
    write(&files.serving_cert, &serving_cert.pem())?;
    write(&files.serving_key, &serving_key.serialize_pem())?;
    write(&files.sa_public_key, &sa_key.public_key_pem())?;
    write(&files.sa_private_key, &sa_key.serialize_pem())?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_as_pem() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let files = generate(dir.path(), Ipv4Addr::new(10, 96, 0, 1))?;
        for (path, header) in [
            (&files.ca_cert, "-----BEGIN CERTIFICATE-----"),
            (&files.serving_cert, "-----BEGIN CERTIFICATE-----"),
            (&files.serving_key, "-----BEGIN PRIVATE KEY-----"),
            (&files.sa_public_key, "-----BEGIN PUBLIC KEY-----"),
            (&files.sa_private_key, "-----BEGIN PRIVATE KEY-----"),
        ] {
            let text = std::fs::read_to_string(path)?;
            assert!(text.starts_with(header), "{}: {text}", path.display());
        }
        assert!(
            files
                .admin_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        Ok(())
    }

    #[test]
    fn serving_sans_cover_loopback_service_ip_and_cluster_names() {
        let sans = serving_sans(Ipv4Addr::new(10, 96, 0, 1));
        let text = format!("{sans:?}");
        for expected in [
            "127.0.0.1",
            "10.96.0.1",
            "\"localhost\"",
            "\"kubernetes.default.svc\"",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
    }

    /// Runs `openssl` with `args`; `None` when openssl is not installed.
    fn openssl(args: &[&str]) -> Option<std::process::Output> {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .ok()
    }

    #[test]
    fn chain_verifies_with_openssl() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let files = generate(dir.path(), Ipv4Addr::new(10, 96, 0, 1))?;
        let admin_cert = dir.path().join("admin.crt");
        std::fs::write(&admin_cert, &files.admin_cert_pem)?;
        let ca = files.ca_cert.to_string_lossy().to_string();
        let serving = files.serving_cert.to_string_lossy().to_string();
        let admin = admin_cert.to_string_lossy().to_string();
        let Some(out) = openssl(&["verify", "-CAfile", &ca, "-purpose", "sslserver", &serving])
        else {
            eprintln!("openssl not installed: chain check skipped");
            return Ok(());
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = openssl(&["verify", "-CAfile", &ca, "-purpose", "sslclient", &admin])
            .ok_or_else(|| anyhow::anyhow!("openssl vanished"))?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = openssl(&["x509", "-noout", "-subject", "-in", &admin])
            .ok_or_else(|| anyhow::anyhow!("openssl vanished"))?;
        let subject = String::from_utf8_lossy(&out.stdout);
        assert!(subject.contains("O = system:masters"), "{subject}");
        Ok(())
    }
}
