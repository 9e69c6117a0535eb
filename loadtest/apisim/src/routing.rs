//! URL → what is asked for: discovery documents, health, the admin endpoint, or a resource path
//! (`/api/v1/namespaces/{ns}/{plural}/{name}/{sub}`, `/apis/{g}/{v}/...`, the legacy `/watch/` prefix).

use std::collections::HashMap;

/// A parsed resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace from the URL.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Subresource (`status`, `binding`, `finalize`, ...).
    pub subresource: Option<String>,
    /// The path used the legacy `/watch/` prefix.
    pub watch_prefix: bool,
}

/// The simulator's own control endpoints under `/apisim/v1/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRoute {
    /// `/apisim/v1/faults`.
    Faults,
    /// `/apisim/v1/force-gone`.
    ForceGone,
    /// `/apisim/v1/compact`.
    Compact,
}

/// What a URL path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api` (APIVersions).
    Api,
    /// `/api/v1` (APIResourceList of the core group).
    CoreResources,
    /// `/apis` (APIGroupList).
    Apis,
    /// `/apis/{group}` (APIGroup).
    Group(String),
    /// `/apis/{group}/{version}` (APIResourceList).
    GroupVersion(String, String),
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez` (and their sub-checks).
    Health,
    /// `/openapi/v2` (also `/swagger.json`).
    OpenApiV2,
    /// `/openapi/v3` (`None`) or `/openapi/v3/<path>` (e.g. `api/v1`, `apis/apps/v1`).
    OpenApiV3(Option<String>),
    /// `/apisim/v1/...`.
    Admin(AdminRoute),
    /// A resource path.
    Resource(ResourcePath),
    /// Nothing here.
    NotFound,
}

/// Percent-decodes a URL component (`+` means a space in query strings).
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into decoded key/value pairs (the last value of a repeated key wins).
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k, true), percent_decode(v, true));
    }
    out
}

/// Maps a URL path to a route.
pub fn route(path: &str) -> Route {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["api"] => Route::Api,
        ["api", "v1"] => Route::CoreResources,
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::Apis,
        ["apis", group] => Route::Group(group.to_string()),
        ["apis", group, version] => Route::GroupVersion(group.to_string(), version.to_string()),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["openapi", "v2"] | ["swagger.json"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3(None),
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(Some(rest.join("/"))),
        ["apisim", "v1", "faults"] => Route::Admin(AdminRoute::Faults),
        ["apisim", "v1", "force-gone"] => Route::Admin(AdminRoute::ForceGone),
        ["apisim", "v1", "compact"] => Route::Admin(AdminRoute::Compact),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let mk = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            watch_prefix,
        })
    };
    match rest {
        // `namespaces/{ns}/status` and `namespaces/{ns}/finalize` are subresources of the namespace itself.
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            mk("namespaces", None, Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => mk(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => mk(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => mk(plural, Some(ns), Some(name), Some(sub)),
        [plural] => mk(plural, None, None, None),
        [plural, name] => mk(plural, None, Some(name), None),
        [plural, name, sub] => mk(plural, None, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(r) => r,
            other => panic!("{path} routed to {other:?}"),
        }
    }

    #[test]
    fn core_namespaced_paths() {
        let r = res("/api/v1/namespaces/default/pods/web/status");
        assert_eq!((r.group.as_str(), r.plural.as_str()), ("", "pods"));
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let list = res("/api/v1/namespaces/default/pods");
        assert_eq!(list.name, None);
        let all = res("/api/v1/pods");
        assert_eq!((all.namespace, all.name), (None, None));
    }

    #[test]
    fn namespaces_themselves_and_their_subresources() {
        let ns = res("/api/v1/namespaces/foo");
        assert_eq!(
            (ns.plural.as_str(), ns.namespace, ns.name.as_deref()),
            ("namespaces", None, Some("foo"))
        );
        let fin = res("/api/v1/namespaces/foo/finalize");
        assert_eq!(
            (
                fin.plural.as_str(),
                fin.name.as_deref(),
                fin.subresource.as_deref()
            ),
            ("namespaces", Some("foo"), Some("finalize"))
        );
        let cms = res("/api/v1/namespaces/foo/configmaps");
        assert_eq!(
            (cms.plural.as_str(), cms.namespace.as_deref()),
            ("configmaps", Some("foo"))
        );
    }

    #[test]
    fn group_paths_and_watch_prefix() {
        let r = res("/apis/apps/v1/watch/namespaces/ns/deployments/d");
        assert!(r.watch_prefix);
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.name.as_deref()),
            ("apps", "v1", Some("d"))
        );
        assert_eq!(
            route("/apis/apps/v1"),
            Route::GroupVersion("apps".into(), "v1".into())
        );
        assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(route("/apis"), Route::Apis);
        assert_eq!(route("/healthz/ping"), Route::Health);
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Route::OpenApiV3(Some("apis/apps/v1".into()))
        );
        assert_eq!(route("/nope"), Route::NotFound);
    }

    #[test]
    fn query_is_percent_decoded() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&x"));
        assert_eq!(
            q.get("labelSelector").map(String::as_str),
            Some("app=web,tier in (a)")
        );
        assert_eq!(q.get("watch").map(String::as_str), Some("true"));
        assert_eq!(q.get("x").map(String::as_str), Some(""));
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
    }
}
