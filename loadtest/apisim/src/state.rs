//! The shared state of one simulator instance: configuration, store, registry, allocators, faults.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::SimConfig;
use crate::faults::Faults;
use crate::podproxy::KubeletClient;
use crate::registry::Registry;
use crate::services::ServiceAllocator;
use crate::store::Store;

/// Everything a request handler or a built-in controller of one instance needs.
pub struct ApiState {
    /// The configuration the instance started with.
    pub config: SimConfig,
    /// Objects and history.
    pub store: Store,
    /// Served types.
    pub registry: Registry,
    /// ClusterIP and NodePort allocation.
    pub services: Mutex<ServiceAllocator>,
    /// Injected faults.
    pub faults: Arc<Faults>,
    kubelet_client: Option<Arc<KubeletClient>>,
    addr: SocketAddr,
}

impl ApiState {
    /// Builds the state (no objects yet) for a server listening on `addr`.
    pub fn new(config: SimConfig, addr: SocketAddr) -> Result<Arc<ApiState>, crate::SimError> {
        let services = ServiceAllocator::new(&config.service_cidr, config.node_port_range)
            .map_err(|e| crate::SimError::Config(e.to_string()))?;
        let kubelet_client = match &config.kubelet_client {
            Some(c) => Some(Arc::new(KubeletClient::new(c)?)),
            None => None,
        };
        Ok(Arc::new(ApiState {
            kubelet_client,
            store: Store::new(config.history_window),
            registry: Registry::new(),
            services: Mutex::new(services),
            faults: Arc::new(Faults::new(config.faults.clone())),
            config,
            addr,
        }))
    }

    /// The client for node kubelets (pod subresource proxying), if configured.
    pub fn kubelet_client(&self) -> Option<&Arc<KubeletClient>> {
        self.kubelet_client.as_ref()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
