//! Field validation of the common built-in kinds with the real messages: pod containers, service ports and
//! external names, workload selectors matching their pod template.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::str_at;
use crate::resource_type::ResourceType;
use crate::selectors::LabelSelector;
use crate::status::Cause;
use crate::validation::{dns1123_label_errors, go_quote};

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: &str, shown: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {shown}: {detail}"),
        field: field.into(),
    }
}

/// Validation failures of `obj` (empty when valid); only the kinds below are checked.
pub(super) fn validate(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    if rt.custom {
        return Vec::new();
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec"),
        ("", "services") => service(obj),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => workload(obj),
        _ => Vec::new(),
    }
}

fn pod_spec(spec: &Value, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if containers.is_empty() {
        out.push(required(&format!("{path}.containers")));
    }
    let mut seen = HashSet::new();
    for list in ["initContainers", "containers"] {
        let items = spec
            .get(list)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            let name = str_at(c, "/name");
            if name.is_empty() {
                out.push(required(&format!("{at}.name")));
            } else {
                for msg in dns1123_label_errors(name) {
                    out.push(invalid(&format!("{at}.name"), &go_quote(name), &msg));
                }
                if !seen.insert(name.to_string()) {
                    out.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {}", go_quote(name)),
                        field: format!("{at}.name"),
                    });
                }
            }
            if str_at(c, "/image").is_empty() {
                out.push(required(&format!("{at}.image")));
            }
        }
    }
    out
}

fn service(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let svc_type = match str_at(obj, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if svc_type == "ExternalName" {
        if str_at(obj, "/spec/externalName").is_empty() {
            out.push(required("spec.externalName"));
        }
    } else if ports.is_empty() && str_at(obj, "/spec/clusterIP") != "None" {
        out.push(required("spec.ports"));
    }
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            out.push(invalid(
                &format!("spec.ports[{i}].port"),
                &port.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if ports.len() > 1 && str_at(p, "/name").is_empty() {
            out.push(required(&format!("spec.ports[{i}].name")));
        }
    }
    out
}

/// A label map as Go's `%#v` prints it: `map[string]string{"a":"1", "b":"2"}`.
fn go_map(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "map[string]string(nil)".to_string();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}

fn workload(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let labels: BTreeMap<String, String> = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    match obj.pointer("/spec/selector").filter(|s| !s.is_null()) {
        None => out.push(required("spec.selector")),
        Some(selector) => {
            let text = super::scale::selector_string_of(selector);
            match LabelSelector::parse(&text) {
                Ok(sel) if sel.is_empty() => out.push(invalid(
                    "spec.selector",
                    "{}",
                    "empty selector is invalid for deployment",
                )),
                Ok(sel) if !sel.matches(&labels) => out.push(invalid(
                    "spec.template.metadata.labels",
                    &go_map(&labels),
                    "`selector` does not match template `labels`",
                )),
                Ok(_) => {}
                Err(e) => out.push(invalid("spec.selector", &go_quote(&text), &e.to_string())),
            }
        }
    }
    out.extend(pod_spec(
        obj.pointer("/spec/template/spec").unwrap_or(&Value::Null),
        "spec.template.spec",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;
    use serde_json::json;

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn pods_need_named_containers_with_images() {
        let pods = builtin("", "pods").expect("pods");
        assert_eq!(
            fields(&validate(&pods, &json!({"spec": {}}))),
            vec!["spec.containers"]
        );
        let bad = json!({"spec": {"containers": [{"name": "a"}, {"name": "a", "image": "x"}, {"image": "y"}]}});
        assert_eq!(
            fields(&validate(&pods, &bad)),
            vec![
                "spec.containers[0].image",
                "spec.containers[1].name",
                "spec.containers[2].name"
            ]
        );
        assert!(
            validate(
                &pods,
                &json!({"spec": {"containers": [{"name": "a", "image": "x"}]}})
            )
            .is_empty()
        );
    }

    #[test]
    fn services_and_workloads() {
        let svc = builtin("", "services").expect("services");
        assert_eq!(
            fields(&validate(&svc, &json!({"spec": {}}))),
            vec!["spec.ports"]
        );
        assert!(validate(&svc, &json!({"spec": {"clusterIP": "None"}})).is_empty());
        let bad_port = validate(&svc, &json!({"spec": {"ports": [{"port": 70000}]}}));
        assert_eq!(
            bad_port[0].message,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let deploy = builtin("apps", "deployments").expect("deployments");
        let mismatch = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let causes = validate(&deploy, &mismatch);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        assert_eq!(
            causes[0].message,
            "Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`"
        );
        let missing =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(fields(&validate(&deploy, &missing)), vec!["spec.selector"]);
    }
}
