//! Where a pod subresource request goes: the pod's container, its node's kubelet address and the kubelet
//! path with its query, exactly as kube-apiserver computes them (`pkg/registry/core/pod/strategy.go`:
//! `LogLocation`, `streamLocation`, `PortForwardLocation`; node addresses as `--kubelet-preferred-address-types`).

use serde_json::Value;

use crate::registry::{builtin, storage_key};
use crate::state::ApiState;
use crate::status::{ApiError, Cause};
use crate::store::ObjectKey;

/// The proxied pod subresources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `pods/log` → kubelet `/containerLogs/{ns}/{pod}/{container}`.
    Log,
    /// `pods/exec` → kubelet `/exec/{ns}/{pod}/{container}` (an upgrade).
    Exec,
    /// `pods/attach` → kubelet `/attach/{ns}/{pod}/{container}` (an upgrade).
    Attach,
    /// `pods/portforward` → kubelet `/portForward/{ns}/{pod}` (an upgrade).
    PortForward,
}

impl Subresource {
    /// The subresource named in a URL, if it is proxied.
    pub fn parse(name: &str) -> Option<Subresource> {
        match name {
            "log" => Some(Subresource::Log),
            "exec" => Some(Subresource::Exec),
            "attach" => Some(Subresource::Attach),
            "portforward" => Some(Subresource::PortForward),
            _ => None,
        }
    }

    /// Whether the request must be a protocol upgrade (SPDY or WebSocket).
    pub fn is_upgrade(self) -> bool {
        !matches!(self, Subresource::Log)
    }

    /// The subresource as the API names it (`pods/<this>`).
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
        }
    }
}

/// The kubelet endpoint and request a subresource is proxied to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletTarget {
    /// Host (IP address or DNS name) from the node's status addresses.
    pub host: String,
    /// `status.daemonEndpoints.kubeletEndpoint.Port` (or the configured default when 0).
    pub port: u16,
    /// Path and query on the kubelet, e.g. `/containerLogs/ns/pod/c?follow=true`.
    pub path_and_query: String,
}

/// Node address types tried in order when none is configured: the common `kubeadm`/`kind` setting
/// `--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname`.
pub const DEFAULT_ADDRESS_TYPES: &[&str] = &["InternalIP", "ExternalIP", "Hostname"];

/// Decoded query parameters in request order (repeated keys kept, as `command` of exec needs).
pub type Query = Vec<(String, String)>;

/// Parses a raw query string into decoded pairs.
pub fn parse_query(raw: Option<&str>) -> Query {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                crate::routing::percent_decode(k, true),
                crate::routing::percent_decode(v, true),
            )
        })
        .collect()
}

fn first<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A boolean query parameter as the API's query converter reads it (`true`/`1`, absent or empty = false).
fn flag(query: &Query, key: &str) -> Result<bool, ApiError> {
    match first(query, key) {
        None | Some("" | "false" | "0" | "False" | "FALSE") => Ok(false),
        Some("true" | "1" | "True" | "TRUE") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value for {key}: strconv.ParseBool: parsing \"{other}\": invalid syntax"
        ))),
    }
}

/// A `FieldValueInvalid` cause for an integer (Go prints integers unquoted: `Invalid value: -1: msg`).
fn invalid_int(field: &str, value: i64, msg: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {msg}"),
        field: field.into(),
    }
}

fn integer(query: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match first(query, key) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid value for {key}: strconv.ParseInt: parsing \"{v}\": invalid syntax"
            ))
        }),
    }
}

/// `url.Values.Encode` of Go: keys sorted (stable for repeated keys), `QueryEscape`d.
pub fn encode_query(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Go's `url.QueryEscape`: unreserved bytes as is, space as `+`, everything else `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Validates `PodLogOptions` (422 Invalid with the causes of `ValidatePodLogOptions`, in its order) and
/// returns the kubelet query.
pub fn log_params(query: &Query, pod: &str) -> Result<String, ApiError> {
    let mut params: Vec<(&str, String)> = Vec::new();
    if flag(query, "follow")? {
        params.push(("follow", "true".into()));
    }
    if flag(query, "previous")? {
        params.push(("previous", "true".into()));
    }
    if flag(query, "timestamps")? {
        params.push(("timestamps", "true".into()));
    }
    let since_seconds = integer(query, "sinceSeconds")?;
    let since_time = first(query, "sinceTime").filter(|v| !v.is_empty());
    let tail_lines = integer(query, "tailLines")?;
    let limit_bytes = integer(query, "limitBytes")?;
    if let Some(t) = since_time
        && chrono::DateTime::parse_from_rfc3339(t).is_err()
    {
        return Err(ApiError::bad_request(format!(
            "parsing time \"{t}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse"
        )));
    }
    let mut causes = Vec::new();
    if let Some(n) = tail_lines.filter(|n| *n < 0) {
        causes.push(invalid_int(
            "tailLines",
            n,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = limit_bytes.filter(|n| *n < 1) {
        causes.push(invalid_int("limitBytes", n, "must be greater than 0"));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                .into(),
            field: String::new(),
        }),
        (Some(s), None) if s < 1 => {
            causes.push(invalid_int("sinceSeconds", s, "must be greater than 0"))
        }
        _ => {}
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid_kind("PodLogOptions", "", pod, causes));
    }
    if let Some(s) = since_seconds {
        params.push(("sinceSeconds", s.to_string()));
    }
    if let Some(t) = since_time {
        params.push(("sinceTime", t.to_string()));
    }
    if let Some(n) = tail_lines {
        params.push(("tailLines", n.to_string()));
    }
    if let Some(n) = limit_bytes {
        params.push(("limitBytes", n.to_string()));
    }
    Ok(encode_query(params))
}

/// The kubelet query of exec/attach (`input`, `output`, `error`, `tty` as `1`; exec's `command`s in order).
pub fn stream_params(query: &Query, sub: Subresource) -> Result<String, ApiError> {
    let mut params: Vec<(&str, String)> = Vec::new();
    for (param, key) in [
        ("input", "stdin"),
        ("output", "stdout"),
        ("error", "stderr"),
        ("tty", "tty"),
    ] {
        if flag(query, key)? {
            params.push((param, "1".into()));
        }
    }
    if sub == Subresource::Exec {
        for (k, v) in query {
            if k == "command" {
                params.push(("command", v.clone()));
            }
        }
    }
    Ok(encode_query(params))
}

/// The kubelet query of port-forward: the requested `ports` joined into one `port` parameter.
pub fn port_forward_params(query: &Query) -> Result<String, ApiError> {
    let mut ports = Vec::new();
    for (k, v) in query {
        if k == "ports" {
            for p in v.split(',').filter(|p| !p.is_empty()) {
                let port: u16 = p.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value for ports: strconv.ParseInt: parsing \"{p}\": invalid syntax"
                    ))
                })?;
                ports.push(port.to_string());
            }
        }
    }
    if ports.is_empty() {
        return Ok(String::new());
    }
    Ok(encode_query(vec![("port", ports.join(","))]))
}

/// Names of every container of a pod in the order the API visits them (init, regular, ephemeral).
fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| {
            pod.pointer(&format!("/spec/{field}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// `validateContainer`: the named container must exist; none named means the only regular container.
pub fn validate_container(requested: &str, pod: &Value, name: &str) -> Result<String, ApiError> {
    let all = container_names(pod);
    if requested.is_empty() {
        let regular: Vec<&str> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        return match regular.as_slice() {
            [only] => Ok((*only).to_string()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            ))),
        };
    }
    if all.iter().any(|c| c == requested) {
        Ok(requested.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "container {requested} is not valid for pod {name}"
        )))
    }
}

/// The address of a node to reach its kubelet: the first address of the first preferred type that has one.
pub fn node_host(node: &Value, preferred: &[String]) -> Result<String, ApiError> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for wanted in preferred {
        if let Some(addr) = addresses.iter().find_map(|a| {
            (a.get("type").and_then(Value::as_str) == Some(wanted.as_str()))
                .then(|| a.get("address").and_then(Value::as_str))
                .flatten()
                .filter(|s| !s.is_empty())
        }) {
            return Ok(addr.to_string());
        }
    }
    let known: Vec<String> = addresses
        .iter()
        .map(|a| {
            format!(
                "{{{} {}}}",
                a.get("type").and_then(Value::as_str).unwrap_or(""),
                a.get("address").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    Err(ApiError::unknown_internal(format!(
        "no preferred addresses found; known addresses: [{}]",
        known.join(" ")
    )))
}

/// The kubelet port a node advertises (`0`/absent → `default_port`).
pub fn node_port(node: &Value, default_port: u16) -> u16 {
    node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(default_port)
}

/// Resolves a request: the pod (404 if missing), its container (400 if ambiguous or unknown), its node (400
/// for exec/attach/portforward of an unbound pod; `Ok(None)` for the log of an unbound pod, which the real
/// server answers with an empty body), the node's address and kubelet port, and the kubelet path + query.
pub fn resolve(
    state: &ApiState,
    sub: Subresource,
    namespace: &str,
    name: &str,
    query: &Query,
    preferred: &[String],
    default_port: u16,
) -> Result<Option<KubeletTarget>, ApiError> {
    // Options are decoded and validated before the pod is read (a bad option on a missing pod is 422).
    let params = match sub {
        Subresource::Log => log_params(query, name)?,
        Subresource::Exec | Subresource::Attach => stream_params(query, sub)?,
        Subresource::PortForward => port_forward_params(query)?,
    };
    let pods = builtin("", "pods").ok_or_else(ApiError::no_route)?;
    let pod = state
        .store
        .get(&storage_key(&pods), &ObjectKey::new(namespace, name))
        .ok_or_else(|| ApiError::not_found(&pods, name))?
        .value();
    let container = match sub {
        Subresource::PortForward => String::new(),
        _ => validate_container(first(query, "container").unwrap_or(""), &pod, name)?,
    };
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return match sub {
            Subresource::Log => Ok(None),
            _ => Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            ))),
        };
    }
    let nodes = builtin("", "nodes").ok_or_else(ApiError::no_route)?;
    let node = state
        .store
        .get(&storage_key(&nodes), &ObjectKey::new("", node_name))
        .ok_or_else(|| ApiError::not_found(&nodes, node_name))?
        .value();
    let host = node_host(&node, preferred)?;
    let port = node_port(&node, default_port);
    let path = match sub {
        Subresource::Log => format!("/containerLogs/{namespace}/{name}/{container}"),
        Subresource::Exec => format!("/exec/{namespace}/{name}/{container}"),
        Subresource::Attach => format!("/attach/{namespace}/{name}/{container}"),
        Subresource::PortForward => format!("/portForward/{namespace}/{name}"),
    };
    let path_and_query = if params.is_empty() {
        path
    } else {
        format!("{path}?{params}")
    };
    Ok(Some(KubeletTarget {
        host,
        port,
        path_and_query,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(raw: &str) -> Query {
        parse_query(Some(raw))
    }

    #[test]
    fn log_options_become_the_kubelet_query_sorted_like_go() {
        let got = log_params(
            &q("timestamps=true&tailLines=5&follow=true&container=c&limitBytes=100&sinceSeconds=30&previous=1"),
            "web",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            got,
            "follow=true&limitBytes=100&previous=true&sinceSeconds=30&tailLines=5&timestamps=true"
        );
        assert_eq!(
            log_params(&q("follow=false&pretty=true"), "web").unwrap_or_default(),
            ""
        );
    }

    #[test]
    fn invalid_log_options_are_422_or_400() {
        let err = log_params(&q("tailLines=-1&sinceSeconds=0"), "web")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!((err.code, err.reason), (422, "Invalid"));
        assert_eq!(
            err.message,
            "PodLogOptions \"web\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal \
             to 0, sinceSeconds: Invalid value: 0: must be greater than 0]"
        );
        assert_eq!(err.details.causes.len(), 2);
        let both = log_params(&q("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"), "web")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(both.code, 422);
        let parse = log_params(&q("tailLines=ten"), "web")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!((parse.code, parse.reason), (400, "BadRequest"));
    }

    #[test]
    fn exec_and_attach_and_portforward_queries() {
        let exec = q(
            "command=sh&command=-c&command=echo+hi%26&stdin=true&stdout=true&stderr=true&tty=false&container=c",
        );
        assert_eq!(
            stream_params(&exec, Subresource::Exec).unwrap_or_default(),
            "command=sh&command=-c&command=echo+hi%26&error=1&input=1&output=1"
        );
        assert_eq!(
            stream_params(&exec, Subresource::Attach).unwrap_or_default(),
            "error=1&input=1&output=1"
        );
        assert_eq!(
            port_forward_params(&q("ports=8080&ports=9090")).unwrap_or_default(),
            "port=8080%2C9090"
        );
        assert_eq!(port_forward_params(&q("")).unwrap_or_default(), "");
        assert_eq!(
            port_forward_params(&q("ports=x")).err().map(|e| e.code),
            Some(400)
        );
    }

    #[test]
    fn container_rules() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(validate_container("", &one, "p").unwrap_or_default(), "app");
        let many = json!({"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        let err = validate_container("", &many, "p")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(
            validate_container("init", &many, "p").unwrap_or_default(),
            "init"
        );
        let err = validate_container("zzz", &many, "p")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.message, "container zzz is not valid for pod p");
        let none = json!({"spec": {"containers": []}});
        assert_eq!(
            validate_container("", &none, "p").err().map(|e| e.message),
            Some("a container name must be specified for pod p".to_string())
        );
    }

    #[test]
    fn node_address_and_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.9"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10555}},
        }});
        let preferred: Vec<String> = DEFAULT_ADDRESS_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            node_host(&node, &preferred).unwrap_or_default(),
            "127.0.0.9"
        );
        assert_eq!(
            node_host(&node, &["Hostname".to_string()]).unwrap_or_default(),
            "n1"
        );
        assert_eq!(node_port(&node, 10250), 10555);
        let bare =
            json!({"status": {"addresses": [{"type": "ExternalDNS", "address": "x.example"}]}});
        let err = node_host(&bare, &preferred)
            .err()
            .unwrap_or_else(|| panic!("found"));
        assert_eq!(err.code, 500);
        assert!(
            err.message.contains("no preferred addresses found"),
            "{}",
            err.message
        );
        assert_eq!(node_port(&bare, 10250), 10250);
    }
}
