//! A static `Translation` service (real gRPC over loopback mutual TLS) answering for the load's pods, so the
//! agent's translations come over the wire as in production while no syncer competes for the CPU.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tenancy_proto::tonic::{self, Request, Response, Status};
use tenancy_proto::v1::{self, translation_event::Event, translation_server};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// Tenants (identity material) and pod locations served.
pub struct StaticTranslation {
    pub tenants: Vec<v1::TenantIdentity>,
    pub pods: HashMap<(String, String, String), v1::PodLocation>,
    /// Open watch streams (kept so they stay open for the run).
    watchers: parking_lot::Mutex<Vec<mpsc::Sender<Result<v1::TranslationEvent, Status>>>>,
}

impl StaticTranslation {
    pub fn new(
        tenants: Vec<v1::TenantIdentity>,
        pods: HashMap<(String, String, String), v1::PodLocation>,
    ) -> Self {
        StaticTranslation {
            tenants,
            pods,
            watchers: parking_lot::Mutex::default(),
        }
    }
}

#[tonic::async_trait]
impl translation_server::Translation for StaticTranslation {
    async fn to_super(
        &self,
        req: Request<v1::ToSuperRequest>,
    ) -> Result<Response<v1::PodLocation>, Status> {
        let r = req.into_inner();
        self.pods
            .get(&(r.cluster_key, r.namespace, r.pod))
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found("no such pod"))
    }

    async fn to_tenant(
        &self,
        _: Request<v1::ToTenantRequest>,
    ) -> Result<Response<v1::PodLocation>, Status> {
        Err(Status::unimplemented("not used by the agent"))
    }

    async fn pods_on_node(
        &self,
        _: Request<v1::PodsOnNodeRequest>,
    ) -> Result<Response<v1::PodsOnNodeResponse>, Status> {
        Err(Status::unimplemented("not used by the load"))
    }

    type WatchTranslationsStream = ReceiverStream<Result<v1::TranslationEvent, Status>>;

    async fn watch_translations(
        &self,
        _: Request<v1::WatchTranslationsRequest>,
    ) -> Result<Response<Self::WatchTranslationsStream>, Status> {
        let (tx, rx) = mpsc::channel(self.tenants.len() + 1);
        let n = self.tenants.len();
        for (i, t) in self.tenants.iter().enumerate() {
            let _ = tx
                .send(Ok(v1::TranslationEvent {
                    event: Some(Event::TenantUpserted(t.clone())),
                    snapshot_complete: i + 1 == n,
                }))
                .await;
        }
        self.watchers.lock().push(tx);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves `service` with mutual TLS on a free loopback port.
pub async fn serve(
    service: Arc<StaticTranslation>,
    material: tenancy_proto::tls::TlsMaterial,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let svc = translation_server::TranslationServer::from_arc(service);
    let server = tonic::transport::Server::builder()
        .tls_config(material.server_config())?
        .add_service(svc);
    tokio::spawn(async move {
        if let Err(e) = server
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
        {
            eprintln!("translation server ended: {e}");
        }
    });
    Ok(addr)
}
