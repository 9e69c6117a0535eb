//! The syncer's gRPC API (`tenancy.sync.v1`, crate `tenancy-proto`): tenant registry, translation for the
//! vn-agent, health. Served on `--grpc-addr` with mutual TLS (clients need a certificate signed by the
//! configured client CA); plain text only with the explicit `--grpc-insecure`.
//!
//! * [`registry`] — Register / Unregister / List / Watch over the [`TenantSet`].
//! * [`translation`] — ToSuper / ToTenant / PodsOnNode from the view, WatchTranslations.
//! * [`health`] — Check.
//! * [`authz`] — per-method authorisation by the roles of the client certificate (mutual TLS only).
//!
//! Every failure is a gRPC status (see [`status_of`]); nothing in a request can panic the server.

pub mod authz;
pub mod health;
pub mod registry;
pub mod translation;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tenancy_proto::pki;
use tenancy_proto::tls::TlsMaterial;
use tenancy_proto::v1::health_server::HealthServer;
use tenancy_proto::v1::tenant_registry_server::TenantRegistryServer;
use tenancy_proto::v1::translation_server::TranslationServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;

use crate::control::{ControlError, TenantSet};

/// Where and how the API is served.
#[derive(Clone, Debug)]
pub struct GrpcOptions {
    /// Listen address (port 0 picks a free port; see [`GrpcServer::addr`]).
    pub addr: SocketAddr,
    /// Server certificate, key and client CA; `None` serves plain text (`--grpc-insecure`).
    pub tls: Option<TlsMaterial>,
}

impl GrpcOptions {
    /// Mutual TLS on `addr` with the PKI kept in `dir` (generated there on first use, with the server
    /// names of [`pki::default_server_names`] and one client certificate per role; see
    /// [`pki::PkiFiles::ensure`]).
    pub fn with_generated_pki(addr: SocketAddr, dir: &Path) -> Result<Self, pki::PkiError> {
        let files = pki::PkiFiles::ensure(dir, &pki::default_server_names(&[]))?;
        Ok(Self {
            addr,
            tls: Some(files.server_material()?),
        })
    }
}

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The address could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("invalid gRPC TLS configuration")]
    Tls(#[source] tonic::transport::Error),
}

/// What the services read besides the tenant set.
#[derive(Clone)]
pub struct ApiContext {
    /// The served tenants.
    pub tenants: TenantSet,
    /// Whether the super cluster's watches are all established.
    pub super_up: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// The running API server.
pub struct GrpcServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The gRPC status of a lifecycle error.
pub fn status_of(e: ControlError) -> Status {
    match e {
        ControlError::InvalidArgument(m) => Status::invalid_argument(m),
        ControlError::NotFound(m) => Status::not_found(m),
        ControlError::FailedPrecondition(m) => Status::failed_precondition(m),
        ControlError::Unavailable(m) => Status::unavailable(m),
        ControlError::Internal(m) => Status::internal(m),
    }
}

impl GrpcServer {
    /// Binds `opts.addr` and serves the three services until [`GrpcServer::shutdown`].
    pub async fn start(opts: GrpcOptions, ctx: ApiContext) -> Result<Self, GrpcError> {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|source| GrpcError::Bind {
                addr: opts.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| GrpcError::Bind {
            addr: opts.addr,
            source,
        })?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &opts.tls {
            builder = builder
                .tls_config(tls.server_config())
                .map_err(GrpcError::Tls)?;
        }
        let router = builder
            .layer(authz::AuthzLayer::new(opts.tls.is_some()))
            .add_service(TenantRegistryServer::new(registry::RegistryService::new(
                ctx.tenants.clone(),
            )))
            .add_service(TranslationServer::new(
                translation::TranslationService::new(ctx.tenants.clone()),
            ))
            .add_service(HealthServer::new(health::HealthService::new(ctx)));
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(error) = router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                .await
            {
                tracing::error!(%error, "gRPC server failed");
            }
        });
        tracing::info!(%addr, tls = opts.tls.is_some(), "gRPC API listening");
        Ok(Self { addr, stop, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting calls and waits for the server to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "gRPC server task failed");
        }
    }
}
