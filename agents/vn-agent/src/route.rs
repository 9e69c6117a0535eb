//! The kubelet routes the agent serves, parsed from the request path and query. Anything else is 404.

/// Query parameters of `/containerLogs` passed on to the kubelet (all others are dropped).
pub const LOG_PARAMS: &[&str] = &[
    "follow",
    "tailLines",
    "timestamps",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// A recognised request, in tenant names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /containerLogs/{namespace}/{pod}/{container}`.
    ContainerLogs {
        /// Tenant namespace.
        namespace: String,
        /// Tenant pod name.
        pod: String,
        /// Container name (same in tenant and super cluster).
        container: String,
        /// The allowed query parameters, `key=value` as received.
        query: Vec<(String, String)>,
    },
}

impl Route {
    /// Parses a request; `None` for anything the agent does not serve.
    pub fn parse(method: &http::Method, path: &str, query: Option<&str>) -> Option<Route> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        match (method, segments.as_slice()) {
            (&http::Method::GET, ["containerLogs", ns, pod, container])
                if [ns, pod, container].iter().all(|s| is_name(s)) =>
            {
                Some(Route::ContainerLogs {
                    namespace: (*ns).to_string(),
                    pod: (*pod).to_string(),
                    container: (*container).to_string(),
                    query: filter_query(query, LOG_PARAMS),
                })
            }
            _ => None,
        }
    }

    /// The verb label for metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            Route::ContainerLogs { .. } => "logs",
        }
    }

    /// Tenant namespace and pod the route is about.
    pub fn pod(&self) -> (&str, &str) {
        match self {
            Route::ContainerLogs { namespace, pod, .. } => (namespace, pod),
        }
    }

    /// The kubelet path and query for the translated super namespace and pod.
    pub fn super_path(&self, super_namespace: &str, super_pod: &str) -> String {
        match self {
            Route::ContainerLogs {
                container, query, ..
            } => {
                let mut path = format!("/containerLogs/{super_namespace}/{super_pod}/{container}");
                for (i, (k, v)) in query.iter().enumerate() {
                    path.push(if i == 0 { '?' } else { '&' });
                    path.push_str(k);
                    path.push('=');
                    path.push_str(v);
                }
                path
            }
        }
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

/// Keeps the allowed keys whose values are plain (letters, digits, `-`, `.`, `:`, `%`, `+`, `_`).
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
                .all(|b| b.is_ascii_alphanumeric() || b"-.:%+_".contains(&b));
            (allowed.contains(&k) && plain).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_route_keeps_only_known_params() {
        let route = Route::parse(
            &http::Method::GET,
            "/containerLogs/ns/p/c",
            Some("follow=true&tailLines=5&evil=1&sinceTime=2024-01-01T00:00:00Z"),
        )
        .unwrap_or_else(|| panic!("route"));
        assert_eq!(route.pod(), ("ns", "p"));
        assert_eq!(
            route.super_path("key-ns", "p"),
            "/containerLogs/key-ns/p/c?follow=true&tailLines=5&sinceTime=2024-01-01T00:00:00Z"
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
            (http::Method::GET, "/metrics"),
            (http::Method::GET, "/"),
        ] {
            assert_eq!(Route::parse(&m, p, None), None, "{m} {p}");
        }
    }
}
