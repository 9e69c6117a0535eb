//! ClusterIP and NodePort allocation for Services.
//!
//! [`IpAllocator`] hands out addresses of an IPv4 service CIDR the way the real allocator bounds them: the
//! network and broadcast addresses are never used, and the first usable address is kept for the
//! `default/kubernetes` Service (only [`IpAllocator::allocate_kubernetes`] or an explicit request for it
//! returns it). Free addresses are found next-fit from a cursor (the real server picks at random;
//! clients must not depend on either). Only allocated addresses are stored, so a /12 costs nothing until
//! used. [`PortAllocator`] does the same for a NodePort range. Error texts are the real ones; the server
//! wraps them as `failed to allocate IP 10.96.0.5: provided IP is already allocated` in a 422 on
//! `spec.clusterIPs`, and `provided port is already allocated` on `spec.ports[i].nodePort`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use thiserror::Error;

/// Why an address or port could not be allocated.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// The service CIDR string is not an IPv4 CIDR.
    #[error("invalid service CIDR {0:?}: expected an IPv4 CIDR such as 10.96.0.0/12")]
    BadCidr(String),
    /// The requested IP is not an IPv4 address.
    #[error("{0:?} is not a valid IP address")]
    BadIp(String),
    /// The requested IP or port is taken.
    #[error("provided {what} is already allocated")]
    Allocated {
        /// `IP` or `port`.
        what: &'static str,
    },
    /// The requested IP is outside the range (message names the CIDR).
    #[error("provided IP is not in the valid range. The range of valid IPs is {cidr}")]
    IpOutOfRange {
        /// The service CIDR.
        cidr: String,
    },
    /// The requested port is outside the range.
    #[error("provided port is not in the valid range. The range of valid ports is {first}-{last}")]
    PortOutOfRange {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// No free address or port is left.
    #[error("range is full")]
    Full,
}

/// Allocator of ClusterIPs from one IPv4 CIDR.
#[derive(Clone, Debug)]
pub struct IpAllocator {
    cidr: String,
    network: u32,
    /// Number of addresses usable by services (excluding network and broadcast).
    usable: u32,
    /// Offsets (1-based from the network address) in use.
    allocated: BTreeSet<u32>,
    /// Next offset to try.
    cursor: u32,
}

impl IpAllocator {
    /// An allocator for `cidr`, e.g. `10.96.0.0/12`.
    pub fn new(cidr: &str) -> Result<IpAllocator, AllocError> {
        let bad = || AllocError::BadCidr(cidr.to_string());
        let (addr, bits) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        if bits > 32 {
            return Err(bad());
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        let network = u32::from(addr) & mask;
        let size = 1u64 << (32 - bits);
        let usable = size.saturating_sub(2).min(u64::from(u32::MAX)) as u32;
        Ok(IpAllocator {
            cidr: format!("{}/{bits}", Ipv4Addr::from(network)),
            network,
            usable,
            allocated: BTreeSet::new(),
            cursor: 2,
        })
    }

    /// The normalised CIDR.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// The first usable address, kept for the `kubernetes` Service.
    pub fn kubernetes_ip(&self) -> Option<Ipv4Addr> {
        (self.usable >= 1).then(|| self.ip_at(1))
    }

    /// Allocates the `kubernetes` Service address.
    pub fn allocate_kubernetes(&mut self) -> Result<Ipv4Addr, AllocError> {
        let ip = self.kubernetes_ip().ok_or(AllocError::Full)?;
        self.allocate_specific(&ip.to_string())?;
        Ok(ip)
    }

    /// Allocates a free address (never the `kubernetes` one).
    pub fn allocate(&mut self) -> Result<Ipv4Addr, AllocError> {
        // Offsets 2..=usable are candidates; 1 is the kubernetes address.
        if self.usable < 2 {
            return Err(AllocError::Full);
        }
        let first = 2u32;
        let last = self.usable;
        let start = self.cursor.clamp(first, last);
        let offset = self
            .first_free(start, last)
            .or_else(|| self.first_free(first, start.saturating_sub(1).max(first)))
            .ok_or(AllocError::Full)?;
        self.allocated.insert(offset);
        self.cursor = if offset >= last { first } else { offset + 1 };
        Ok(self.ip_at(offset))
    }

    /// First free offset in `from..=to`, walking only over allocated runs.
    fn first_free(&self, from: u32, to: u32) -> Option<u32> {
        if from > to {
            return None;
        }
        let mut candidate = from;
        for &taken in self.allocated.range(from..=to) {
            if taken != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        (candidate <= to).then_some(candidate)
    }

    /// Allocates the given address (a Service that asks for its `clusterIP`).
    pub fn allocate_specific(&mut self, ip: &str) -> Result<Ipv4Addr, AllocError> {
        let addr: Ipv4Addr = ip.parse().map_err(|_| AllocError::BadIp(ip.to_string()))?;
        let offset = self
            .offset_of(addr)
            .ok_or_else(|| AllocError::IpOutOfRange {
                cidr: self.cidr.clone(),
            })?;
        if !self.allocated.insert(offset) {
            return Err(AllocError::Allocated { what: "IP" });
        }
        Ok(addr)
    }

    /// Frees an address; unknown or foreign addresses are ignored. Returns whether it was allocated.
    pub fn release(&mut self, ip: &str) -> bool {
        match ip.parse::<Ipv4Addr>().ok().and_then(|a| self.offset_of(a)) {
            Some(offset) => self.allocated.remove(&offset),
            None => false,
        }
    }

    /// Whether the address is allocated.
    pub fn is_allocated(&self, ip: &str) -> bool {
        ip.parse::<Ipv4Addr>()
            .ok()
            .and_then(|a| self.offset_of(a))
            .is_some_and(|o| self.allocated.contains(&o))
    }

    /// Number of allocated addresses.
    pub fn allocated_count(&self) -> usize {
        self.allocated.len()
    }

    /// Number of addresses services can use (network and broadcast excluded).
    pub fn capacity(&self) -> u32 {
        self.usable
    }

    fn ip_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network.wrapping_add(offset))
    }

    fn offset_of(&self, addr: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(addr).checked_sub(self.network)?;
        (offset >= 1 && offset <= self.usable).then_some(offset)
    }
}

/// Allocator of NodePorts from an inclusive port range.
#[derive(Clone, Debug)]
pub struct PortAllocator {
    first: u16,
    last: u16,
    allocated: BTreeSet<u16>,
    cursor: u16,
}

impl PortAllocator {
    /// An allocator for `first..=last` (the real default is 30000-32767).
    pub fn new(first: u16, last: u16) -> PortAllocator {
        let (first, last) = if first <= last {
            (first, last)
        } else {
            (last, first)
        };
        PortAllocator {
            first,
            last,
            allocated: BTreeSet::new(),
            cursor: first,
        }
    }

    /// Allocates a free port.
    pub fn allocate(&mut self) -> Result<u16, AllocError> {
        let start = self.cursor.clamp(self.first, self.last);
        let port = self
            .first_free(start, self.last)
            .or_else(|| self.first_free(self.first, start))
            .ok_or(AllocError::Full)?;
        self.allocated.insert(port);
        self.cursor = if port >= self.last {
            self.first
        } else {
            port + 1
        };
        Ok(port)
    }

    fn first_free(&self, from: u16, to: u16) -> Option<u16> {
        if from > to {
            return None;
        }
        let mut candidate = from;
        for &taken in self.allocated.range(from..=to) {
            if taken != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        (candidate <= to).then_some(candidate)
    }

    /// Allocates the given port (a Service that asks for its `nodePort`).
    pub fn allocate_specific(&mut self, port: u16) -> Result<u16, AllocError> {
        if port < self.first || port > self.last {
            return Err(AllocError::PortOutOfRange {
                first: self.first,
                last: self.last,
            });
        }
        if !self.allocated.insert(port) {
            return Err(AllocError::Allocated { what: "port" });
        }
        Ok(port)
    }

    /// Frees a port; returns whether it was allocated.
    pub fn release(&mut self, port: u16) -> bool {
        self.allocated.remove(&port)
    }

    /// Whether the port is allocated.
    pub fn is_allocated(&self, port: u16) -> bool {
        self.allocated.contains(&port)
    }

    /// Number of allocated ports.
    pub fn allocated_count(&self) -> usize {
        self.allocated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(cidr: &str) -> IpAllocator {
        match IpAllocator::new(cidr) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn reserves_network_kubernetes_and_broadcast() {
        let mut a = alloc("10.96.0.0/30"); // .0 network, .1 kubernetes, .2 usable, .3 broadcast
        assert_eq!(a.capacity(), 2);
        assert_eq!(a.kubernetes_ip(), Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 2)));
        assert_eq!(a.allocate(), Err(AllocError::Full));
        assert_eq!(a.allocate_kubernetes(), Ok(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(
            a.allocate_kubernetes(),
            Err(AllocError::Allocated { what: "IP" })
        );
        for outside in ["10.96.0.0", "10.96.0.3", "10.97.0.1"] {
            assert_eq!(
                a.allocate_specific(outside).map_err(|e| e.to_string()),
                Err(
                    "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/30"
                        .to_string()
                ),
                "{outside}"
            );
        }
    }

    #[test]
    fn specific_allocation_and_release() {
        let mut a = alloc("10.96.0.0/12");
        assert_eq!(a.cidr(), "10.96.0.0/12");
        assert_eq!(
            a.allocate_specific("10.96.0.10"),
            Ok(Ipv4Addr::new(10, 96, 0, 10))
        );
        assert_eq!(
            a.allocate_specific("10.96.0.10").map_err(|e| e.to_string()),
            Err("provided IP is already allocated".to_string())
        );
        assert_eq!(
            a.allocate_specific("10.112.0.1").map_err(|e| e.to_string()),
            Err(
                "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                    .to_string()
            )
        );
        assert!(matches!(
            a.allocate_specific("nope"),
            Err(AllocError::BadIp(_))
        ));
        assert!(a.is_allocated("10.96.0.10"));
        assert!(a.release("10.96.0.10"));
        assert!(!a.release("10.96.0.10"));
        assert!(a.allocate_specific("10.96.0.10").is_ok());
        assert!(
            a.allocate_specific("10.111.255.254").is_ok(),
            "last usable address"
        );
    }

    #[test]
    fn allocate_skips_taken_addresses_and_never_repeats() {
        let mut a = alloc("10.96.0.0/24");
        assert!(a.allocate_specific("10.96.0.3").is_ok());
        let mut seen = BTreeSet::new();
        for _ in 0..253 {
            match a.allocate() {
                Ok(ip) => {
                    assert!(seen.insert(ip), "{ip} handed out twice");
                    assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 3));
                    assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 1));
                }
                Err(AllocError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen.len(), 252, "254 usable minus kubernetes minus .3");
        assert_eq!(a.allocate(), Err(AllocError::Full));
        assert!(a.release("10.96.0.77"));
        assert_eq!(
            a.allocate(),
            Ok(Ipv4Addr::new(10, 96, 0, 77)),
            "freed address is reused"
        );
    }

    #[test]
    fn big_range_stays_sparse() {
        let mut a = alloc("10.96.0.0/12");
        for _ in 0..1000 {
            assert!(a.allocate().is_ok());
        }
        assert_eq!(a.allocated_count(), 1000);
        assert_eq!(a.capacity(), (1 << 20) - 2);
    }

    #[test]
    fn bad_cidrs() {
        for bad in ["10.96.0.0", "10.96.0.0/33", "x/12", "10.96.0.0/x"] {
            assert!(
                matches!(IpAllocator::new(bad), Err(AllocError::BadCidr(_))),
                "{bad}"
            );
        }
        let mut tiny = alloc("10.0.0.1/32");
        assert_eq!(tiny.allocate(), Err(AllocError::Full));
        assert_eq!(alloc("10.96.5.7/16").cidr(), "10.96.0.0/16");
    }

    #[test]
    fn node_ports() {
        let mut p = PortAllocator::new(30000, 30002);
        assert_eq!(p.allocate_specific(30001), Ok(30001));
        assert_eq!(
            p.allocate_specific(30001).map_err(|e| e.to_string()),
            Err("provided port is already allocated".to_string())
        );
        assert_eq!(
            p.allocate_specific(80).map_err(|e| e.to_string()),
            Err(
                "provided port is not in the valid range. The range of valid ports is 30000-30002"
                    .to_string()
            )
        );
        assert_eq!(p.allocate(), Ok(30000));
        assert_eq!(p.allocate(), Ok(30002));
        assert_eq!(p.allocate(), Err(AllocError::Full));
        assert!(p.release(30001));
        assert!(!p.is_allocated(30001));
        assert_eq!(p.allocate(), Ok(30001));
        assert_eq!(p.allocated_count(), 3);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Allocate,
        Specific(u32),
        Release(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Allocate),
            1 => (0u32..20).prop_map(Op::Specific),
            2 => (0u32..20).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Against a model set: no address is handed out twice, reserved addresses never come from
        /// `allocate`, and the allocator agrees with the model after every step.
        #[test]
        fn ip_allocator_matches_a_model(ops in proptest::collection::vec(op(), 0..60)) {
            // 10.0.0.0/28: .0 network, .1 kubernetes, .2-.14 allocatable, .15 broadcast.
            let mut a = match IpAllocator::new("10.0.0.0/28") {
                Ok(a) => a,
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            let mut model: BTreeSet<u32> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Allocate => match a.allocate() {
                        Ok(ip) => {
                            let last = ip.octets()[3] as u32;
                            prop_assert!((2..=14).contains(&last), "{ip}");
                            prop_assert!(model.insert(last), "{ip} handed out twice");
                        }
                        Err(AllocError::Full) => {
                            prop_assert_eq!(model.iter().filter(|o| (2..=14).contains(*o)).count(), 13);
                        }
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    },
                    Op::Specific(o) => {
                        let r = a.allocate_specific(&format!("10.0.0.{o}"));
                        match r {
                            Ok(_) => prop_assert!((1..=14).contains(&o) && model.insert(o)),
                            Err(AllocError::Allocated { .. }) => prop_assert!(model.contains(&o)),
                            Err(AllocError::IpOutOfRange { .. }) => prop_assert!(!(1..=14).contains(&o)),
                            Err(e) => return Err(TestCaseError::fail(e.to_string())),
                        }
                    }
                    Op::Release(o) => {
                        prop_assert_eq!(a.release(&format!("10.0.0.{o}")), model.remove(&o));
                    }
                }
                prop_assert_eq!(a.allocated_count(), model.len());
            }
        }

        #[test]
        fn port_allocator_never_duplicates(ops in proptest::collection::vec(op(), 0..60)) {
            let mut p = PortAllocator::new(30000, 30009);
            let mut model: BTreeSet<u16> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Allocate => match p.allocate() {
                        Ok(port) => prop_assert!(model.insert(port)),
                        Err(AllocError::Full) => prop_assert_eq!(model.len(), 10),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    },
                    Op::Specific(o) => {
                        let port = 29995 + o as u16;
                        match p.allocate_specific(port) {
                            Ok(_) => prop_assert!(model.insert(port)),
                            Err(AllocError::Allocated { .. }) => prop_assert!(model.contains(&port)),
                            Err(AllocError::PortOutOfRange { .. }) => prop_assert!(!(30000..=30009).contains(&port)),
                            Err(e) => return Err(TestCaseError::fail(e.to_string())),
                        }
                    }
                    Op::Release(o) => {
                        let port = 29995 + o as u16;
                        prop_assert_eq!(p.release(port), model.remove(&port));
                    }
                }
                prop_assert_eq!(p.allocated_count(), model.len());
            }
        }
    }
}
