//! A small certificate authority for the gRPC API: one CA that issues the server certificate and client
//! certificates (rcgen, ECDSA P-256). The syncer uses it to create its default PKI in `<data-dir>/grpc/`
//! ([`PkiFiles::ensure`]); tests use it directly.
//!
//! Certificates carry rcgen's default validity (no expiry in practice). Operators who need rotation or an
//! external CA pass their own PEM files to the syncer instead.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::roles::Role;
use crate::tls::{TlsError, TlsMaterial};

/// Common name of CAs generated here (a CA loaded back with [`CertificateAuthority::from_pem`] must have it).
pub const CA_COMMON_NAME: &str = "tenancy-sync-ca";
/// Common name of the generated server certificate.
pub const SERVER_COMMON_NAME: &str = "tenancy-syncer";
/// Common name of the default client certificate (`client.pem`, role `admin`).
pub const DEFAULT_CLIENT_NAME: &str = "tenancy-sync-client";

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to build a key or certificate.
    #[error("failed to generate {what}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// Cause.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be read or written.
    #[error("failed to access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Files were read but do not form usable TLS material.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// A CA able to issue server and client certificates.
pub struct CertificateAuthority {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl CertificateAuthority {
    /// A fresh self-signed CA.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(gen_err("CA key"))?;
        let params = ca_params();
        let cert = params
            .self_signed(&key)
            .map_err(gen_err("CA certificate"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    /// A CA generated earlier by [`CertificateAuthority::generate`], from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(gen_err("CA key (parsing)"))?;
        Ok(Self {
            params: ca_params(),
            key,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate valid for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_COMMON_NAME);
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    name.clone()
                        .try_into()
                        .map_err(gen_err("server certificate name"))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, "server certificate")
    }

    /// A client certificate with common name `common_name` and no role (it may only call `Health`; see
    /// [`crate::roles`]).
    pub fn issue_client(&self, common_name: &str) -> Result<IssuedCert, PkiError> {
        self.issue_client_cert(common_name, None)
    }

    /// A client certificate with common name `common_name` carrying `role` (its `OU` attribute).
    pub fn issue_client_for(&self, common_name: &str, role: Role) -> Result<IssuedCert, PkiError> {
        self.issue_client_cert(common_name, Some(role))
    }

    fn issue_client_cert(
        &self,
        common_name: &str,
        role: Option<Role>,
    ) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some(role) = role {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, role.as_str());
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, "client certificate")
    }

    fn issue(&self, params: CertificateParams, what: &'static str) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate().map_err(gen_err(what))?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(gen_err(what))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The names the default server certificate is valid for: `localhost`, `127.0.0.1`, `::1`, plus `extra`.
pub fn default_server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        crate::tls::DEFAULT_SERVER_NAME.to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The PEM files of a generated PKI in one directory: `ca.pem`, `ca-key.pem`, `server.pem`,
/// `server-key.pem`, `client.pem`, `client-key.pem` (keys written with mode 0600).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiFiles {
    /// The directory.
    pub dir: PathBuf,
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
    /// Server certificate.
    pub server_cert: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
    /// Client certificate (for peers of the syncer: vc-manager, vn-agent, kubectl-vc).
    pub client_cert: PathBuf,
    /// Client private key.
    pub client_key: PathBuf,
}

impl PkiFiles {
    /// The file names inside `dir` (nothing is read or written).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        }
    }

    /// Uses the PKI in `dir`, issuing whatever is missing: a CA (only when `ca.pem`/`ca-key.pem` are not
    /// there; then every certificate is issued anew), a server certificate for `server_names`, and the
    /// client certificates: `client.pem` with role `admin` and one `<role>.pem` + `<role>-key.pem` for each
    /// other [`Role`]. Existing files are never overwritten otherwise, so clients configured with the CA
    /// keep working across restarts, and a deleted client certificate is re-issued from the same CA. Every
    /// file is written under a temporary name and renamed, so a reader that sees a file sees all of it.
    pub fn ensure(dir: &Path, server_names: &[String]) -> Result<Self, PkiError> {
        let files = Self::in_dir(dir);
        let complete = |cert: &PathBuf, key: &PathBuf| cert.exists() && key.exists();
        if complete(&files.ca_cert, &files.ca_key)
            && complete(&files.server_cert, &files.server_key)
            && files.missing_roles().next().is_none()
        {
            return Ok(files);
        }
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let (ca, fresh) = if complete(&files.ca_cert, &files.ca_key) {
            (files.authority()?, false)
        } else {
            let ca = CertificateAuthority::generate()?;
            write(&files.ca_key, &ca.key_pem(), true)?;
            write(&files.ca_cert, ca.cert_pem(), false)?;
            (ca, true)
        };
        if fresh || !complete(&files.server_cert, &files.server_key) {
            let server = ca.issue_server(server_names)?;
            write(&files.server_key, &server.key_pem, true)?;
            write(&files.server_cert, &server.cert_pem, false)?;
        }
        let roles: Vec<Role> = if fresh {
            Role::ALL.to_vec()
        } else {
            files.missing_roles().collect()
        };
        for role in roles {
            let (cert_path, key_path) = files.role_files(role);
            let name = match role {
                Role::Admin => DEFAULT_CLIENT_NAME,
                other => other.as_str(),
            };
            let cert = ca.issue_client_for(name, role)?;
            write(&key_path, &cert.key_pem, true)?;
            write(&cert_path, &cert.cert_pem, false)?;
        }
        Ok(files)
    }

    /// The certificate and key files of the client certificate for `role`: `client.pem`/`client-key.pem`
    /// for `admin`, `<role>.pem`/`<role>-key.pem` for the others (e.g. `vc-manager.pem`).
    pub fn role_files(&self, role: Role) -> (PathBuf, PathBuf) {
        match role {
            Role::Admin => (self.client_cert.clone(), self.client_key.clone()),
            other => (
                self.dir.join(format!("{other}.pem")),
                self.dir.join(format!("{other}-key.pem")),
            ),
        }
    }

    /// What a client with `role` needs (its certificate and key, and the CA to verify the server).
    pub fn role_material(&self, role: Role) -> Result<TlsMaterial, PkiError> {
        let (cert, key) = self.role_files(role);
        Ok(TlsMaterial::from_files(&self.ca_cert, &cert, &key)?)
    }

    fn missing_roles(&self) -> impl Iterator<Item = Role> + '_ {
        Role::ALL.into_iter().filter(|role| {
            let (cert, key) = self.role_files(*role);
            !(cert.exists() && key.exists())
        })
    }

    /// What the server needs (its certificate, and the CA its clients must be signed by).
    pub fn server_material(&self) -> Result<TlsMaterial, PkiError> {
        Ok(TlsMaterial::from_files(
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
        )?)
    }

    /// What a client needs (the default client certificate, role `admin`, and the CA to verify the server).
    pub fn client_material(&self) -> Result<TlsMaterial, PkiError> {
        Ok(TlsMaterial::from_files(
            &self.ca_cert,
            &self.client_cert,
            &self.client_key,
        )?)
    }

    /// The CA, to issue more client certificates.
    pub fn authority(&self) -> Result<CertificateAuthority, PkiError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| PkiError::Io {
                path: path.clone(),
                source,
            })
        };
        CertificateAuthority::from_pem(&read(&self.ca_cert)?, &read(&self.ca_key)?)
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let err = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_generates_once_and_keeps_existing_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let names = default_server_names(&["syncer.example".to_string()]);
        let files = PkiFiles::ensure(dir.path(), &names)?;
        let first = std::fs::read_to_string(&files.ca_cert)?;
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = PkiFiles::ensure(dir.path(), &names)?;
        assert_eq!(again, files);
        assert_eq!(std::fs::read_to_string(&files.ca_cert)?, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.ca_key)?.permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "private keys must not be group/world readable"
            );
        }
        let material = files.client_material()?;
        assert!(material.key_pem.contains("PRIVATE KEY"));
        // One client certificate per role, each naming its role.
        for role in Role::ALL {
            let material = files.role_material(role)?;
            let id = crate::roles::Identity::from_pem(&material.cert_pem)?;
            assert_eq!(id.roles, vec![role]);
        }
        // A directory from before roles (no role files) gets them from its CA; nothing else changes.
        let (vc_cert, vc_key) = files.role_files(Role::VcManager);
        std::fs::remove_file(&vc_cert)?;
        std::fs::remove_file(&vc_key)?;
        let client_before = std::fs::read_to_string(&files.client_cert)?;
        let server_before = std::fs::read_to_string(&files.server_cert)?;
        PkiFiles::ensure(dir.path(), &names)?;
        let id = crate::roles::Identity::from_pem(&std::fs::read_to_string(&vc_cert)?)?;
        assert_eq!(id.roles, vec![Role::VcManager]);
        assert_eq!(std::fs::read_to_string(&files.client_cert)?, client_before);
        assert_eq!(std::fs::read_to_string(&files.server_cert)?, server_before);
        assert_eq!(std::fs::read_to_string(&files.ca_cert)?, first);
        // A deleted client.pem is re-issued as admin from the same CA.
        std::fs::remove_file(&files.client_cert)?;
        PkiFiles::ensure(dir.path(), &names)?;
        let id = crate::roles::Identity::from_pem(&std::fs::read_to_string(&files.client_cert)?)?;
        assert_eq!(id.roles, vec![Role::Admin]);
        assert_eq!(std::fs::read_to_string(&files.ca_cert)?, first);
        Ok(())
    }

    #[test]
    fn a_loaded_ca_issues_certificates() -> Result<(), Box<dyn std::error::Error>> {
        let ca = CertificateAuthority::generate()?;
        let loaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem())?;
        let cert = loaded.issue_client("vc-manager")?;
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(CertificateAuthority::from_pem(ca.cert_pem(), "not a key").is_err());
        Ok(())
    }

    #[test]
    fn material_rejects_non_pem() {
        assert!(matches!(
            TlsMaterial::new("x", "y", "z"),
            Err(TlsError::NotPem { what: "CA" })
        ));
    }
}
