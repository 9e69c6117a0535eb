//! Splicing an upgraded caller connection to an upgraded upstream connection (exec, attach, port forward).
//!
//! The bytes are copied transparently in both directions, so SPDY/3.1 and every WebSocket subprotocol pass
//! without the agent parsing frames. Each direction copies through one fixed buffer and writes (and flushes)
//! before reading again, so a slow reader stalls the writer on the other side: bytes in flight are bounded by
//! the buffer plus the TLS and socket buffers. When either direction ends (end of stream or error), the other
//! is given [`GRACE`] to finish, then both connections are dropped, which closes them.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::metrics::{self as m, StreamGuard};

/// Copy buffer per direction.
pub const BUFFER: usize = 16 * 1024;

/// How long the second direction may go on after the first one ended.
pub const GRACE: Duration = Duration::from_millis(300);

/// Waits for both upgrades, then copies both ways until one side is done (see the module docs).
pub async fn splice(
    caller: OnUpgrade,
    upstream: OnUpgrade,
    verb: &'static str,
    guard: StreamGuard,
) {
    let _guard = guard;
    let (caller, upstream) = match tokio::try_join!(caller, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::warn!(%error, verb, "upgrade failed");
            return;
        }
    };
    let (caller_read, caller_write) = tokio::io::split(TokioIo::new(caller));
    let (upstream_read, upstream_write) = tokio::io::split(TokioIo::new(upstream));
    let up = pump(caller_read, upstream_write, m::bytes(verb, "up"));
    let down = pump(upstream_read, caller_write, m::bytes(verb, "down"));
    tokio::pin!(up, down);
    let (first, rest) = tokio::select! {
        result = &mut up => ("caller", tokio::time::timeout(GRACE, &mut down).await.map(|_| result)),
        result = &mut down => ("upstream", tokio::time::timeout(GRACE, &mut up).await.map(|_| result)),
    };
    tracing::debug!(verb, first, finished = rest.is_ok(), "stream ended");
}

/// Copies `from` to `to` until end of stream or an error; shuts `to` down at the end.
async fn pump<R, W>(mut from: R, mut to: W, bytes: metrics::Counter) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        bytes.increment(n as u64);
        total += n as u64;
    }
}
