//! A minimal plain-HTTP GET over loopback, enough to poll etcd's `/health` without a client library.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a single probe may take (connect + request + response).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest response read; health answers are tiny.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Status code and body of one `GET path` to `addr`, or a description of what failed.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    tokio::time::timeout(PROBE_TIMEOUT, get_inner(addr, path))
        .await
        .map_err(|_| format!("GET {path} timed out after {PROBE_TIMEOUT:?}"))?
}

async fn get_inner(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&String::from_utf8_lossy(&raw))
}

/// Splits an HTTP/1.x response into status code and body.
fn parse_response(text: &str) -> Result<(u16, String), String> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header terminator in {text:?}"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let parsed =
            parse_response("HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n{\"health\":\"true\"}");
        assert_eq!(parsed, Ok((200, "{\"health\":\"true\"}".to_string())));
        let parsed = parse_response("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(parsed, Ok((503, String::new())));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_response("garbage").is_err());
        assert!(parse_response("HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn talks_to_a_real_socket() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await?;
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await?;
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await?;
            anyhow::Ok(request)
        });
        let (code, body) = get(addr, "/health").await.map_err(anyhow::Error::msg)?;
        assert_eq!((code, body.as_str()), (200, "ok"));
        let request = server.await??;
        assert!(request.starts_with("GET /health HTTP/1.0\r\n"), "{request}");
        Ok(())
    }
}
