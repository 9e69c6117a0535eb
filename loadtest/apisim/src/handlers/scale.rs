//! The `scale` subresource of deployments, replica sets, stateful sets and replication controllers: an
//! `autoscaling/v1` `Scale` view of `spec.replicas`.

use std::sync::Arc;

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::strategy::WriteScope;
use super::{
    ApiRequest, Body, json_response, object_rv, parse_body, request_namespace, str_at, update_with,
};
use crate::patch::PatchKind;
use crate::registry::storage_key;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::store::ObjectKey;

/// The selector of a workload in its string form (`app=web,tier in (a,b)`).
fn selector_string(obj: &Value) -> String {
    match obj.pointer("/spec/selector") {
        Some(selector) => selector_string_of(selector),
        None => String::new(),
    }
}

/// A label selector (or a replication controller's plain map) in its string form.
pub(super) fn selector_string_of(selector: &Value) -> String {
    let mut parts = Vec::new();
    // Replication controllers have a plain map; the others a LabelSelector.
    let labels = selector
        .get("matchLabels")
        .or_else(|| selector.is_object().then_some(selector));
    if let Some(map) = labels.and_then(Value::as_object) {
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = str_at(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match str_at(e, "/operator") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.sort();
    parts.join(",")
}

fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut scale_meta = json!({});
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(key) {
            scale_meta[key] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj),
        },
    })
}

/// GET, PUT or PATCH of `{resource}/{name}/scale`.
pub(super) fn handle(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let key = ObjectKey::new(&request_namespace(rt, req), name);
    let current = state
        .store
        .get(&storage_key(rt), &key)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let desired: Value = match req.method {
        Method::GET => return Ok(json_response(StatusCode::OK, &scale_of(&current.value()))),
        Method::PUT => parse_body(req)?,
        Method::PATCH => {
            let kind = req.content_type.as_deref().and_then(PatchKind::from_content_type).ok_or_else(|| {
                ApiError::unsupported_media_type(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                     application/strategic-merge-patch+json",
                )
            })?;
            crate::patch::apply_patch(kind, "Scale", &scale_of(&current.value()), &req.body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let replicas = desired
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            rt,
            name,
            vec![ApiError::invalid_value_cause(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let client_rv = object_rv(&desired)?;
    let stored = update_with(state, rt, &key, WriteScope::Main, |old| {
        let mut new = old.clone();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(replicas));
        }
        if let (Some(rv), Some(meta)) = (
            client_rv,
            new.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        Ok(new)
    })?;
    Ok(json_response(StatusCode::OK, &scale_of(&stored.value())))
}
