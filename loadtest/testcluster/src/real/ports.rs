//! Free loopback ports for the processes of a real cluster.

use std::net::{Ipv4Addr, TcpListener};

/// Asks the kernel for a free TCP port on 127.0.0.1.
///
/// The port is released before the caller's process binds it, so another process may take it in between;
/// callers retry the whole start-up when a process exits early (see [`super::etcd`]).
pub(crate) fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_port_is_bindable_and_nonzero() -> std::io::Result<()> {
        let port = free_loopback_port()?;
        assert_ne!(port, 0);
        let again = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        assert_eq!(again.local_addr()?.port(), port);
        Ok(())
    }
}
