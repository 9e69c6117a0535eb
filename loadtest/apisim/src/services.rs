//! Service ClusterIP and NodePort allocation (an interim allocator kept private to the service strategy).

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Why an allocation failed; `Display` is the detail part of the real server's field error.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// The CIDR could not be parsed.
    #[error("invalid CIDR {0}")]
    BadCidr(String),
    /// Requested IP already in use.
    #[error("failed to allocate IP {0}: provided IP is already allocated")]
    IpTaken(String),
    /// Requested IP outside the range.
    #[error(
        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"
    )]
    IpOutOfRange {
        /// Requested IP.
        ip: String,
        /// Service range.
        cidr: String,
    },
    /// Requested IP unparsable.
    #[error("failed to allocate IP {0}: not a valid IP")]
    IpInvalid(String),
    /// No free IP left.
    #[error("failed to allocate a serviceIP: range is full")]
    IpFull,
    /// Requested node port in use.
    #[error("provided port is already allocated")]
    PortTaken,
    /// Requested node port outside the range.
    #[error("provided port is not in the valid range. The range of valid ports is {0}-{1}")]
    PortOutOfRange(u16, u16),
    /// No free node port left.
    #[error("range is full")]
    PortFull,
}

/// Allocates ClusterIPs from an IPv4 CIDR and NodePorts from a port range.
pub struct ServiceAllocator {
    cidr: String,
    base: u32,
    size: u32,
    ips: HashSet<u32>,
    next_ip: u32,
    ports: (u16, u16),
    used_ports: HashSet<u16>,
    next_port: u16,
}

impl ServiceAllocator {
    /// An allocator for `cidr` (e.g. `10.96.0.0/12`) and the inclusive NodePort range.
    pub fn new(cidr: &str, ports: (u16, u16)) -> Result<ServiceAllocator, AllocError> {
        let (addr, bits) = cidr
            .split_once('/')
            .ok_or_else(|| AllocError::BadCidr(cidr.to_string()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| AllocError::BadCidr(cidr.to_string()))?;
        let bits: u32 = bits
            .parse()
            .map_err(|_| AllocError::BadCidr(cidr.to_string()))?;
        if !(1..=30).contains(&bits) || ports.0 > ports.1 {
            return Err(AllocError::BadCidr(cidr.to_string()));
        }
        let size = 1u32 << (32 - bits);
        let base = u32::from(addr) & !(size - 1);
        Ok(ServiceAllocator {
            cidr: cidr.to_string(),
            base,
            size,
            ips: HashSet::new(),
            next_ip: 2,
            ports,
            used_ports: HashSet::new(),
            next_port: ports.0,
        })
    }

    /// The first usable IP, reserved for the `kubernetes` service.
    pub fn first_ip(&self) -> String {
        Ipv4Addr::from(self.base + 1).to_string()
    }

    /// Allocates a free IP (never the network, broadcast or first address).
    pub fn allocate_ip(&mut self) -> Result<String, AllocError> {
        let usable = self.size.saturating_sub(3);
        for _ in 0..usable {
            let offset = self.next_ip;
            self.next_ip = if self.next_ip + 1 >= self.size - 1 {
                2
            } else {
                self.next_ip + 1
            };
            if self.ips.insert(offset) {
                return Ok(Ipv4Addr::from(self.base + offset).to_string());
            }
        }
        Err(AllocError::IpFull)
    }

    /// Allocates the requested IP.
    pub fn allocate_specific_ip(&mut self, ip: &str) -> Result<(), AllocError> {
        let parsed: Ipv4Addr = ip
            .parse()
            .map_err(|_| AllocError::IpInvalid(ip.to_string()))?;
        let value = u32::from(parsed);
        if value <= self.base || value >= self.base + self.size - 1 {
            return Err(AllocError::IpOutOfRange {
                ip: ip.to_string(),
                cidr: self.cidr.clone(),
            });
        }
        if !self.ips.insert(value - self.base) {
            return Err(AllocError::IpTaken(ip.to_string()));
        }
        Ok(())
    }

    /// Frees an IP (unknown or foreign IPs are ignored).
    pub fn release_ip(&mut self, ip: &str) {
        if let Ok(parsed) = ip.parse::<Ipv4Addr>() {
            let value = u32::from(parsed);
            if value > self.base {
                self.ips.remove(&(value - self.base));
            }
        }
    }

    /// Allocates a free node port.
    pub fn allocate_port(&mut self) -> Result<u16, AllocError> {
        let count = u32::from(self.ports.1 - self.ports.0) + 1;
        for _ in 0..count {
            let port = self.next_port;
            self.next_port = if port >= self.ports.1 {
                self.ports.0
            } else {
                port + 1
            };
            if self.used_ports.insert(port) {
                return Ok(port);
            }
        }
        Err(AllocError::PortFull)
    }

    /// Allocates the requested node port.
    pub fn allocate_specific_port(&mut self, port: u16) -> Result<(), AllocError> {
        if port < self.ports.0 || port > self.ports.1 {
            return Err(AllocError::PortOutOfRange(self.ports.0, self.ports.1));
        }
        if !self.used_ports.insert(port) {
            return Err(AllocError::PortTaken);
        }
        Ok(())
    }

    /// Frees a node port.
    pub fn release_port(&mut self, port: u16) {
        self.used_ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_unique_in_range_and_reusable() {
        let mut a = ServiceAllocator::new("10.96.0.0/29", (30000, 30001)).expect("alloc");
        assert_eq!(a.first_ip(), "10.96.0.1");
        a.allocate_specific_ip("10.96.0.1").expect("first");
        let got: Vec<String> = (0..5).map(|_| a.allocate_ip().expect("free ip")).collect();
        assert_eq!(
            got,
            vec![
                "10.96.0.2",
                "10.96.0.3",
                "10.96.0.4",
                "10.96.0.5",
                "10.96.0.6"
            ]
        );
        assert_eq!(a.allocate_ip(), Err(AllocError::IpFull));
        a.release_ip("10.96.0.4");
        assert_eq!(a.allocate_ip().expect("released ip"), "10.96.0.4");
        assert!(matches!(
            a.allocate_specific_ip("10.96.0.7"),
            Err(AllocError::IpOutOfRange { .. })
        ));
        assert_eq!(
            a.allocate_specific_ip("10.96.0.2"),
            Err(AllocError::IpTaken("10.96.0.2".into()))
        );
    }

    #[test]
    fn ports_are_unique_in_range() {
        let mut a = ServiceAllocator::new("10.0.0.0/24", (30000, 30001)).expect("alloc");
        let p1 = a.allocate_port().expect("port");
        let p2 = a.allocate_port().expect("port");
        assert_ne!(p1, p2);
        assert_eq!(a.allocate_port(), Err(AllocError::PortFull));
        assert_eq!(
            a.allocate_specific_port(29999),
            Err(AllocError::PortOutOfRange(30000, 30001))
        );
        a.release_port(p1);
        assert_eq!(a.allocate_specific_port(p1), Ok(()));
    }
}
