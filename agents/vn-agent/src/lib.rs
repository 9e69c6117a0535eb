//! vn-agent: the kubelet API of a super node as seen by tenant API servers.
//!
//! A tenant API server reaches a pod's kubelet (`kubectl logs`, `exec`, `attach`, `port-forward`) at its
//! virtual node's kubelet endpoint, which is this agent. The agent
//!
//! 1. identifies the caller by its client certificate, verified against the kubelet-client CA of the tenant
//!    named by the certificate's common name (the cluster key) — [`identity`];
//! 2. translates the tenant namespace/pod of the request into the super namespace/pod through the syncer's
//!    gRPC `Translation` service, cached and invalidated by its watch stream — [`translate`];
//! 3. forwards the translated request to the node's real kubelet over mutual TLS ([`forward`]) or through the
//!    super API server's pod subresources ([`apiserver`]), streams the answer back unbuffered, and splices
//!    upgraded connections (SPDY or WebSocket) byte for byte — [`splice`];
//! 4. answers `/pods` with the caller's pods on this node in tenant names — [`pods`].
//!
//! Only the routes in [`route`] are served; everything else is 404 and nothing untranslated is forwarded.

pub mod apiserver;
pub mod forward;
pub mod identity;
pub mod metrics;
pub mod pods;
pub mod route;
pub mod run;
pub mod server;
pub mod splice;
pub mod tls;
pub mod translate;

pub use server::{Agent, AgentConfig};
