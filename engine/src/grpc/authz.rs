//! Per-method authorisation of the gRPC API: a tower layer in front of every service that reads the roles
//! of the caller's client certificate (`OU`, see [`tenancy_proto::roles`]) and refuses a method the roles
//! do not allow with `PERMISSION_DENIED` before the service sees the call.
//!
//! Only applied when the API serves mutual TLS; `--grpc-insecure` has no client identity to check.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tenancy_proto::roles::{self, Identity};
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The layer (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct AuthzLayer {
    enforce: bool,
}

impl AuthzLayer {
    /// Checks every call when `enforce` (mutual TLS), lets every call through otherwise (plain text).
    pub fn new(enforce: bool) -> Self {
        Self { enforce }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz {
            inner,
            enforce: self.enforce,
        }
    }
}

/// The service made by [`AuthzLayer`].
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    enforce: bool,
}

/// Decides one call: `Ok` with the caller's identity, or the status to answer with.
pub fn decide<B>(request: &http::Request<B>) -> Result<Identity, Status> {
    let path = request.uri().path();
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs());
    let Some(leaf) = certs.as_ref().and_then(|c| c.first().cloned()) else {
        return Err(Status::unauthenticated("no client certificate"));
    };
    let identity =
        Identity::from_der(leaf.as_ref()).map_err(|e| Status::unauthenticated(e.to_string()))?;
    if roles::allowed(&identity.roles, path) {
        return Ok(identity);
    }
    let needed: Vec<&str> = roles::roles_for(path)
        .unwrap_or_default()
        .iter()
        .map(|r| r.as_str())
        .collect();
    let held: Vec<&str> = identity.roles.iter().map(|r| r.as_str()).collect();
    tracing::warn!(
        method = path,
        client = identity.common_name,
        roles = ?held,
        "gRPC call refused: role not allowed"
    );
    Err(Status::permission_denied(format!(
        "client {:?} (roles {held:?}) may not call {path}; it needs one of {needed:?}",
        identity.common_name
    )))
}

impl<S, B> tower::Service<http::Request<B>> for Authz<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let decision = if self.enforce {
            decide(&request).map(|identity| {
                tracing::debug!(
                    method = request.uri().path(),
                    client = identity.common_name,
                    "gRPC call allowed"
                );
            })
        } else {
            Ok(())
        };
        match decision {
            Ok(()) => {
                // The service that was polled ready handles this call; a fresh clone takes its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(request))
            }
            Err(status) => {
                let response = status.into_http::<tonic::body::Body>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
