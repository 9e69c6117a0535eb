//! The embedded provisioner: each tenant API server is a simulated one (`apisim`) running inside the
//! vc-manager process on a loopback port, serving HTTPS with the serving certificate from the tenant's
//! PKI, so the written kubeconfig verifies TLS against the tenant's root CA.
//!
//! The simulated servers live as long as the process: after a vc-manager restart each tenant gets a new,
//! empty server on a new port (its kubeconfig Secret is rewritten and the syncer re-registered with it).
//! The simulator does not authenticate: any client that trusts the CA may call it.

use std::collections::HashMap;
use std::sync::Arc;

use apisim::tls::TlsConfig;
use apisim::{SimConfig, Simulator};
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use vc_api::ClusterVersion;
use vc_api::secrets as names;

use super::{Provisioned, Provisioner, Tenant, common};
use crate::error::Error;
use crate::validate::Invalid;

struct Server {
    sim: Arc<Simulator>,
    cert_pem: String,
}

/// Simulated tenant API servers, by cluster key.
#[derive(Default)]
pub struct Embedded {
    servers: Mutex<HashMap<String, Server>>,
}

impl Embedded {
    /// A provisioner with no servers running yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tenant servers running.
    pub fn running(&self) -> usize {
        self.servers.lock().len()
    }

    /// The simulator serving tenant `cluster_key`, if running (tests inspect it).
    pub fn simulator(&self, cluster_key: &str) -> Option<Arc<Simulator>> {
        self.servers.lock().get(cluster_key).map(|s| s.sim.clone())
    }

    /// Starts the tenant's server, or reloads its certificate when it was re-issued. Returns its URL.
    async fn ensure_server(
        &self,
        cluster_key: &str,
        tls: TlsConfig,
        service_cidr: String,
    ) -> Result<String, Error> {
        {
            let mut servers = self.servers.lock();
            if let Some(server) = servers.get_mut(cluster_key) {
                if server.cert_pem != tls.cert_chain_pem {
                    server
                        .sim
                        .reload_tls(&tls)
                        .map_err(|e| Error::Provision(format!("reload TLS: {e}")))?;
                    server.cert_pem = tls.cert_chain_pem.clone();
                }
                return Ok(server.sim.url());
            }
        }
        let cert_pem = tls.cert_chain_pem.clone();
        let sim = Simulator::start(SimConfig {
            tls: Some(tls),
            service_cidr,
            ..SimConfig::default()
        })
        .await
        .map_err(|e| Error::Provision(format!("start the embedded API server: {e}")))?;
        let url = sim.url();
        tracing::info!(cluster = cluster_key, %url, "embedded tenant API server started");
        let mut servers = self.servers.lock();
        // A concurrent reconcile of the same key cannot happen (the controller serialises per object),
        // but keep the first server if it did.
        let entry = servers.entry(cluster_key.to_string()).or_insert(Server {
            sim: Arc::new(sim),
            cert_pem,
        });
        Ok(entry.sim.url())
    }
}

impl Provisioner for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn check_version(&self, _cv: &ClusterVersion) -> Result<(), Invalid> {
        // The simulated server needs no templates.
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
            let serving = base
                .pki
                .outcome
                .secrets
                .get(names::APISERVER_CA)
                .ok_or_else(|| Error::Provision("no apiserver certificate".into()))?;
            let tls = TlsConfig {
                cert_chain_pem: serving.get(names::TLS_CRT).cloned().unwrap_or_default(),
                key_pem: serving.get(names::TLS_KEY).cloned().unwrap_or_default(),
                ca_pem: Some(base.pki.root.cert_pem.clone()),
            };
            let url = self
                .ensure_server(key, tls, common::service_cidr(&tenant))
                .await?;
            common::finish_at(client, &tenant, &base, &url).await
        }
        .boxed()
    }

    fn teardown<'a>(&'a self, cluster_key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let server = self.servers.lock().remove(cluster_key);
            if let Some(server) = server {
                tracing::info!(cluster = cluster_key, "embedded tenant API server stopped");
                // Other holders (tests) may keep the Arc; dropping the last one stops it.
                if let Ok(sim) = Arc::try_unwrap(server.sim) {
                    sim.shutdown().await;
                }
            }
            Ok(())
        }
        .boxed()
    }
}
