//! The kubelet routes the agent serves, parsed from the request path and query. Anything else is 404.
//!
//! | route | methods | query kept |
//! |---|---|---|
//! | `/containerLogs/{ns}/{pod}/{container}` | GET | [`LOG_PARAMS`] |
//! | `/exec/{ns}/{pod}[/{uid}]/{container}` | GET, POST | [`EXEC_PARAMS`] |
//! | `/attach/{ns}/{pod}[/{uid}]/{container}` | GET, POST | [`ATTACH_PARAMS`] |
//! | `/portForward/{ns}/{pod}[/{uid}]` | GET, POST | [`PORT_FORWARD_PARAMS`] |
//! | `/run/{ns}/{pod}[/{uid}]/{container}` | POST | [`RUN_PARAMS`] |
//! | `/pods` | GET | none |

/// Query parameters of `/containerLogs` passed on (all others are dropped).
pub const LOG_PARAMS: &[&str] = &[
    "follow",
    "tailLines",
    "timestamps",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];
/// Query parameters of `/exec` passed on.
pub const EXEC_PARAMS: &[&str] = &["command", "input", "output", "error", "tty"];
/// Query parameters of `/attach` passed on.
pub const ATTACH_PARAMS: &[&str] = &["input", "output", "error", "tty"];
/// Query parameters of `/portForward` passed on.
pub const PORT_FORWARD_PARAMS: &[&str] = &["port"];
/// Query parameters of `/run` passed on.
pub const RUN_PARAMS: &[&str] = &["cmd"];

/// What a pod route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Container logs.
    Logs,
    /// Command in a container (streaming upgrade).
    Exec,
    /// Attach to a running container (streaming upgrade).
    Attach,
    /// Port forwarding into the pod (streaming upgrade).
    PortForward,
    /// Command in a container, output as the response body.
    Run,
}

impl Verb {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Logs => "logs",
            Verb::Exec => "exec",
            Verb::Attach => "attach",
            Verb::PortForward => "portforward",
            Verb::Run => "run",
        }
    }

    /// The kubelet path segment of the verb.
    pub fn kubelet_segment(self) -> &'static str {
        match self {
            Verb::Logs => "containerLogs",
            Verb::Exec => "exec",
            Verb::Attach => "attach",
            Verb::PortForward => "portForward",
            Verb::Run => "run",
        }
    }

    /// Whether the verb is a streaming upgrade (SPDY or WebSocket).
    pub fn is_upgrade(self) -> bool {
        matches!(self, Verb::Exec | Verb::Attach | Verb::PortForward)
    }
}

/// A request about one pod, in tenant names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRoute {
    /// What is asked.
    pub verb: Verb,
    /// Tenant namespace.
    pub namespace: String,
    /// Tenant pod name.
    pub pod: String,
    /// Tenant pod UID when the caller used the `{podUID}` form.
    pub uid: Option<String>,
    /// Container name (same in tenant and super cluster); `None` for port forwarding.
    pub container: Option<String>,
    /// The allowed query parameters, `key=value` as received (values still percent-encoded), in order.
    pub query: Vec<(String, String)>,
}

/// A recognised request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A pod subresource.
    Pod(PodRoute),
    /// `GET /pods`: the caller's pods on this node.
    Pods,
}

impl Route {
    /// Parses a request; `None` for anything the agent does not serve.
    pub fn parse(method: &http::Method, path: &str, query: Option<&str>) -> Option<Route> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let (verb, rest) = segments.split_first()?;
        let verb = match (*verb, method) {
            ("pods", &http::Method::GET) if rest.is_empty() || rest == [""] => {
                return Some(Route::Pods);
            }
            ("containerLogs", &http::Method::GET) => Verb::Logs,
            ("exec", &http::Method::GET | &http::Method::POST) => Verb::Exec,
            ("attach", &http::Method::GET | &http::Method::POST) => Verb::Attach,
            ("portForward", &http::Method::GET | &http::Method::POST) => Verb::PortForward,
            ("run", &http::Method::POST) => Verb::Run,
            _ => return None,
        };
        if !rest.iter().all(|s| is_name(s)) {
            return None;
        }
        let (namespace, pod, uid, container) = match (verb, rest) {
            (Verb::Logs, [ns, pod, c]) => (ns, pod, None, Some(c)),
            (Verb::PortForward, [ns, pod]) => (ns, pod, None, None),
            (Verb::PortForward, [ns, pod, uid]) => (ns, pod, Some(uid), None),
            (Verb::Exec | Verb::Attach | Verb::Run, [ns, pod, c]) => (ns, pod, None, Some(c)),
            (Verb::Exec | Verb::Attach | Verb::Run, [ns, pod, uid, c]) => {
                (ns, pod, Some(uid), Some(c))
            }
            _ => return None,
        };
        let allowed = match verb {
            Verb::Logs => LOG_PARAMS,
            Verb::Exec => EXEC_PARAMS,
            Verb::Attach => ATTACH_PARAMS,
            Verb::PortForward => PORT_FORWARD_PARAMS,
            Verb::Run => RUN_PARAMS,
        };
        Some(Route::Pod(PodRoute {
            verb,
            namespace: (*namespace).to_string(),
            pod: (*pod).to_string(),
            uid: uid.map(|u| (*u).to_string()),
            container: container.map(|c| (*c).to_string()),
            query: filter_query(query, allowed),
        }))
    }

    /// The verb label for metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            Route::Pod(p) => p.verb.as_str(),
            Route::Pods => "pods",
        }
    }
}

impl PodRoute {
    /// The kubelet path and query of this request for the translated super namespace, pod and UID.
    pub fn super_path(
        &self,
        super_namespace: &str,
        super_pod: &str,
        super_uid: Option<&str>,
    ) -> String {
        kubelet_path(
            self.verb,
            super_namespace,
            super_pod,
            super_uid,
            self.container.as_deref(),
            &self.query,
        )
    }
}

/// `/{verb}/{namespace}/{pod}[/{uid}][/{container}]?{query}` as the kubelet serves it (logs never take a UID).
pub fn kubelet_path(
    verb: Verb,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    container: Option<&str>,
    query: &[(String, String)],
) -> String {
    let mut path = format!("/{}/{namespace}/{pod}", verb.kubelet_segment());
    if let Some(uid) = uid.filter(|_| verb != Verb::Logs) {
        path.push('/');
        path.push_str(uid);
    }
    if let Some(container) = container {
        path.push('/');
        path.push_str(container);
    }
    push_query(
        &mut path,
        query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    path
}

/// The allowed parameters of a form-encoded request body (`application/x-www-form-urlencoded`): the kubelet
/// reads `/run`'s `cmd` from the query or the form, so a `cmd` in the body is moved to the query.
pub fn form_params(body: &str, allowed: &[&str]) -> Vec<(String, String)> {
    filter_query(Some(body.trim_end_matches(['\r', '\n'])), allowed)
}

/// Appends `?k=v&k=v` (nothing when empty).
pub fn push_query<'a>(path: &mut String, query: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (i, (k, v)) in query.into_iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str(k);
        path.push('=');
        path.push_str(v);
    }
}

/// A Kubernetes object name segment: DNS-1123 subdomain characters only (no `..`, no encoding tricks).
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with('.')
}

/// Keeps the allowed keys whose values are plain (letters, digits and `-._~:%+`, i.e. already
/// percent-encoded), in their order; repeated keys (`command`, `port`) stay repeated.
fn filter_query(query: Option<&str>, allowed: &[&str]) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let plain = v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~:%+".contains(&b));
            (allowed.contains(&k) && plain).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_route(m: &http::Method, p: &str, q: Option<&str>) -> PodRoute {
        match Route::parse(m, p, q) {
            Some(Route::Pod(route)) => route,
            other => panic!("{m} {p}: {other:?}"),
        }
    }

    #[test]
    fn logs_route_keeps_only_known_params() {
        let route = pod_route(
            &http::Method::GET,
            "/containerLogs/ns/p/c",
            Some("follow=true&tailLines=5&evil=1&sinceTime=2024-01-01T00:00:00Z"),
        );
        assert_eq!((route.namespace.as_str(), route.pod.as_str()), ("ns", "p"));
        assert_eq!(
            route.super_path("key-ns", "p", Some("ignored-for-logs")),
            "/containerLogs/key-ns/p/c?follow=true&tailLines=5&sinceTime=2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn streaming_routes_with_and_without_uid() {
        let exec = pod_route(
            &http::Method::POST,
            "/exec/ns/p/c",
            Some("command=echo&command=hi%20there&input=1&output=1&error=1&tty=0&port=1&x=y"),
        );
        assert_eq!(exec.verb, Verb::Exec);
        assert_eq!(
            exec.super_path("sns", "sp", None),
            "/exec/sns/sp/c?command=echo&command=hi%20there&input=1&output=1&error=1&tty=0"
        );
        let exec = pod_route(&http::Method::GET, "/exec/ns/p/uid-1/c", None);
        assert_eq!(exec.uid.as_deref(), Some("uid-1"));
        assert_eq!(
            exec.super_path("sns", "sp", Some("suid")),
            "/exec/sns/sp/suid/c"
        );
        assert_eq!(exec.super_path("sns", "sp", None), "/exec/sns/sp/c");

        let attach = pod_route(
            &http::Method::GET,
            "/attach/ns/p/c",
            Some("command=rm&input=1"),
        );
        assert_eq!(
            attach.super_path("sns", "sp", None),
            "/attach/sns/sp/c?input=1"
        );

        let pf = pod_route(
            &http::Method::GET,
            "/portForward/ns/p",
            Some("port=80&port=8080"),
        );
        assert_eq!(
            (pf.verb, pf.container.as_deref()),
            (Verb::PortForward, None)
        );
        assert_eq!(
            pf.super_path("sns", "sp", None),
            "/portForward/sns/sp?port=80&port=8080"
        );
        let pf = pod_route(&http::Method::POST, "/portForward/ns/p/uid-1", None);
        assert_eq!(
            pf.super_path("sns", "sp", Some("suid")),
            "/portForward/sns/sp/suid"
        );

        let run = pod_route(
            &http::Method::POST,
            "/run/ns/p/c",
            Some("cmd=echo+hi&input=1"),
        );
        assert_eq!(
            run.super_path("sns", "sp", None),
            "/run/sns/sp/c?cmd=echo+hi"
        );

        assert_eq!(
            Route::parse(&http::Method::GET, "/pods", None),
            Some(Route::Pods)
        );
        assert_eq!(
            Route::parse(&http::Method::GET, "/pods/", None),
            Some(Route::Pods)
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        for (m, p) in [
            (http::Method::GET, "/containerLogs/ns/p"),
            (http::Method::GET, "/containerLogs/ns/p/c/extra"),
            (http::Method::GET, "/containerLogs/../p/c"),
            (http::Method::GET, "/containerLogs/NS/p/c"),
            (http::Method::GET, "/containerLogs/ns%2Fx/p/c"),
            (http::Method::POST, "/containerLogs/ns/p/c"),
            (http::Method::GET, "/exec/ns/p"),
            (http::Method::GET, "/exec/ns/p/u/c/x"),
            (http::Method::PUT, "/exec/ns/p/c"),
            (http::Method::GET, "/run/ns/p/c"),
            (http::Method::GET, "/portForward/ns"),
            (http::Method::GET, "/portForward/ns/p/u/x"),
            (http::Method::GET, "/attach/ns/../c"),
            (http::Method::POST, "/pods"),
            (http::Method::GET, "/pods/ns"),
            (http::Method::GET, "/metrics"),
            (http::Method::GET, "/"),
        ] {
            assert_eq!(Route::parse(&m, p, None), None, "{m} {p}");
        }
    }
}
