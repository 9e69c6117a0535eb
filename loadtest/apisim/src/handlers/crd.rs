//! CustomResourceDefinitions: validating a CRD, serving its custom resources at once (the real
//! apiextensions controllers' `NamesAccepted` + `Established`), and removing them with the CRD.

use std::sync::Arc;

use serde_json::{Value, json};

use super::str_at;
use super::strategy::WriteScope;
use crate::resource_type::{PrinterColumn, ResourceType};
use crate::state::ApiState;
use crate::status::ApiError;
use crate::store::ObjectKey;

/// Checks the parts of a CRD the simulator relies on (422 like the real validation).
pub(super) fn validate(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    crd: &Value,
) -> Result<(), ApiError> {
    let name = str_at(crd, "/metadata/name");
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let kind = str_at(crd, "/spec/names/kind");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(ApiError::required_cause("spec.group", ""));
    }
    if plural.is_empty() {
        causes.push(ApiError::required_cause("spec.names.plural", ""));
    }
    if kind.is_empty() {
        causes.push(ApiError::required_cause("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(ApiError::invalid_value_cause(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = str_at(crd, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(ApiError::invalid_value_cause(
            "spec.scope",
            scope,
            "must be either Namespaced or Cluster",
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(ApiError::required_cause(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count()
        != 1
    {
        causes.push(ApiError::invalid_value_cause(
            "spec.versions",
            "",
            "must have exactly one version marked as storage version",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && state.registry.plural_taken(group, plural, name) {
        causes.push(ApiError::invalid_value_cause(
            "spec.names.plural",
            plural,
            "is already in use",
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, causes))
    }
}

/// The resource types a CRD defines (one per served version, the storage version first).
pub(crate) fn types_of(crd: &Value) -> Vec<ResourceType> {
    let group = str_at(crd, "/spec/group").to_string();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = str_at(&names, "/kind").to_string();
    let plural = str_at(&names, "/plural").to_string();
    let singular = match str_at(&names, "/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    let list_kind = match str_at(&names, "/listKind") {
        "" => format!("{kind}List"),
        s => s.to_string(),
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let mut versions: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions.sort_by_key(|v| v.get("storage").and_then(Value::as_bool) != Some(true));
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        .map(|v| {
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: str_at(c, "/name").to_string(),
                            type_: str_at(c, "/type").to_string(),
                            json_path: str_at(c, "/jsonPath").to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                            description: str_at(c, "/description").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ResourceType {
                group: group.clone(),
                version: str_at(v, "/name").to_string(),
                kind: kind.clone(),
                list_kind: list_kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced,
                short_names: short_names.clone(),
                categories: categories.clone(),
                has_status: v.pointer("/subresources/status").is_some(),
                has_generation: true,
                printer_columns,
                custom: true,
            }
        })
        .collect()
}

/// The `openAPIV3Schema` of each version.
fn schemas_of(crd: &Value) -> Vec<(String, Value)> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| {
                    let schema = v.pointer("/schema/openAPIV3Schema")?.clone();
                    Some((str_at(v, "/name").to_string(), schema))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Drops the fields a custom resource's schema does not know (done first, like the real decoder).
pub(crate) fn prune(state: &Arc<ApiState>, rt: &ResourceType, obj: &mut Value) {
    if let Some(schema) = state.registry.schema(rt) {
        crate::schema::prune(&schema, obj);
    }
}

/// Validates a custom resource against its schema (done last, after the strategy): 422 on violations.
pub(crate) fn validate_object(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    obj: &Value,
) -> Result<(), ApiError> {
    let Some(schema) = state.registry.schema(rt) else {
        return Ok(());
    };
    let causes = crate::schema::validate(&schema, obj);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, str_at(obj, "/metadata/name"), causes))
    }
}

/// Serves the CRD's types and records `NamesAccepted`/`Established` in its status.
pub(crate) fn establish(state: &Arc<ApiState>, rt: &ResourceType, crd: &Value) {
    let name = str_at(crd, "/metadata/name").to_string();
    state
        .registry
        .set_crd(&name, types_of(crd), schemas_of(crd));
    let mut accepted = crd
        .pointer("/spec/names")
        .filter(|n| n.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if str_at(&accepted, "/listKind").is_empty() {
        accepted["listKind"] = json!(format!("{}List", str_at(&accepted, "/kind")));
    }
    if str_at(&accepted, "/singular").is_empty() {
        accepted["singular"] = json!(str_at(&accepted, "/kind").to_ascii_lowercase());
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = super::now_rfc3339();
    let result = super::update_with(
        state,
        rt,
        &ObjectKey::new("", &name),
        WriteScope::Status,
        |old| {
            let mut new = old.clone();
            let keep_time = |t: &str| -> String {
                old.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| {
                        cs.iter()
                            .find(|c| str_at(c, "/type") == t && str_at(c, "/status") == "True")
                    })
                    .map(|c| str_at(c, "/lastTransitionTime").to_string())
                    .unwrap_or_else(|| now.clone())
            };
            new["status"] = json!({
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
                ],
                "acceptedNames": accepted,
                "storedVersions": storage,
            });
            Ok(new)
        },
    );
    if let Err(e) = result {
        tracing::warn!(crd = %name, error = %e.message, "failed to record CRD status");
    }
}

/// Stops serving a deleted CRD's types and deletes its custom resources (each with a DELETED event).
pub(crate) fn remove(state: &Arc<ApiState>, crd: &Value) {
    let name = str_at(crd, "/metadata/name");
    state.registry.remove_crd(name);
    let resource = format!(
        "{}/{}",
        str_at(crd, "/spec/group"),
        str_at(crd, "/spec/names/plural")
    );
    for key in state.store.keys(&resource, None) {
        if let Some(current) = state.store.get(&resource, &key) {
            let _ = state.store.delete(&resource, key, current.rv);
        }
    }
}
