//! `/run` in API-server mode. The API server has no `run` subresource, so the command runs through
//! `pods/exec` (WebSocket, `v4.channel.k8s.io`, stdout and stderr, no stdin or TTY) and its output is answered
//! as the kubelet answers `/run`: one body with stdout and stderr, 200 when the command succeeded, 500 with the
//! output and the status otherwise. Like the kubelet's, this answer is collected (bounded by [`MAX_OUTPUT`]),
//! not streamed.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, handshake::client::generate_key, protocol::Role};

use crate::forward::{BoxError, ForwardError, Upstream, UpstreamBody};
use crate::route::push_query;

/// Largest output collected from a `/run` command.
pub const MAX_OUTPUT: usize = 16 << 20;

/// The command of a kubelet `/run` query value (`cmd`, form/query encoded): decoded and split on whitespace
/// like the kubelet's `strings.Fields`.
pub fn command_fields(encoded: &str) -> Vec<String> {
    decode(encoded)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Decodes `+` and `%XX` (invalid escapes are kept as they are).
pub fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `pods/exec` path and query running `/run`'s command, or `None` without a command.
pub fn exec_path(request: &Upstream) -> Option<String> {
    let cmd: Vec<String> = request
        .query
        .iter()
        .filter(|(k, _)| k == "cmd")
        .flat_map(|(_, v)| command_fields(v))
        .collect();
    if cmd.is_empty() {
        return None;
    }
    let mut path = format!(
        "/api/v1/namespaces/{}/pods/{}/exec",
        request.namespace, request.pod
    );
    let encoded: Vec<String> = cmd.iter().map(|c| encode(c)).collect();
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(container) = &request.container {
        query.push(("container", container));
    }
    query.extend(encoded.iter().map(|c| ("command", c.as_str())));
    query.extend([("stdout", "1"), ("stderr", "1")]);
    push_query(&mut path, query);
    Some(path)
}

fn answer(status: http::StatusCode, body: Vec<u8>) -> http::Response<UpstreamBody> {
    let mut resp = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| -> BoxError { match never {} })
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Runs `/run`'s command through `pods/exec` with `client` and answers like the kubelet.
pub async fn run_via_exec(
    client: &kube::Client,
    request: &Upstream,
) -> Result<http::Response<UpstreamBody>, ForwardError> {
    let Some(path) = exec_path(request) else {
        return Ok(answer(
            http::StatusCode::BAD_REQUEST,
            b"missing cmd".to_vec(),
        ));
    };
    let req = http::Request::get(path)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, generate_key())
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, "v4.channel.k8s.io")
        .body(kube::client::Body::empty())?;
    let mut resp = client.send(req).await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        // The API server's refusal (e.g. a Status) goes back as it is.
        return Ok(resp.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()));
    }
    let upgraded = hyper::upgrade::on(&mut resp).await?;
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let mut output = Vec::new();
    let mut status = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Binary(data)) => match data.first() {
                Some(1 | 2) => output.extend_from_slice(&data[1..]),
                Some(3) => status.extend_from_slice(&data[1..]),
                _ => {}
            },
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(error) => return Err(ForwardError::Stream(error.to_string())),
        }
        if output.len() + status.len() > MAX_OUTPUT {
            return Err(ForwardError::Stream(format!(
                "output over {MAX_OUTPUT} bytes"
            )));
        }
    }
    let succeeded = status.is_empty()
        || serde_json::from_slice::<serde_json::Value>(&status)
            .is_ok_and(|s| s["status"] == "Success");
    if succeeded {
        Ok(answer(http::StatusCode::OK, output))
    } else {
        output.extend_from_slice(&status);
        Ok(answer(http::StatusCode::INTERNAL_SERVER_ERROR, output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Verb;

    #[test]
    fn the_command_is_split_like_the_kubelet_and_re_encoded() {
        assert_eq!(
            command_fields("ls+-la%20%2Ftmp++x"),
            ["ls", "-la", "/tmp", "x"]
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        let request = Upstream {
            verb: Verb::Run,
            method: http::Method::POST,
            namespace: "sns".into(),
            pod: "sp".into(),
            uid: None,
            container: Some("app".into()),
            query: vec![("cmd".into(), "echo+a%26b".into())],
            headers: http::HeaderMap::new(),
        };
        assert_eq!(
            exec_path(&request).as_deref(),
            Some(
                "/api/v1/namespaces/sns/pods/sp/exec?container=app&command=echo&command=a%26b&stdout=1&stderr=1"
            )
        );
        let empty = Upstream {
            query: vec![("cmd".into(), "+".into())],
            ..request
        };
        assert_eq!(exec_path(&empty), None);
    }
}
