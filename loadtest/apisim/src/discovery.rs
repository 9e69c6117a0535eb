//! Discovery documents: `/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}` and `/version`, in the
//! legacy (unaggregated) JSON form; clients asking for aggregated discovery get these with
//! `Content-Type: application/json` and fall back to them, as with any server without aggregation.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::registry::{self, Registry};
use crate::resource_type::ResourceType;
use crate::status::ApiError;

/// `/api`.
pub fn api_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv).unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|g| group_doc(&g.name, &g.versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn api_group(registry: &Registry, group: &str) -> Result<Value, ApiError> {
    let info = registry
        .groups()
        .into_iter()
        .find(|g| g.name == group)
        .ok_or_else(ApiError::no_route)?;
    let mut doc = group_doc(&info.name, &info.versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(doc)
}

fn resource_entries(rt: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": registry::verbs(rt),
    });
    if !rt.short_names.is_empty() {
        main["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        main["categories"] = json!(rt.categories);
    }
    let mut out = vec![main];
    if rt.has_status {
        out.push(json!({
            "name": format!("{}/status", rt.plural),
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": registry::STATUS_VERBS,
        }));
    }
    for (sub, verbs) in registry::extra_subresources(rt) {
        let mut entry = json!({
            "name": format!("{}/{sub}", rt.plural),
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": verbs,
        });
        match *sub {
            "binding" => entry["kind"] = json!("Binding"),
            "exec" => entry["kind"] = json!("PodExecOptions"),
            "attach" => entry["kind"] = json!("PodAttachOptions"),
            "portforward" => entry["kind"] = json!("PodPortForwardOptions"),
            "scale" => {
                entry["kind"] = json!("Scale");
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
            }
            "token" => {
                entry["kind"] = json!("TokenRequest");
                entry["group"] = json!("authentication.k8s.io");
                entry["version"] = json!("v1");
            }
            _ => {}
        }
        out.push(entry);
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn api_resource_list(
    registry: &Registry,
    group: &str,
    version: &str,
) -> Result<Value, ApiError> {
    let types = registry.group_version(group, version);
    if types.is_empty() {
        return Err(ApiError::no_route());
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = types.iter().flat_map(|rt| resource_entries(rt)).collect();
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-apisim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_subresources_and_short_names() {
        let reg = Registry::new();
        let doc = api_resource_list(&reg, "", "v1").expect("core");
        let resources = doc["resources"].as_array().expect("resources");
        let find = |n: &str| resources.iter().find(|r| r["name"] == n).cloned();
        let pods = find("pods").expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(
            find("pods/status").expect("status")["verbs"],
            json!(["get", "patch", "update"])
        );
        assert_eq!(
            find("pods/binding").expect("binding")["verbs"],
            json!(["create"])
        );
        assert!(
            find("namespaces").expect("ns")["verbs"]
                .as_array()
                .expect("verbs")
                .iter()
                .all(|v| v != "deletecollection")
        );
        assert!(api_resource_list(&reg, "nope.io", "v1").is_err());
    }

    #[test]
    fn group_list_has_preferred_versions() {
        let reg = Registry::new();
        let doc = api_group_list(&reg);
        let apps = doc["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["name"] == "apps")
            .cloned()
            .expect("apps");
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert_eq!(api_group(&reg, "apps").expect("apps")["kind"], "APIGroup");
    }
}
