//! Structural-schema handling of custom resources, like the apiextensions server: unknown fields are
//! pruned (unless `x-kubernetes-preserve-unknown-fields`), then the object is validated against the CRD
//! version's `openAPIV3Schema` (types, required, enum, bounds, lengths, item counts; `pattern` and CEL rules
//! are not checked).

use serde_json::{Map, Value};

use crate::status::Cause;

/// Removes every field the schema does not know (at the root `apiVersion`, `kind` and `metadata` stay).
pub fn prune(schema: &Value, obj: &mut Value) {
    prune_at(schema, obj, true);
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn prune_at(schema: &Value, value: &mut Value, root: bool) {
    let embedded = schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true);
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = preserves_unknown(schema);
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let always = (root || embedded)
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                if always {
                    continue;
                }
                let sub = properties.and_then(|p| p.get(&key)).or(additional);
                match (sub, map.get_mut(&key)) {
                    (Some(sub), Some(v)) => prune_at(sub, v, false),
                    (None, _) if keep_unknown => {}
                    (None, _) => {
                        map.remove(&key);
                    }
                    (Some(_), None) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    prune_at(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as kube-openapi prints it in messages (`"big"`, `7`).
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => crate::validation::go_quote(s),
        other => other.to_string(),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".to_string(),
        message: format!("Invalid value: {}: {detail}", show(value)),
        field: path.to_string(),
    }
}

/// Validates `obj` against the schema; every violation as a `details.causes` entry.
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let (Some(props), Some(map)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object(),
    ) {
        for (key, sub) in props {
            if key == "metadata" || key == "apiVersion" || key == "kind" {
                continue;
            }
            if let Some(v) = map.get(key) {
                validate_at(sub, v, key, &mut out);
            }
        }
        required(schema, map, "", &mut out);
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn required(schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for key in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                out.push(Cause {
                    reason: "FieldValueRequired".to_string(),
                    message: "Required value".to_string(),
                    field: join(path, key),
                });
            }
        }
    }
}

fn validate_at(schema: &Value, value: &Value, path: &str, out: &mut Vec<Cause>) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            let expected = schema
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object");
            out.push(invalid(
                path,
                value,
                format!("{path} in body must be of type {expected}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !matches!(type_name(value), "integer" | "string") {
            out.push(invalid(
                path,
                value,
                format!(
                    "{path} in body must be of type integer,string: {:?}",
                    type_name(value)
                ),
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            out.push(invalid(
                path,
                value,
                format!("{path} in body must be of type {expected}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(show).collect();
        out.push(Cause {
            reason: "FieldValueNotSupported".to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                show(value),
                supported.join(", ")
            ),
            field: path.to_string(),
        });
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let exclusive_min =
                schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let exclusive_max =
                schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if exclusive_min && x <= min {
                    out.push(invalid(
                        path,
                        value,
                        format!(
                            "{path} in body should be greater than {}",
                            show(&schema["minimum"])
                        ),
                    ));
                } else if x < min {
                    out.push(invalid(
                        path,
                        value,
                        format!(
                            "{path} in body should be greater than or equal to {}",
                            show(&schema["minimum"])
                        ),
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if exclusive_max && x >= max {
                    out.push(invalid(
                        path,
                        value,
                        format!(
                            "{path} in body should be less than {}",
                            show(&schema["maximum"])
                        ),
                    ));
                } else if x > max {
                    out.push(invalid(
                        path,
                        value,
                        format!(
                            "{path} in body should be less than or equal to {}",
                            show(&schema["maximum"])
                        ),
                    ));
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.push(Cause {
                    reason: "FieldValueTooLong".to_string(),
                    message: format!("Too long: may not be more than {max} bytes"),
                    field: path.to_string(),
                });
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.push(invalid(
                    path,
                    value,
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                out.push(Cause {
                    reason: "FieldValueTooMany".to_string(),
                    message: format!("Too many: {n}: must have at most {max} items"),
                    field: path.to_string(),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                out.push(invalid(
                    path,
                    value,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                if let Some(sub) = props.and_then(|p| p.get(key)).or(additional) {
                    validate_at(sub, v, &join(path, key), out);
                }
            }
            required(schema, map, path, out);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }})
    }

    #[test]
    fn pruning_keeps_known_fields_and_preserved_subtrees() {
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w", "x": 1},
            "spec": {"size": 1, "bogus": true, "labels": {"a": "b"}, "free": {"anything": {"goes": 1}}},
            "status": {"ready": true, "junk": 1}, "top": 1});
        prune(&schema(), &mut obj);
        assert_eq!(
            obj,
            json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w", "x": 1},
            "spec": {"size": 1, "labels": {"a": "b"}, "free": {"anything": {"goes": 1}}},
            "status": {"ready": true}})
        );
    }

    #[test]
    fn violations_have_the_kube_openapi_messages() {
        let s = schema();
        let causes = validate(&s, &json!({"spec": {"size": 0}}));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(
            causes[0].message,
            "Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
        let causes = validate(&s, &json!({"spec": {"size": "big"}}));
        assert_eq!(
            causes[0].message,
            "Invalid value: \"big\": spec.size in body must be of type integer: \"string\""
        );
        let causes = validate(
            &s,
            &json!({"spec": {"color": "green", "tags": ["a", "b", "c"], "port": true}}),
        );
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.color", "spec.port", "spec.tags", "spec.size"]
        );
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"green\": supported values: \"red\", \"blue\""
        );
        assert_eq!(causes[3].reason, "FieldValueRequired");
        assert!(
            validate(
                &s,
                &json!({"spec": {"size": 2, "port": "http", "labels": {"a": "b"}}})
            )
            .is_empty()
        );
    }
}
