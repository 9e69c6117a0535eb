//! The process provisioner: real `etcd` and `kube-apiserver` child processes on loopback for each tenant,
//! started with the tenant's PKI (etcd speaks TLS with client-certificate auth; the apiserver serves the
//! tenant's serving certificate, trusts the root CA for clients and signs service-account tokens with the
//! tenant's key). Binaries come from `ETCD_BIN` and `KUBE_APISERVER_BIN`.
//!
//! Files live in `<data-dir>/<cluster key>/`; the processes are killed when the tenant is torn down or
//! the vc-manager exits (they are the vc-manager's children). Readiness: the apiserver answering through
//! the admin kubeconfig; while it does not, etcd's `/health` (over TLS with the etcd client certificate)
//! tells whether etcd is the half still starting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::process::{Child, Command};
use vc_api::ClusterVersion;
use vc_api::secrets as names;

use super::{Provisioned, Provisioner, Readiness, Tenant, common};
use crate::error::Error;
use crate::pki::SecretSet;
use crate::validate::Invalid;

/// Environment variable naming the etcd binary.
pub const ENV_ETCD_BIN: &str = "ETCD_BIN";
/// Environment variable naming the kube-apiserver binary.
pub const ENV_KUBE_APISERVER_BIN: &str = "KUBE_APISERVER_BIN";

/// The binaries to run.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub apiserver: PathBuf,
}

impl Binaries {
    /// Reads `ETCD_BIN` and `KUBE_APISERVER_BIN`; `None` (with the reason) when either is unset or not a
    /// file.
    pub fn from_env() -> Result<Self, String> {
        let get = |var: &str| -> Result<PathBuf, String> {
            let path = std::env::var_os(var)
                .map(PathBuf::from)
                .ok_or_else(|| format!("{var} is not set"))?;
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{var}={} is not a file", path.display()))
            }
        };
        Ok(Self {
            etcd: get(ENV_ETCD_BIN)?,
            apiserver: get(ENV_KUBE_APISERVER_BIN)?,
        })
    }
}

struct Running {
    etcd: Child,
    apiserver: Child,
    url: String,
    etcd_url: String,
    /// The PKI files the processes were started with; a change restarts them.
    pki_fingerprint: String,
}

/// Tenant control planes as child processes.
pub struct Process {
    binaries: Binaries,
    data_dir: PathBuf,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    ports: Mutex<()>,
}

impl Process {
    /// A provisioner running `binaries`, keeping files under `data_dir`.
    pub fn new(binaries: Binaries, data_dir: PathBuf) -> Self {
        Self {
            binaries,
            data_dir,
            running: tokio::sync::Mutex::new(HashMap::new()),
            ports: Mutex::new(()),
        }
    }

    fn free_port(&self) -> Result<u16, Error> {
        let _guard = self.ports.lock();
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| Error::Provision(format!("find a free port: {e}")))?;
        listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::Provision(format!("find a free port: {e}")))
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text)
        .map_err(|e| Error::Provision(format!("write {}: {e}", path.display())))
}

fn pem(secrets: &SecretSet, secret: &str, key: &str) -> Result<String, Error> {
    secrets
        .get(secret)
        .and_then(|d| d.get(key))
        .cloned()
        .ok_or_else(|| Error::Provision(format!("missing {secret}/{key}")))
}

/// Writes the PKI files the processes read from the tenant's PKI Secrets into `dir`; returns a
/// fingerprint of their contents.
pub fn write_pki(dir: &Path, secrets: &SecretSet) -> Result<String, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Provision(format!("create {}: {e}", dir.display())))?;
    let files = [
        ("root-ca.crt", names::ROOT_CA, names::TLS_CRT),
        ("apiserver.crt", names::APISERVER_CA, names::TLS_CRT),
        ("apiserver.key", names::APISERVER_CA, names::TLS_KEY),
        ("etcd-ca.crt", names::ETCD_CA, names::CA_CRT),
        ("etcd.crt", names::ETCD_CA, names::TLS_CRT),
        ("etcd.key", names::ETCD_CA, names::TLS_KEY),
        ("etcd-client.crt", names::ETCD_CA, names::CLIENT_CRT),
        ("etcd-client.key", names::ETCD_CA, names::CLIENT_KEY),
        ("front-proxy-ca.crt", names::FRONT_PROXY_CA, names::CA_CRT),
        (
            "front-proxy-client.crt",
            names::FRONT_PROXY_CA,
            names::TLS_CRT,
        ),
        (
            "front-proxy-client.key",
            names::FRONT_PROXY_CA,
            names::TLS_KEY,
        ),
        ("sa.key", names::SERVICE_ACCOUNT, names::TLS_KEY),
        ("sa.pub", names::SERVICE_ACCOUNT, names::TLS_PUB),
    ];
    let mut all = String::new();
    for (file, secret, key) in files {
        let text = pem(secrets, secret, key)?;
        write_file(&dir.join(file), &text)?;
        all.push_str(&text);
    }
    Ok(crate::super_api::object_hash(&all))
}

fn spawn(cmd: &mut Command, what: &str, log: &Path) -> Result<Child, Error> {
    let out = std::fs::File::create(log)
        .map_err(|e| Error::Provision(format!("create {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::Provision(format!("log file: {e}")))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Provision(format!("start {what}: {e}")))
}

/// Starts etcd for one tenant on loopback: client URL `https://127.0.0.1:<client_port>` with the tenant's
/// etcd serving certificate and client-certificate authentication against the etcd CA (files written by
/// [`write_pki`] into `<dir>/pki/`), data in `<dir>/etcd/`, log in `<dir>/etcd.log`. Returns the child
/// (killed when dropped) and the client URL.
pub fn start_etcd(
    bin: &Path,
    dir: &Path,
    client_port: u16,
    peer_port: u16,
) -> Result<(Child, String), Error> {
    let pki_dir = dir.join("pki");
    let p = |f: &str| pki_dir.join(f).display().to_string();
    let etcd_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd = spawn(
        Command::new(bin)
            .arg("--name")
            .arg("tenant")
            .arg("--data-dir")
            .arg(dir.join("etcd"))
            .arg("--listen-client-urls")
            .arg(&etcd_url)
            .arg("--advertise-client-urls")
            .arg(&etcd_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("tenant={peer_url}"))
            .arg("--cert-file")
            .arg(p("etcd.crt"))
            .arg("--key-file")
            .arg(p("etcd.key"))
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(p("etcd-ca.crt")),
        "etcd",
        &dir.join("etcd.log"),
    )?;
    Ok((etcd, etcd_url))
}

/// Asks etcd at `url` (`https://127.0.0.1:<port>`) for `/health` over TLS, verifying its certificate
/// against the etcd CA and presenting the etcd client certificate (files in `pki_dir`, see
/// [`write_pki`]). `Ok` when it reports `"health":"true"`; otherwise what was wrong.
pub async fn etcd_health(url: &str, pki_dir: &Path) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read = |f: &str| {
        std::fs::read_to_string(pki_dir.join(f))
            .map_err(|e| format!("read {}: {e}", pki_dir.join(f).display()))
    };
    let config = etcd_tls::client_config(
        &read("etcd-ca.crt")?,
        &read("etcd-client.crt")?,
        &read("etcd-client.key")?,
    )?;
    let host_port = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("not an https URL: {url}"))?;
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(h, _)| h)
        .to_string();
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|e| format!("server name {host}: {e}"))?;
    let tcp = tokio::net::TcpStream::connect(host_port)
        .await
        .map_err(|e| format!("connect {host_port}: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with etcd: {e}"))?;
    tls.write_all(
        format!("GET /health HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .map_err(|e| format!("send to etcd: {e}"))?;
    let mut body = Vec::new();
    // etcd may close without a TLS close_notify: keep what arrived.
    let _ = tls.read_to_end(&mut body).await;
    let text = String::from_utf8_lossy(&body);
    if text.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!(
            "etcd not healthy: {}",
            text.lines().last().unwrap_or_default()
        ))
    }
}

mod etcd_tls {
    //! The rustls client configuration for etcd's health endpoint.
    use std::sync::Arc;

    use rustls::{ClientConfig, RootCertStore};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    fn certs(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{what}: {e}"))
    }

    /// Trusts `ca_pem`, presents `cert_pem` + `key_pem`.
    pub fn client_config(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<ClientConfig>, String> {
        let mut roots = RootCertStore::empty();
        for cert in certs("etcd CA", ca_pem)? {
            roots.add(cert).map_err(|e| format!("etcd CA: {e}"))?;
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("etcd client key: {e}"))?;
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(certs("etcd client certificate", cert_pem)?, key)
                .map_err(|e| format!("etcd client certificate: {e}"))?;
        Ok(Arc::new(config))
    }
}

impl Process {
    async fn ensure_running(
        &self,
        key: &str,
        secrets: &SecretSet,
        service_cidr: &str,
    ) -> Result<(String, String), Error> {
        let dir = self.data_dir.join(key);
        let pki_dir = dir.join("pki");
        let fingerprint = write_pki(&pki_dir, secrets)?;
        let mut running = self.running.lock().await;
        if let Some(r) = running.get_mut(key) {
            let alive =
                matches!(r.etcd.try_wait(), Ok(None)) && matches!(r.apiserver.try_wait(), Ok(None));
            if alive && r.pki_fingerprint == fingerprint {
                return Ok((r.url.clone(), r.etcd_url.clone()));
            }
            tracing::info!(cluster = key, alive, "restarting tenant processes");
            running.remove(key);
        }
        let etcd_port = self.free_port()?;
        let peer_port = self.free_port()?;
        let api_port = self.free_port()?;
        let p = |f: &str| pki_dir.join(f).display().to_string();
        let (etcd, etcd_url) = start_etcd(&self.binaries.etcd, &dir, etcd_port, peer_port)?;
        let apiserver = spawn(
            Command::new(&self.binaries.apiserver)
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg(format!("--etcd-cafile={}", p("etcd-ca.crt")))
                .arg(format!("--etcd-certfile={}", p("etcd-client.crt")))
                .arg(format!("--etcd-keyfile={}", p("etcd-client.key")))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={api_port}"))
                .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
                .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
                .arg(format!("--client-ca-file={}", p("root-ca.crt")))
                .arg(format!("--service-account-key-file={}", p("sa.pub")))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    p("sa.key")
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg(format!("--service-cluster-ip-range={service_cidr}"))
                .arg(format!(
                    "--requestheader-client-ca-file={}",
                    p("front-proxy-ca.crt")
                ))
                .arg(format!(
                    "--proxy-client-cert-file={}",
                    p("front-proxy-client.crt")
                ))
                .arg(format!(
                    "--proxy-client-key-file={}",
                    p("front-proxy-client.key")
                ))
                .arg("--authorization-mode=Node,RBAC"),
            "kube-apiserver",
            &dir.join("kube-apiserver.log"),
        )?;
        let url = format!("https://127.0.0.1:{api_port}");
        tracing::info!(cluster = key, %url, "tenant etcd and kube-apiserver started");
        running.insert(
            key.to_string(),
            Running {
                etcd,
                apiserver,
                url: url.clone(),
                etcd_url: etcd_url.clone(),
                pki_fingerprint: fingerprint,
            },
        );
        Ok((url, etcd_url))
    }
}

impl Provisioner for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    fn check_version(&self, _cv: &ClusterVersion) -> Result<(), Invalid> {
        // The binaries' own defaults stand in for the templates.
        Ok(())
    }

    fn ensure<'a>(
        &'a self,
        client: &'a kube::Client,
        tenant: Tenant<'a>,
    ) -> BoxFuture<'a, Result<Provisioned, Error>> {
        async move {
            let key = tenant.checked.cluster_key.as_str();
            let base = common::ensure_local_base(client, &tenant).await?;
            let (url, etcd_url) = self
                .ensure_running(
                    key,
                    &base.pki.outcome.secrets,
                    &common::service_cidr(&tenant),
                )
                .await?;
            let mut provisioned = common::finish_at(client, &tenant, &base, &url).await?;
            if matches!(provisioned.readiness, Readiness::Waiting(_)) {
                // Say which half is waiting.
                let pki_dir = self.data_dir.join(key).join("pki");
                if let Err(why) = etcd_health(&etcd_url, &pki_dir).await {
                    provisioned.readiness = Readiness::Waiting(format!("etcd: {why}"));
                }
            }
            Ok(provisioned)
        }
        .boxed()
    }

    fn teardown<'a>(&'a self, cluster_key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let removed = self.running.lock().await.remove(cluster_key);
            if let Some(mut r) = removed {
                let _ = r.apiserver.kill().await;
                let _ = r.etcd.kill().await;
            }
            let dir = self.data_dir.join(cluster_key);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::Provision(format!("remove {}: {e}", dir.display())))?;
            }
            Ok(())
        }
        .boxed()
    }
}
