//! The three patch formats of `PATCH` requests: RFC 6902 JSON patch, RFC 7386 JSON merge patch and
//! Kubernetes strategic merge patch.
//!
//! Strategic merge patch knows the list merge rules (`patchStrategy` / `patchMergeKey` struct tags of
//! `k8s.io/api`) of the built-in kinds the simulator serves: containers by `name`, container ports by
//! `containerPort`, env by `name`, volume mounts by `mountPath`, volumes by `name`, conditions by `type`,
//! service ports by `port`, owner references by `uid`, finalizers as a set, and the pod template rules
//! inside Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, ReplicationControllers and PodTemplates.
//! Lists without a rule are replaced, like the real server. Directives: `$patch: replace|merge|delete` (on
//! maps and as list elements), `$deleteFromPrimitiveList/<field>`, `$retainKeys`, and
//! `$setElementOrder/<field>` (honoured for the elements it names; elements it does not name keep their
//! relative order after them, which is close to but not exactly the real ordering). Custom resources do not
//! support strategic merge patch (the server answers 415 for them).

use serde_json::{Map, Value};
use thiserror::Error;

/// A patch format, chosen by the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; recognised, not implemented).
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type` header value (parameters such as `charset` are ignored);
    /// `None` for anything else (the server answers 415).
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }

    /// The media type string.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchKind::Json => "application/json-patch+json",
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::Strategic => "application/strategic-merge-patch+json",
            PatchKind::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Error)]
pub enum PatchError {
    /// The patch body is not valid JSON (400).
    #[error("error decoding patch: {0}")]
    Decode(#[source] serde_json::Error),
    /// A JSON patch body is not an array of operations, or an operation is malformed (400).
    #[error("invalid JSON patch: {0}")]
    MalformedJsonPatch(String),
    /// A JSON patch operation does not apply to the document (422).
    #[error("{0}")]
    JsonPatchFailed(String),
    /// A strategic merge patch must be a JSON object (400).
    #[error("strategic merge patch must be a JSON object")]
    NotAnObject,
    /// A list element in a strategic merge patch lacks the list's merge key (422).
    #[error("map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The element, as JSON.
        element: String,
        /// The merge key.
        key: String,
    },
    /// An unknown or misplaced `$patch` directive (422).
    #[error("{0}")]
    BadDirective(String),
    /// Server-side apply is not implemented (415).
    #[error(
        "server-side apply (application/apply-patch+yaml) is not supported by this simulated API server"
    )]
    ApplyUnsupported,
}

impl PatchError {
    /// The HTTP status the real server uses for this failure.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::Decode(_) | PatchError::MalformedJsonPatch(_) | PatchError::NotAnObject => {
                400
            }
            PatchError::ApplyUnsupported => 415,
            PatchError::JsonPatchFailed(_)
            | PatchError::MissingMergeKey { .. }
            | PatchError::BadDirective(_) => 422,
        }
    }
}

/// Applies a patch body of the given kind to `current` (an object of `kind`, e.g. `Pod`) and returns the
/// patched object. `current` is not modified.
pub fn apply_patch(
    patch_kind: PatchKind,
    kind: &str,
    current: &Value,
    body: &[u8],
) -> Result<Value, PatchError> {
    if patch_kind == PatchKind::Apply {
        return Err(PatchError::ApplyUnsupported);
    }
    let patch: Value = serde_json::from_slice(body).map_err(PatchError::Decode)?;
    let mut out = current.clone();
    match patch_kind {
        PatchKind::Json => json_patch(&mut out, &patch)?,
        PatchKind::Merge => merge_patch(&mut out, &patch),
        PatchKind::Strategic => strategic_merge_patch(kind, &mut out, &patch)?,
        PatchKind::Apply => return Err(PatchError::ApplyUnsupported),
    }
    Ok(out)
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `move`, `copy`, `test`, applied in order; the target
/// is left unchanged if any operation fails.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let Value::Array(ops) = ops else {
        return Err(PatchError::MalformedJsonPatch(
            "a JSON patch must be an array of operations".to_string(),
        ));
    };
    let mut doc = target.clone();
    for op in ops {
        apply_op(&mut doc, op)?;
    }
    *target = doc;
    Ok(())
}

fn op_str<'a>(op: &'a Value, field: &str) -> Result<&'a str, PatchError> {
    op.get(field).and_then(Value::as_str).ok_or_else(|| {
        PatchError::MalformedJsonPatch(format!(
            "operation {op} is missing string field \"{field}\""
        ))
    })
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let name = op_str(op, "op")?;
    let path = op_str(op, "path")?;
    let value = || {
        op.get("value").cloned().ok_or_else(|| {
            PatchError::MalformedJsonPatch(format!("{name} operation does not have a value"))
        })
    };
    match name {
        "add" => add(doc, path, value()?),
        "remove" => remove(doc, path).map(|_| ()),
        "replace" => {
            let slot = pointer_mut(doc, path).ok_or_else(|| {
                PatchError::JsonPatchFailed(format!(
                    "replace operation does not apply: doc is missing key: {path}: missing value"
                ))
            })?;
            *slot = value()?;
            Ok(())
        }
        "move" => {
            let from = op_str(op, "from")?;
            if path != from && path.starts_with(&format!("{from}/")) {
                return Err(PatchError::JsonPatchFailed(format!(
                    "move operation cannot move {from} into its own child {path}"
                )));
            }
            let moved = remove(doc, from)?;
            add(doc, path, moved)
        }
        "copy" => {
            let from = op_str(op, "from")?;
            let copied = pointer(doc, from).cloned().ok_or_else(|| {
                PatchError::JsonPatchFailed(format!(
                    "copy operation does not apply: doc is missing from path: {from}: missing value"
                ))
            })?;
            add(doc, path, copied)
        }
        "test" => {
            let expected = value()?;
            match pointer(doc, path) {
                Some(actual) if *actual == expected => Ok(()),
                _ => Err(PatchError::JsonPatchFailed(format!(
                    "testing value {path} failed: test failed"
                ))),
            }
        }
        other => Err(PatchError::MalformedJsonPatch(format!(
            "Unexpected kind: {other}"
        ))),
    }
}

/// Splits an RFC 6901 pointer into unescaped tokens; `None` if it does not start with `/` (and is not "").
fn pointer_tokens(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if token == "-" {
        return allow_end.then_some(len);
    }
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let i: usize = token.parse().ok()?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (i <= limit && (allow_end || len > 0)).then_some(i)
}

fn pointer<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for token in pointer_tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get(&token)?,
            Value::Array(a) => a.get(array_index(&token, a.len(), false)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn pointer_mut<'a>(doc: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = doc;
    for token in pointer_tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get_mut(&token)?,
            Value::Array(a) => {
                let i = array_index(&token, a.len(), false)?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// Parent container and last token of a pointer.
fn split_parent(path: &str) -> Option<(String, String)> {
    let tokens = pointer_tokens(path)?;
    let last = tokens.last()?.clone();
    let idx = path.rfind('/')?;
    Some((path[..idx].to_string(), last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let missing = || {
        PatchError::JsonPatchFailed(format!(
            "add operation does not apply: doc is missing path: \"{path}\": missing value"
        ))
    };
    let (parent, last) = split_parent(path).ok_or_else(missing)?;
    match pointer_mut(doc, &parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(&last, a.len(), true).ok_or_else(|| {
                PatchError::JsonPatchFailed(format!(
                    "add operation does not apply: index out of bounds: {last}"
                ))
            })?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let missing = || {
        let key = path.rsplit('/').next().unwrap_or(path);
        PatchError::JsonPatchFailed(format!(
            "Unable to remove nonexistent key: {key}: missing value"
        ))
    };
    let (parent, last) = split_parent(path).ok_or_else(missing)?;
    match pointer_mut(doc, &parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = array_index(&last, a.len(), false).ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// How a list field merges in a strategic merge patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replace the whole list (no `patchStrategy` tag).
    Replace,
    /// Merge elements that have equal values of this key (`patchStrategy:"merge" patchMergeKey:"..."`).
    MergeByKey(&'static str),
    /// Union of primitive values (`patchStrategy:"merge"` on a list of strings, e.g. finalizers).
    MergeSet,
}

/// Which schema a path is inside, after unwrapping pod templates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Schema {
    Pod,
    Node,
    Service,
    Other,
}

/// The list strategy of the field at `path` (field names from the object root, list indices omitted) in
/// an object of `kind`, following the `k8s.io/api` struct tags.
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergeSet, Replace};
    let (schema, rest) = unwrap_template(kind, path);
    match rest {
        [.., "metadata", "finalizers"] => return MergeSet,
        [.., "metadata", "ownerReferences"] => return MergeByKey("uid"),
        ["status", "conditions"] => return MergeByKey("type"),
        _ => {}
    }
    match (schema, rest) {
        (
            Schema::Pod,
            [
                "spec",
                "containers" | "initContainers" | "ephemeralContainers",
            ],
        ) => MergeByKey("name"),
        (
            Schema::Pod,
            [
                "spec",
                "containers" | "initContainers" | "ephemeralContainers",
                field,
            ],
        ) => match *field {
            "ports" => MergeByKey("containerPort"),
            "env" => MergeByKey("name"),
            "volumeMounts" => MergeByKey("mountPath"),
            "volumeDevices" => MergeByKey("devicePath"),
            _ => Replace,
        },
        (Schema::Pod, ["spec", "volumes" | "imagePullSecrets" | "schedulingGates"]) => {
            MergeByKey("name")
        }
        (Schema::Pod, ["spec", "resourceClaims"]) => MergeByKey("name"),
        (Schema::Pod, ["spec", "hostAliases"]) => MergeByKey("ip"),
        (Schema::Pod, ["spec", "topologySpreadConstraints"]) => MergeByKey("topologyKey"),
        (Schema::Pod, ["status", "podIPs" | "hostIPs"]) => MergeByKey("ip"),
        (Schema::Pod, ["status", "resourceClaimStatuses"]) => MergeByKey("name"),
        (Schema::Node, ["spec", "podCIDRs"]) => MergeSet,
        (Schema::Node, ["status", "addresses"]) => MergeByKey("type"),
        (Schema::Service, ["spec", "ports"]) => MergeByKey("port"),
        _ => Replace,
    }
}

/// Maps a path inside a workload's pod template onto the pod schema.
fn unwrap_template<'a>(kind: &str, path: &'a [&'a str]) -> (Schema, &'a [&'a str]) {
    match kind {
        "Pod" => (Schema::Pod, path),
        "Node" => (Schema::Node, path),
        "Service" => (Schema::Service, path),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => match path {
            ["spec", "template", rest @ ..] if !rest.is_empty() => (Schema::Pod, rest),
            _ => (Schema::Other, path),
        },
        "CronJob" => match path {
            ["spec", "jobTemplate", "spec", "template", rest @ ..] if !rest.is_empty() => {
                (Schema::Pod, rest)
            }
            _ => (Schema::Other, path),
        },
        "PodTemplate" => match path {
            ["template", rest @ ..] if !rest.is_empty() => (Schema::Pod, rest),
            _ => (Schema::Other, path),
        },
        _ => (Schema::Other, path),
    }
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge patch to `target`, an object of `kind` (e.g. `Pod`, `Deployment`).
pub fn strategic_merge_patch(
    kind: &str,
    target: &mut Value,
    patch: &Value,
) -> Result<(), PatchError> {
    let Value::Object(patch_map) = patch else {
        return Err(PatchError::NotAnObject);
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut path = Vec::new();
    if let Some(replaced) = merge_map(kind, &mut path, target, patch_map)? {
        *target = replaced;
    }
    Ok(())
}

/// Outcome of merging into one map value.
enum MapOutcome {
    Keep,
    Delete,
}

/// Merges `patch` into the map `target`. Returns `Some(value)` when the whole map must be replaced.
fn merge_map(
    kind: &str,
    path: &mut Vec<String>,
    target: &mut Value,
    patch: &Map<String, Value>,
) -> Result<Option<Value>, PatchError> {
    match merge_map_inner(kind, path, target, patch)? {
        MapOutcome::Keep => Ok(None),
        MapOutcome::Delete => Ok(Some(Value::Object(Map::new()))),
    }
}

fn merge_map_inner(
    kind: &str,
    path: &mut Vec<String>,
    target: &mut Value,
    patch: &Map<String, Value>,
) -> Result<MapOutcome, PatchError> {
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "replace" => {
            *target = strip_directives(&Value::Object(patch.clone()));
            return Ok(MapOutcome::Keep);
        }
        Some(Value::String(d)) if d == "delete" => return Ok(MapOutcome::Delete),
        Some(other) => {
            return Err(PatchError::BadDirective(format!(
                "Unknown patch type: {other}"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(MapOutcome::Keep);
    };
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(PatchError::BadDirective(
                "$retainKeys must be a list of field names".to_string(),
            ));
        };
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        target_map.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key == DIRECTIVE || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(remove) = value else {
                return Err(PatchError::BadDirective(format!(
                    "{key} must be a list of values"
                )));
            };
            if let Some(Value::Array(list)) = target_map.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        path.push(key.clone());
        let result = merge_value(kind, path, target_map, key, value);
        path.pop();
        result?;
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER)
            && let (Some(Value::Array(list)), Value::Array(order)) =
                (target_map.get_mut(field), order)
        {
            path.push(field.to_string());
            let strategy = list_strategy(kind, &path_refs(path));
            path.pop();
            apply_element_order(list, order, strategy);
        }
    }
    Ok(MapOutcome::Keep)
}

fn path_refs(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// Merges one patch field into `target_map[key]`.
fn merge_value(
    kind: &str,
    path: &mut Vec<String>,
    target_map: &mut Map<String, Value>,
    key: &str,
    value: &Value,
) -> Result<(), PatchError> {
    match value {
        Value::Object(patch_child) => {
            let slot = target_map
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let MapOutcome::Delete = merge_map_inner(kind, path, slot, patch_child)? {
                target_map.remove(key);
            }
        }
        Value::Array(patch_list) => {
            let strategy = list_strategy(kind, &path_refs(path));
            let slot = target_map
                .entry(key.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(list) = slot {
                merge_list(kind, path, list, patch_list, strategy)?;
            }
        }
        other => {
            target_map.insert(key.to_string(), other.clone());
        }
    }
    Ok(())
}

fn merge_list(
    kind: &str,
    path: &mut Vec<String>,
    list: &mut Vec<Value>,
    patch: &[Value],
    strategy: ListStrategy,
) -> Result<(), PatchError> {
    let replace_marker = patch.iter().any(|v| {
        v.get(DIRECTIVE).and_then(Value::as_str) == Some("replace")
            && v.as_object().is_some_and(|m| m.len() == 1)
    });
    if replace_marker {
        *list = patch
            .iter()
            .filter(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("replace"))
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    match strategy {
        ListStrategy::Replace => {
            *list = patch.iter().map(strip_directives).collect();
        }
        ListStrategy::MergeSet => {
            for v in patch {
                if !list.contains(v) {
                    list.push(v.clone());
                }
            }
        }
        ListStrategy::MergeByKey(merge_key) => {
            for item in patch {
                let Value::Object(item_map) = item else {
                    // Primitive elements in a keyed list: treat as a set member.
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                    continue;
                };
                let directive = item_map.get(DIRECTIVE).and_then(Value::as_str);
                let Some(key_value) = item_map.get(merge_key) else {
                    return Err(PatchError::MissingMergeKey {
                        element: item.to_string(),
                        key: merge_key.to_string(),
                    });
                };
                let position = list
                    .iter()
                    .position(|existing| existing.get(merge_key) == Some(key_value));
                match (directive, position) {
                    (Some("delete"), Some(i)) => {
                        list.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        if let Some(existing) = list.get_mut(i)
                            && let MapOutcome::Delete =
                                merge_map_inner(kind, path, existing, item_map)?
                        {
                            list.remove(i);
                        }
                    }
                    (_, None) => {
                        let mut fresh = Value::Object(Map::new());
                        if let MapOutcome::Keep = merge_map_inner(kind, path, &mut fresh, item_map)?
                        {
                            list.push(fresh);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reorders `list` so the elements named in `order` come first, in that order; the rest follow in
/// their current relative order.
fn apply_element_order(list: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let rank = |v: &Value| -> usize {
        order
            .iter()
            .position(|o| match (strategy, o) {
                (ListStrategy::MergeByKey(k), Value::Object(m)) => {
                    m.get(k).is_some_and(|want| v.get(k) == Some(want))
                }
                _ => o == v,
            })
            .unwrap_or(usize::MAX)
    };
    let mut ranked: Vec<(usize, Value)> = list.drain(..).map(|v| (rank(&v), v)).collect();
    ranked.sort_by_key(|(r, _)| *r);
    list.extend(ranked.into_iter().map(|(_, v)| v));
}

/// A copy of `v` with every `$`-directive key removed (for values inserted as a whole).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, target: Value, patch: Value) -> Value {
        let mut t = target;
        if let Err(e) = strategic_merge_patch(kind, &mut t, &patch) {
            panic!("patch failed: {e}");
        }
        t
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/json-patch+json"),
            Some(PatchKind::Json)
        );
        assert_eq!(
            PatchKind::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchKind::Strategic)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
        assert!(matches!(
            apply_patch(PatchKind::Apply, "Pod", &json!({}), b"{}"),
            Err(PatchError::ApplyUnsupported)
        ));
    }

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "list": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "list": [3]}));
        let mut t = json!({"a": "b"});
        merge_patch(&mut t, &json!({"a": {"b": "c"}}));
        assert_eq!(t, json!({"a": {"b": "c"}}));
        let mut t = json!([1]);
        merge_patch(&mut t, &json!({"a": 1}));
        assert_eq!(t, json!({"a": 1}));
    }

    #[test]
    fn json_patch_operations() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2, 3]});
        let ops = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "remove", "path": "/list/0"},
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "copy", "from": "/metadata/labels/b", "path": "/copied"},
            {"op": "move", "from": "/copied", "path": "/moved"},
            {"op": "add", "path": "/metadata/labels/x~1y", "value": "slash"}
        ]);
        if let Err(e) = json_patch(&mut t, &ops) {
            panic!("{e}");
        }
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"a": "x", "b": "2", "x/y": "slash"}}, "list": [2, 3, 4], "moved": "2"})
        );
    }

    #[test]
    fn json_patch_failures_leave_the_target_unchanged() {
        let original = json!({"a": 1});
        let mut t = original.clone();
        let err = json_patch(
            &mut t,
            &json!([{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 2}]),
        );
        assert!(
            matches!(err, Err(PatchError::JsonPatchFailed(ref m)) if m.contains("testing value /a failed"))
        );
        assert_eq!(t, original);
        let err = json_patch(&mut t, &json!([{"op": "remove", "path": "/zz"}]));
        assert!(matches!(&err, Err(e) if e.status_code() == 422));
        let err = json_patch(
            &mut t,
            &json!([{"op": "replace", "path": "/zz", "value": 1}]),
        );
        assert!(matches!(err, Err(PatchError::JsonPatchFailed(_))));
        let err = json_patch(&mut t, &json!([{"op": "add", "path": "/x/y", "value": 1}]));
        assert!(matches!(err, Err(PatchError::JsonPatchFailed(_))));
        let err = json_patch(&mut t, &json!({"op": "add"}));
        assert!(matches!(&err, Err(e) if e.status_code() == 400));
        let err = json_patch(&mut t, &json!([{"op": "frob", "path": "/a"}]));
        assert!(matches!(err, Err(PatchError::MalformedJsonPatch(_))));
        let err = json_patch(
            &mut t,
            &json!([{"op": "move", "from": "/a", "path": "/a/b"}]),
        );
        assert!(matches!(err, Err(PatchError::JsonPatchFailed(_))));
        let mut arr = json!({"l": [1]});
        let err = json_patch(
            &mut arr,
            &json!([{"op": "add", "path": "/l/5", "value": 1}]),
        );
        assert!(matches!(err, Err(PatchError::JsonPatchFailed(_))));
    }

    #[test]
    fn decode_errors_are_bad_requests() {
        let err = apply_patch(PatchKind::Merge, "Pod", &json!({}), b"{not json");
        assert!(matches!(&err, Err(e) if e.status_code() == 400));
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"],
                         "ownerReferences": [{"uid": "u1", "name": "rs"}]},
            "spec": {
                "containers": [
                    {"name": "app", "image": "app:1",
                     "ports": [{"containerPort": 80, "name": "http"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "args": ["--a"]},
                    {"name": "side", "image": "side:1"}
                ],
                "volumes": [{"name": "v1", "emptyDir": {}}],
                "tolerations": [{"key": "t1"}]
            },
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        })
    }

    #[test]
    fn containers_merge_by_name_and_nested_lists_by_their_keys() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [
                {"name": "app", "image": "app:2",
                 "ports": [{"containerPort": 443, "name": "https"}],
                 "env": [{"name": "B", "value": "changed"}],
                 "args": ["--b"]}
            ]}}),
        );
        let app = &out["spec"]["containers"][0];
        assert_eq!(app["image"], "app:2");
        assert_eq!(app["ports"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            app["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "changed"}])
        );
        assert_eq!(
            app["args"],
            json!(["--b"]),
            "lists without a merge key are replaced"
        );
        assert_eq!(
            out["spec"]["containers"][1]["name"], "side",
            "other containers are kept"
        );
    }

    #[test]
    fn new_keyed_elements_are_appended_and_delete_directive_removes() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}, {"name": "new", "image": "n"}],
                            "volumes": [{"name": "v2", "emptyDir": {}}]}}),
        );
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["app", "new"]);
        assert_eq!(out["spec"]["volumes"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn unkeyed_lists_replace_and_null_deletes() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"tolerations": [{"key": "t2"}]}, "metadata": {"labels": {"a": null, "b": "2"}}}),
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "t2"}]));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
    }

    #[test]
    fn metadata_lists() {
        let out = smp(
            "ConfigMap",
            json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "1", "name": "x"}]}}),
            json!({"metadata": {"finalizers": ["c", "a"], "ownerReferences": [{"uid": "2", "name": "y"}],
                                "$deleteFromPrimitiveList/finalizers": ["b"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(
            out["metadata"]["ownerReferences"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn conditions_merge_by_type() {
        let out = smp(
            "Pod",
            pod(),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
        );
        let node = smp(
            "Node",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(
            node["status"]["conditions"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(node["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn service_ports_merge_by_port() {
        let out = smp(
            "Service",
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
        );
    }

    #[test]
    fn workload_templates_use_pod_rules() {
        let deploy = json!({"spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let out = smp(
            "Deployment",
            deploy.clone(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:1"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["image"],
            "b:2"
        );
        // Unknown kinds replace lists.
        let out = smp(
            "Widget",
            deploy,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn replace_directives() {
        let out = smp(
            "Pod",
            pod(),
            json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "s"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "solo", "image": "s"}])
        );
        let out = smp("Pod", pod(), json!({"status": {"$patch": "delete"}}));
        assert!(out.get("status").is_none());
        let mut t = pod();
        let err = strategic_merge_patch("Pod", &mut t, &json!({"spec": {"$patch": "explode"}}));
        assert!(matches!(err, Err(PatchError::BadDirective(_))));
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let out = smp(
            "Pod",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}),
        );
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "v", "hostPath": {"path": "/x"}}])
        );
    }

    #[test]
    fn set_element_order_reorders_named_elements() {
        let out = smp(
            "Pod",
            pod(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                            "containers": [{"name": "side", "image": "side:2"}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
        assert_eq!(out["spec"]["containers"][0]["image"], "side:2");
        assert_eq!(out["spec"]["containers"][1]["name"], "app");
    }

    #[test]
    fn missing_merge_key_is_an_error() {
        let mut t = pod();
        let err = strategic_merge_patch(
            "Pod",
            &mut t,
            &json!({"spec": {"containers": [{"image": "x"}]}}),
        );
        assert!(matches!(&err, Err(PatchError::MissingMergeKey { key, .. }) if key == "name"));
        assert!(matches!(&err, Err(e) if e.status_code() == 422));
        let err = strategic_merge_patch("Pod", &mut t, &json!([1]));
        assert!(matches!(err, Err(PatchError::NotAnObject)));
    }

    #[test]
    fn last_applied_annotation_round_trip() {
        // What `kubectl apply` sends on a second apply: a changed label, a removed annotation, a new image.
        let current = json!({"metadata": {"name": "p", "labels": {"app": "a", "tier": "x"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "n"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let out = match apply_patch(
            PatchKind::Strategic,
            "Pod",
            &current,
            br#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":1}","note":null},"labels":{"tier":null}},"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"image":"i:2","name":"c"}]}}"#,
        ) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(out["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"})
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "i:2"}])
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c$]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map("[a-c]{1,2}", any_json(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn merge_patch_is_idempotent(target in any_json(), patch in any_json()) {
            let mut once = target.clone();
            merge_patch(&mut once, &patch);
            let mut twice = once.clone();
            merge_patch(&mut twice, &patch);
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn merge_patch_result_has_no_patch_nulls(target in object(), patch in object()) {
            let mut out = target.clone();
            merge_patch(&mut out, &patch);
            if let (Value::Object(out), Value::Object(p)) = (&out, &patch) {
                for (k, v) in p {
                    if v.is_null() {
                        prop_assert!(!out.contains_key(k));
                    }
                }
            }
        }

        #[test]
        fn json_patch_never_panics_and_is_atomic(doc in any_json(), ops in proptest::collection::vec((0..7usize, "(/[a-c0-9-]{0,2}){0,3}", "(/[a-c0-9-]{0,2}){0,3}", any_json()), 0..5)) {
            let names = ["add", "remove", "replace", "move", "copy", "test", "bogus"];
            let ops: Vec<Value> = ops
                .into_iter()
                .map(|(op, path, from, value)| json!({"op": names[op], "path": path, "from": from, "value": value}))
                .collect();
            let mut out = doc.clone();
            if json_patch(&mut out, &Value::Array(ops)).is_err() {
                prop_assert_eq!(out, doc, "a failed patch leaves the document unchanged");
            }
        }

        #[test]
        fn strategic_merge_never_panics(kind in prop_oneof![Just("Pod"), Just("Deployment"), Just("Widget")], target in any_json(), patch in any_json()) {
            let mut out = target;
            let _ = strategic_merge_patch(kind, &mut out, &patch);
        }

        #[test]
        fn keyed_lists_hold_each_key_once(
            existing in proptest::collection::btree_set("[a-d]", 0..4),
            patched in proptest::collection::vec("[a-f]", 0..5),
        ) {
            let containers: Vec<Value> = existing.iter().map(|n| json!({"name": n, "image": "old"})).collect();
            let patch_list: Vec<Value> = patched.iter().map(|n| json!({"name": n, "image": "new"})).collect();
            let mut pod = json!({"spec": {"containers": containers}});
            let result = strategic_merge_patch("Pod", &mut pod, &json!({"spec": {"containers": patch_list}}));
            prop_assert!(result.is_ok());
            let names: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            let mut expected: Vec<&str> = existing.iter().map(String::as_str).collect();
            for n in &patched {
                if !expected.contains(&n.as_str()) {
                    expected.push(n);
                }
            }
            prop_assert_eq!(&names, &expected);
            for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or("");
                let want = if patched.iter().any(|p| p == name) { "new" } else { "old" };
                prop_assert_eq!(c["image"].as_str(), Some(want));
            }
        }
    }
}
