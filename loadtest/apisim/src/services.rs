//! Service ClusterIP and NodePort allocation for one instance, on top of `ipalloc`, with the messages the
//! real server puts in its 422s (`failed to allocate IP 10.96.0.10: provided IP is already allocated`).

use crate::ipalloc::{self, IpAllocator, PortAllocator};

/// Why an allocation failed; `Display` is the detail part of the real server's field error.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// The service CIDR is unusable.
    #[error("invalid service range: {0}")]
    BadRange(#[source] ipalloc::AllocError),
    /// A specific IP could not be allocated.
    #[error("failed to allocate IP {ip}: {source}")]
    Ip {
        /// Requested IP.
        ip: String,
        /// Cause.
        #[source]
        source: ipalloc::AllocError,
    },
    /// No IP is free.
    #[error("failed to allocate a serviceIP: {0}")]
    IpFull(#[source] ipalloc::AllocError),
    /// A node port could not be allocated.
    #[error("{0}")]
    Port(#[source] ipalloc::AllocError),
}

/// Allocates ClusterIPs from an IPv4 CIDR and NodePorts from a port range.
pub struct ServiceAllocator {
    ips: IpAllocator,
    ports: PortAllocator,
}

impl ServiceAllocator {
    /// An allocator for `cidr` (e.g. `10.96.0.0/12`) and the inclusive NodePort range.
    pub fn new(cidr: &str, ports: (u16, u16)) -> Result<ServiceAllocator, AllocError> {
        let ips = IpAllocator::new(cidr).map_err(AllocError::BadRange)?;
        Ok(ServiceAllocator {
            ips,
            ports: PortAllocator::new(ports.0, ports.1),
        })
    }

    /// The first usable IP, reserved for the `kubernetes` service.
    pub fn first_ip(&self) -> String {
        self.ips
            .kubernetes_ip()
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    }

    /// Allocates a free IP (never the network, broadcast or first address).
    pub fn allocate_ip(&mut self) -> Result<String, AllocError> {
        self.ips
            .allocate()
            .map(|ip| ip.to_string())
            .map_err(AllocError::IpFull)
    }

    /// Allocates the requested IP.
    pub fn allocate_specific_ip(&mut self, ip: &str) -> Result<(), AllocError> {
        self.ips
            .allocate_specific(ip)
            .map(|_| ())
            .map_err(|source| AllocError::Ip {
                ip: ip.to_string(),
                source,
            })
    }

    /// Frees an IP (unknown or foreign IPs are ignored).
    pub fn release_ip(&mut self, ip: &str) {
        self.ips.release(ip);
    }

    /// Allocates a free node port.
    pub fn allocate_port(&mut self) -> Result<u16, AllocError> {
        self.ports.allocate().map_err(AllocError::Port)
    }

    /// Allocates the requested node port.
    pub fn allocate_specific_port(&mut self, port: u16) -> Result<(), AllocError> {
        self.ports
            .allocate_specific(port)
            .map(|_| ())
            .map_err(AllocError::Port)
    }

    /// Frees a node port.
    pub fn release_port(&mut self, port: u16) {
        self.ports.release(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_real_field_errors() {
        let mut a = ServiceAllocator::new("10.96.0.0/29", (30000, 30001)).expect("alloc");
        assert_eq!(a.first_ip(), "10.96.0.1");
        a.allocate_specific_ip("10.96.0.1").expect("kubernetes ip");
        let ip = a.allocate_ip().expect("free ip");
        assert_ne!(ip, "10.96.0.1");
        let err = a.allocate_specific_ip(&ip).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("failed to allocate IP {ip}: provided IP is already allocated")
        );
        let err = a.allocate_specific_ip("10.97.0.1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to allocate IP 10.97.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/29"
        );
        a.release_ip(&ip);
        a.allocate_specific_ip(&ip)
            .expect("released ip is free again");
        let p = a.allocate_port().expect("port");
        assert_eq!(
            a.allocate_specific_port(p).unwrap_err().to_string(),
            "provided port is already allocated"
        );
        assert_eq!(
            a.allocate_specific_port(29999).unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-30001"
        );
    }
}
