//! Writes: create (POST), update (PUT, also `/status` and `namespaces/finalize`), patch, `pods/binding`.

use std::sync::Arc;

use http::{Response, StatusCode};
use rand::Rng;
use serde_json::{Value, json};

use super::strategy::{self, WriteScope, ensure_object};
use super::{
    ApiRequest, Body, bytes_response, check_type_meta, object_rv, parse_body, request_namespace,
    str_at,
};
use crate::patch::{PatchError, PatchKind};
use crate::registry::storage_key;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::{ApiError, Cause};
use crate::store::{ObjectKey, StoreError, StoredObject};
use crate::validation;

/// Retries of an update whose object changed underneath it (unconditional updates and patches only).
const MAX_UPDATE_ATTEMPTS: usize = 16;
/// Attempts at a free generated name (the real server retries a few times too).
const GENERATE_NAME_ATTEMPTS: usize = 8;
/// Alphabet of generated name suffixes (no vowels, no confusable characters), as the real server uses.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Five random characters of the generated-name alphabet.
pub(crate) fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// Converts A2's field errors into a 422.
pub(crate) fn invalid_from(
    rt: &ResourceType,
    name: &str,
    errs: &[validation::FieldError],
) -> ApiError {
    let causes = errs
        .iter()
        .map(|e| Cause {
            reason: e.error_type.reason().to_string(),
            message: e.body(),
            field: e.field.clone(),
        })
        .collect();
    ApiError::invalid(rt, name, causes)
}

/// POST on a collection.
pub(super) fn create(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let mut obj = parse_body(req)?;
    check_type_meta(rt, &obj)?;
    let ns = request_namespace(rt, req);
    let body_ns = str_at(&obj, "/metadata/namespace").to_string();
    let meta = ensure_object(
        ensure_object(&mut obj)
            .entry("metadata")
            .or_insert_with(|| json!({})),
    );
    if rt.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    if req.dry_run() {
        let value = prepare_new(state, rt, obj, true)?;
        return Ok(super::json_response(StatusCode::CREATED, &value));
    }
    let stored = create_object(state, rt, obj)?;
    Ok(bytes_response(StatusCode::CREATED, stored.json))
}

/// Validates and fills a new object (name, system metadata, type rules); with `dry_run` nothing is allocated.
fn prepare_new(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = str_at(&obj, "/metadata/name").to_string();
    let generate = str_at(&obj, "/metadata/generateName").to_string();
    if name.is_empty() && !generate.is_empty() {
        let meta = ensure_object(
            ensure_object(&mut obj)
                .entry("metadata")
                .or_insert_with(|| json!({})),
        );
        meta.insert(
            "name".into(),
            json!(format!("{generate}{}", random_suffix())),
        );
    }
    let name = str_at(&obj, "/metadata/name").to_string();
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let plural = if rt.custom {
        "customresources"
    } else {
        rt.plural.as_str()
    };
    let errs = validation::validate_metadata(plural, &meta);
    if !errs.is_empty() {
        return Err(invalid_from(rt, &name, &errs));
    }
    if object_rv(&obj).ok().flatten().is_some() {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if rt.namespaced {
        let ns = str_at(&obj, "/metadata/namespace").to_string();
        let ns_obj = state
            .store
            .get("/namespaces", &ObjectKey::new("", &ns))
            .ok_or_else(|| ApiError::namespace_not_found(&ns))?;
        if ns_obj
            .value()
            .pointer("/metadata/deletionTimestamp")
            .is_some()
        {
            let mut err = ApiError::forbidden(
                rt,
                &name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            err.details.causes.push(Cause {
                reason: "NamespaceTerminating".into(),
                message: format!("namespace {ns} is being terminated"),
                field: "metadata.namespace".into(),
            });
            return Err(err);
        }
    }
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        super::crd::validate(state, rt, &obj)?;
    }
    if !rt.custom && rt.group.is_empty() && rt.plural == "pods" {
        super::admission::admit_pod(state, rt, &mut obj)?;
    }
    if rt.custom {
        super::crd::prune(state, rt, &mut obj);
    }
    let causes = super::validate::validate(rt, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            rt,
            str_at(&obj, "/metadata/name"),
            causes,
        ));
    }
    if dry_run {
        let is_service = !rt.custom && rt.group.is_empty() && rt.plural == "services";
        if !is_service {
            strategy::prepare_create(state, rt, &mut obj)?;
        }
        if rt.custom {
            super::crd::validate_object(state, rt, &obj)?;
        }
        return Ok(obj);
    }
    if rt.custom {
        // Validate before allocating anything; custom resources allocate nothing in prepare_create.
        let mut preview = obj.clone();
        strategy::prepare_create(state, rt, &mut preview)?;
        super::crd::validate_object(state, rt, &preview)?;
        return Ok(preview);
    }
    strategy::prepare_create(state, rt, &mut obj)?;
    Ok(obj)
}

/// Creates an object as a POST would (validation, namespace checks, type rules, generateName retries).
pub fn create_object(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    obj: Value,
) -> Result<StoredObject, ApiError> {
    let generated = str_at(&obj, "/metadata/name").is_empty()
        && !str_at(&obj, "/metadata/generateName").is_empty();
    let attempts = if generated { GENERATE_NAME_ATTEMPTS } else { 1 };
    let mut last_err = ApiError::internal("no create attempt made");
    for _ in 0..attempts {
        let mut new = prepare_new(state, rt, obj.clone(), false)?;
        let name = str_at(&new, "/metadata/name").to_string();
        let ns = str_at(&new, "/metadata/namespace").to_string();
        match state
            .store
            .create(&storage_key(rt), ObjectKey::new(&ns, &name), &mut new)
        {
            Ok(stored) => {
                after_create(state, rt, &new);
                return Ok(stored);
            }
            Err(e) => {
                if !rt.custom && rt.group.is_empty() && rt.plural == "services" {
                    strategy::release_service(state, &new);
                }
                last_err = match e {
                    StoreError::AlreadyExists => ApiError::already_exists(rt, &name),
                    other => ApiError::internal(other.to_string()),
                };
            }
        }
    }
    Err(last_err)
}

fn after_create(state: &Arc<ApiState>, rt: &ResourceType, obj: &Value) {
    if rt.custom {
        return;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            super::crd::establish(state, rt, obj)
        }
        ("", "namespaces") => {
            super::admission::populate_namespace(state, str_at(obj, "/metadata/name"))
        }
        _ => {}
    }
}

/// Types whose PUT creates a missing object (the real strategies' `AllowCreateOnUpdate`).
fn allows_create_on_update(rt: &ResourceType) -> bool {
    !rt.custom
        && matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("", "endpoints" | "events" | "limitranges")
                | ("events.k8s.io", "events")
                | ("coordination.k8s.io", "leases")
        )
}

fn with_namespace(rt: &ResourceType, mut obj: Value, ns: &str) -> Value {
    if rt.namespaced {
        let meta = ensure_object(
            ensure_object(&mut obj)
                .entry("metadata")
                .or_insert_with(|| json!({})),
        );
        meta.insert("namespace".into(), json!(ns));
    }
    obj
}

/// A changed CRD changes the served types (versions, names, printer columns).
fn after_update(state: &Arc<ApiState>, rt: &ResourceType, key: &ObjectKey) {
    if rt.custom || rt.group != "apiextensions.k8s.io" || rt.plural != "customresourcedefinitions" {
        return;
    }
    if let Some(current) = state.store.get(&storage_key(rt), key) {
        super::crd::establish(state, rt, &current.value());
    }
}

fn scope_of(sub: Option<&str>) -> WriteScope {
    match sub {
        Some("status") => WriteScope::Status,
        Some("finalize") => WriteScope::Finalize,
        _ => WriteScope::Main,
    }
}

/// PUT on an object (or its `/status` / `/finalize`).
pub(super) fn update(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
    sub: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let obj = parse_body(req)?;
    check_type_meta(rt, &obj)?;
    let body_name = str_at(&obj, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let ns = request_namespace(rt, req);
    let body_ns = str_at(&obj, "/metadata/namespace");
    if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let key = ObjectKey::new(&ns, name);
    if state.store.get(&storage_key(rt), &key).is_none() && allows_create_on_update(rt) {
        let stored = create_object(state, rt, with_namespace(rt, obj, &ns))?;
        return Ok(bytes_response(StatusCode::CREATED, stored.json));
    }
    let stored = update_impl(state, rt, &key, scope_of(sub), req.dry_run(), |_| {
        Ok(obj.clone())
    })?;
    after_update(state, rt, &key);
    Ok(bytes_response(StatusCode::OK, stored.json))
}

/// PATCH on an object (or its `/status`).
pub(super) fn patch(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
    sub: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let content_type = req.content_type.as_deref().unwrap_or("");
    let kind = match PatchKind::from_content_type(content_type) {
        Some(PatchKind::Strategic) if rt.custom => None,
        other => other,
    };
    let Some(kind) = kind else {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
            if rt.custom {
                ""
            } else {
                ", application/strategic-merge-patch+json"
            }
        )));
    };
    if kind == PatchKind::Apply {
        return Err(ApiError::unsupported_media_type(
            PatchError::ApplyUnsupported.to_string(),
        ));
    }
    let key = ObjectKey::new(&request_namespace(rt, req), name);
    let stored = update_impl(state, rt, &key, scope_of(sub), req.dry_run(), |old| {
        let patched = crate::patch::apply_patch(kind, &rt.kind, old, &req.body)
            .map_err(|e| patch_error(rt, name, &e))?;
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "couldn't get version/kind; json parse error: the patched document is not a JSON object",
            ));
        }
        Ok(patched)
    })?;
    after_update(state, rt, &key);
    Ok(bytes_response(StatusCode::OK, stored.json))
}

/// POST `pods/{name}/binding`: assigns the pod to a node.
pub(super) fn bind(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let binding = parse_body(req)?;
    let node = str_at(&binding, "/target/name").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            rt,
            name,
            vec![ApiError::required_cause("target.name", "")],
        ));
    }
    let key = ObjectKey::new(&request_namespace(rt, req), name);
    let want_uid = str_at(&binding, "/metadata/uid").to_string();
    let want_rv = str_at(&binding, "/metadata/resourceVersion").to_string();
    // The Binding's uid and resourceVersion are preconditions on the pod (the real `assignPod`).
    if !want_uid.is_empty() || !want_rv.is_empty() {
        let current = state
            .store
            .get(&storage_key(rt), &key)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let uid = str_at(&current.value(), "/metadata/uid").to_string();
        if !want_uid.is_empty() && want_uid != uid {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want_uid}, UID in object meta: {uid}"
                ),
            ));
        }
        if !want_rv.is_empty() && want_rv != current.rv.to_string() {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want_rv}, ResourceVersion in object meta: {}",
                    current.rv
                ),
            ));
        }
    }
    bind_pod(state, rt, &key, &node)?;
    Ok(super::json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Sets `spec.nodeName` and the `PodScheduled` condition, refusing pods already bound or being deleted.
pub fn bind_pod(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    key: &ObjectKey,
    node: &str,
) -> Result<StoredObject, ApiError> {
    let binding_rt = ResourceType {
        plural: "pods/binding".into(),
        ..rt.clone()
    };
    update_with(state, rt, key, WriteScope::System, |old| {
        let current = str_at(old, "/spec/nodeName");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                &binding_rt,
                &key.name,
                &format!("pod {} is already assigned to node \"{current}\"", key.name),
            ));
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                &binding_rt,
                &key.name,
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    key.name
                ),
            ));
        }
        let mut new = old.clone();
        ensure_object(
            ensure_object(&mut new)
                .entry("spec")
                .or_insert_with(|| json!({})),
        )
        .insert("nodeName".into(), json!(node));
        set_condition(&mut new, "PodScheduled", "True", None);
        Ok(new)
    })
}

/// Sets (or replaces) a `status.conditions[type=...]` entry.
pub(crate) fn set_condition(obj: &mut Value, cond_type: &str, status: &str, reason: Option<&str>) {
    let now = super::now_rfc3339();
    let root = ensure_object(obj);
    let st = ensure_object(root.entry("status").or_insert_with(|| json!({})));
    let conditions = st.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let mut cond = json!({"type": cond_type, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        cond["reason"] = json!(r);
    }
    if let Some(list) = conditions.as_array_mut() {
        match list
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(cond_type))
        {
            Some(existing) => {
                if existing.get("status").and_then(Value::as_str) != Some(status) {
                    *existing = cond;
                }
            }
            None => list.push(cond),
        }
    }
}

/// Whether an update leaves an object that must now be deleted (being deleted, no finalizers left, no
/// grace period pending), like the real store's `ShouldDeleteDuringUpdate`.
fn should_delete_during_update(rt: &ResourceType, obj: &Value) -> bool {
    if obj.pointer("/metadata/deletionTimestamp").is_none() {
        return false;
    }
    let no_finalizers = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    let no_grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        == 0;
    let ns_finalized = !(rt.group.is_empty() && rt.plural == "namespaces")
        || obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    no_finalizers && no_grace && ns_finalized
}

/// Read-modify-write of one object, like the real `GuaranteedUpdate`: `f` computes the desired object from
/// the current one; a resourceVersion in the result must match the current one (else 409); an update that
/// changes nothing writes nothing; an object left without finalizers while being deleted is deleted.
pub fn update_with(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    key: &ObjectKey,
    scope: WriteScope,
    f: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<StoredObject, ApiError> {
    update_impl(state, rt, key, scope, false, f)
}

/// [`update_with`], optionally as a dry run (`dryRun=All`: everything but the write; the answer is the
/// object as it would be stored, with the current resourceVersion).
fn update_impl(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    key: &ObjectKey,
    scope: WriteScope,
    dry_run: bool,
    f: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<StoredObject, ApiError> {
    let resource = storage_key(rt);
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let current = state
            .store
            .get(&resource, key)
            .ok_or_else(|| ApiError::not_found(rt, &key.name))?;
        let old = current.value();
        let mut new = f(&old)?;
        let client_rv = object_rv(&new)?;
        if client_rv.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict_modified(rt, &key.name));
        }
        let meta = ensure_object(
            ensure_object(&mut new)
                .entry("metadata")
                .or_insert_with(|| json!({})),
        );
        meta.insert("name".into(), json!(key.name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(key.namespace));
        } else {
            meta.remove("namespace");
        }
        meta.insert("resourceVersion".into(), json!(current.rv.to_string()));
        let root = ensure_object(&mut new);
        root.insert("apiVersion".into(), json!(rt.api_version()));
        root.insert("kind".into(), json!(rt.kind));
        if rt.custom {
            super::crd::prune(state, rt, &mut new);
        }
        if scope != WriteScope::System {
            strategy::prepare_update(rt, scope, &old, &mut new)?;
        }
        if rt.custom {
            super::crd::validate_object(state, rt, &new)?;
        }
        if scope == WriteScope::Main
            && !rt.custom
            && rt.group == "apiextensions.k8s.io"
            && rt.plural == "customresourcedefinitions"
        {
            super::crd::validate(state, rt, &new)?;
        }
        if scope == WriteScope::Main {
            let causes = super::validate::validate(rt, &new);
            if !causes.is_empty() {
                return Err(ApiError::invalid(rt, &key.name, causes));
            }
        }
        let plural = if rt.custom {
            "customresources"
        } else {
            rt.plural.as_str()
        };
        let errs =
            validation::validate_metadata(plural, new.get("metadata").unwrap_or(&Value::Null));
        if !errs.is_empty() {
            return Err(invalid_from(rt, &key.name, &errs));
        }
        if new == old {
            return Ok(current);
        }
        if dry_run {
            let json = bytes::Bytes::from(serde_json::to_vec(&new).unwrap_or_default());
            return Ok(StoredObject {
                json,
                labels: current.labels.clone(),
                rv: current.rv,
            });
        }
        let result = if should_delete_during_update(rt, &new) {
            state
                .store
                .delete(&resource, key.clone(), current.rv)
                .inspect(|gone| {
                    super::delete::after_delete(state, rt, &gone.value());
                })
        } else {
            state
                .store
                .update(&resource, key.clone(), current.rv, &mut new)
        };
        match result {
            Ok(stored) => return Ok(stored),
            Err(StoreError::Conflict { .. }) if client_rv.is_none() => continue,
            Err(StoreError::Conflict { .. }) => {
                return Err(ApiError::conflict_modified(rt, &key.name));
            }
            Err(StoreError::NotFound) => return Err(ApiError::not_found(rt, &key.name)),
            Err(other) => return Err(ApiError::internal(other.to_string())),
        }
    }
    Err(ApiError::conflict_modified(rt, &key.name))
}

fn patch_error(rt: &ResourceType, name: &str, err: &PatchError) -> ApiError {
    match err.status_code() {
        415 => ApiError::unsupported_media_type(err.to_string()),
        422 => ApiError::invalid(
            rt,
            name,
            vec![Cause {
                reason: String::new(),
                message: err.to_string(),
                field: String::new(),
            }],
        ),
        _ => ApiError::bad_request(err.to_string()),
    }
}
