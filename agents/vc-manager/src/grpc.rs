//! The [`Registrar`] over gRPC: the syncer's `tenancy.sync.v1.TenantRegistry`, with mutual TLS.

use futures::FutureExt;
use futures::future::BoxFuture;
use tenancy_proto::tonic::transport::Channel;
use tenancy_proto::v1::tenant_registry_client::TenantRegistryClient;
use tenancy_proto::{tls, v1};

use crate::registry::{Registrar, Registration};

/// A client of the syncer's tenant registry. The channel reconnects by itself, so a syncer restart only
/// fails the calls made while it is down (the controller retries them).
#[derive(Clone, Debug)]
pub struct GrpcRegistrar {
    client: TenantRegistryClient<Channel>,
}

impl GrpcRegistrar {
    /// Opens a channel to `addr` (`host:port`) with `material` (CA, client certificate and key); plain
    /// text when `material` is `None`.
    pub async fn connect(
        addr: &str,
        material: Option<&tls::TlsMaterial>,
        server_name: &str,
    ) -> Result<Self, tls::TlsError> {
        let config = material.map(|m| m.client_config(server_name));
        let endpoint = tls::endpoint(addr, config)?;
        // Lazy: vc-manager starts even while the syncer is down.
        let channel = endpoint.connect_lazy();
        Ok(Self {
            client: TenantRegistryClient::new(channel),
        })
    }

    /// A registrar on an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            client: TenantRegistryClient::new(channel),
        }
    }
}

fn status_text(status: &tenancy_proto::tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl Registrar for GrpcRegistrar {
    fn register<'a>(&'a self, r: &'a Registration) -> BoxFuture<'a, Result<String, String>> {
        async move {
            let spec = v1::TenantSpec {
                vc: Some(v1::VirtualClusterRef::new(
                    &r.vc_namespace,
                    &r.vc_name,
                    &r.vc_uid,
                )),
                kubeconfig: r.kubeconfig.clone(),
                cluster_namespace: r.cluster_namespace.clone(),
                opaque_meta_prefixes: r.opaque_meta_prefixes.clone(),
                transparent_meta_prefixes: r.transparent_meta_prefixes.clone(),
                kubelet_client_ca_pem: r.kubelet_client_ca_pem.clone(),
                weight: 0,
                cluster_domain: r.cluster_domain.clone(),
            };
            let response = self
                .client
                .clone()
                .register(v1::RegisterRequest { spec: Some(spec) })
                .await
                .map_err(|s| status_text(&s))?
                .into_inner();
            if response.changed {
                tracing::info!(vc = %format!("{}/{}", r.vc_namespace, r.vc_name), cluster = %response.cluster_key, "registered with the syncer");
            }
            Ok(response.cluster_key)
        }
        .boxed()
    }

    fn unregister<'a>(
        &'a self,
        vc_namespace: &'a str,
        vc_name: &'a str,
        vc_uid: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            self.client
                .clone()
                .unregister(v1::UnregisterRequest {
                    vc: Some(v1::VirtualClusterRef::new(vc_namespace, vc_name, vc_uid)),
                    allow_missing: true,
                })
                .await
                .map_err(|s| status_text(&s))?;
            Ok(())
        }
        .boxed()
    }
}
