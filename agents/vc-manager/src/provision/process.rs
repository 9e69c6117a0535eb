//! The process provisioner: real `etcd` and `kube-apiserver` child processes on loopback for each tenant,
//! started with the tenant's PKI (etcd speaks TLS with client-certificate auth; the apiserver serves the
//! tenant's serving certificate, trusts the root CA for clients and signs service-account tokens with the
//! tenant's key). Binaries come from `ETCD_BIN` and `KUBE_APISERVER_BIN`.
//!
//! Files live in `<data-dir>/<cluster key>/`; the processes are killed when the tenant is torn down or
//! the vc-manager exits (they are the vc-manager's children).

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

/// Writes the PKI files the processes read; returns the directory and a fingerprint of their contents.
fn write_pki(dir: &Path, secrets: &SecretSet) -> Result<String, Error> {
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

async fn probe(admin: &str) -> Readiness {
    match crate::kubeconfig::client(admin).await {
        Ok(client) => match client.apiserver_version().await {
            Ok(_) => Readiness::Ready,
            Err(e) => Readiness::Waiting(format!("kube-apiserver not answering yet: {e}")),
        },
        Err(e) => Readiness::Waiting(format!("tenant kubeconfig unusable: {e}")),
    }
}

impl Process {
    async fn ensure_running(
        &self,
        key: &str,
        secrets: &SecretSet,
        service_cidr: &str,
    ) -> Result<String, Error> {
        let dir = self.data_dir.join(key);
        let pki_dir = dir.join("pki");
        let fingerprint = write_pki(&pki_dir, secrets)?;
        let mut running = self.running.lock().await;
        if let Some(r) = running.get_mut(key) {
            let alive =
                matches!(r.etcd.try_wait(), Ok(None)) && matches!(r.apiserver.try_wait(), Ok(None));
            if alive && r.pki_fingerprint == fingerprint {
                return Ok(r.url.clone());
            }
            tracing::info!(cluster = key, alive, "restarting tenant processes");
            running.remove(key);
        }
        let etcd_port = self.free_port()?;
        let peer_port = self.free_port()?;
        let api_port = self.free_port()?;
        let p = |f: &str| pki_dir.join(f).display().to_string();
        let etcd_url = format!("https://127.0.0.1:{etcd_port}");
        let etcd = spawn(
            Command::new(&self.binaries.etcd)
                .arg("--name")
                .arg("tenant")
                .arg("--data-dir")
                .arg(dir.join("etcd"))
                .arg("--listen-client-urls")
                .arg(&etcd_url)
                .arg("--advertise-client-urls")
                .arg(&etcd_url)
                .arg("--listen-peer-urls")
                .arg(format!("http://127.0.0.1:{peer_port}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://127.0.0.1:{peer_port}"))
                .arg("--initial-cluster")
                .arg(format!("tenant=http://127.0.0.1:{peer_port}"))
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
                pki_fingerprint: fingerprint,
            },
        );
        Ok(url)
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
            let base = common::ensure_base(
                client,
                &tenant,
                common::apiserver_sans(&tenant, None),
                common::etcd_sans(&tenant, "etcd"),
            )
            .await?;
            let cidr = format!(
                "{}/{}",
                tenant.checked.service_cidr.network, tenant.checked.service_cidr.prefix
            );
            let url = self
                .ensure_running(key, &base.pki.outcome.secrets, &cidr)
                .await?;
            let kubeconfigs = common::ensure_kubeconfigs(client, &tenant, &base, &url).await?;
            let readiness = probe(&kubeconfigs.admin).await;
            Ok(Provisioned {
                readiness,
                admin_kubeconfig: kubeconfigs.admin,
                root_ca_pem: base.pki.root.cert_pem.clone(),
                changed: base.changed || kubeconfigs.changed,
                next_renewal: kubeconfigs.next_renewal,
            })
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
