//! DELETE of one object (finalizers, graceful pod deletion, preconditions) and of a collection.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::strategy::ensure_object;
use super::{ApiRequest, Body, bytes_response, json_response, request_namespace, str_at};
use crate::filter::Filter;
use crate::registry::storage_key;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::{ApiError, success_deleted};
use crate::store::{ObjectKey, StoreError, StoredObject};

/// Attempts of a delete whose object changed underneath it.
const MAX_DELETE_ATTEMPTS: usize = 16;
/// Namespaces the real server refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// `DeleteOptions` (body or query parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `propagationPolicy` (accepted; there is no garbage collector, dependents are never deleted).
    pub propagation_policy: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOptions {
    fn from_request(req: &ApiRequest) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions::default();
        if !req.body.iter().all(u8::is_ascii_whitespace) {
            let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::bad_request(format!("couldn't decode DeleteOptions: {e}"))
            })?;
            opts.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
            opts.precondition_uid = body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            opts.precondition_rv = body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            opts.propagation_policy = body
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string);
            opts.dry_run = body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("All")));
        }
        if let Some(g) = req.param("gracePeriodSeconds") {
            opts.grace_period_seconds =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}"))
                })?);
        }
        if let Some(p) = req.param("propagationPolicy") {
            opts.propagation_policy = Some(p.to_string());
        }
        if req.dry_run() {
            opts.dry_run = true;
        }
        Ok(opts)
    }
}

/// What a delete did.
#[derive(Clone, Debug)]
pub enum DeleteOutcome {
    /// The object is gone; its last state (with the deletion's resourceVersion).
    Deleted(StoredObject),
    /// The object is being deleted (finalizers or a grace period pending); its current state.
    Pending(StoredObject),
}

/// Types whose DELETE answers with the deleted object rather than a `Status` (the real registries'
/// `ReturnDeletedObject`).
fn returns_deleted_object(rt: &ResourceType) -> bool {
    !rt.custom
        && matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("", "pods" | "services" | "namespaces" | "serviceaccounts")
                | ("storage.k8s.io", "storageclasses")
        )
}

/// DELETE one object.
pub(super) fn delete(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let opts = DeleteOptions::from_request(req)?;
    let key = ObjectKey::new(&request_namespace(rt, req), name);
    match delete_object(state, rt, &key, &opts)? {
        DeleteOutcome::Pending(obj) => Ok(bytes_response(StatusCode::OK, obj.json)),
        DeleteOutcome::Deleted(obj) if returns_deleted_object(rt) => {
            Ok(bytes_response(StatusCode::OK, obj.json))
        }
        DeleteOutcome::Deleted(obj) => {
            let uid = str_at(&obj.value(), "/metadata/uid").to_string();
            Ok(json_response(
                StatusCode::OK,
                &success_deleted(rt, name, &uid),
            ))
        }
    }
}

/// DELETE on a collection: deletes every object the selectors match; answers the list of what was deleted
/// (or is now being deleted).
pub(super) fn delete_collection(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    if !rt.custom && rt.group.is_empty() && rt.plural == "namespaces" {
        return Err(ApiError::method_not_allowed());
    }
    let opts = DeleteOptions::from_request(req)?;
    let namespace = req.path.namespace.as_deref().filter(|_| rt.namespaced);
    let filter = Filter::new(
        rt,
        namespace,
        req.param("labelSelector"),
        req.param("fieldSelector"),
    )?;
    let snapshot = state.store.list(&storage_key(rt), namespace);
    let mut items = Vec::new();
    for (key, obj) in snapshot.items.iter().filter(|(k, o)| filter.matches(k, o)) {
        match delete_object(state, rt, key, &opts) {
            Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => items.push(o.value()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        let _ = obj;
    }
    let list = json!({
        "kind": rt.list_kind,
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": state.store.revision().to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list))
}

fn precondition_failed(
    rt: &ResourceType,
    name: &str,
    what: &str,
    wanted: &str,
    have: &str,
) -> ApiError {
    let field = if what == "UID" {
        "UID in object meta"
    } else {
        "ResourceVersion in object meta"
    };
    ApiError::conflict(
        rt,
        name,
        &format!("Precondition failed: {what} in precondition: {wanted}, {field}: {have}"),
    )
}

/// Deletes one object as a DELETE request would: preconditions, then either immediate removal or, with
/// finalizers or a pending pod grace period, a `deletionTimestamp`.
pub fn delete_object(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    key: &ObjectKey,
    opts: &DeleteOptions,
) -> Result<DeleteOutcome, ApiError> {
    let is_namespace = !rt.custom && rt.group.is_empty() && rt.plural == "namespaces";
    let is_pod = !rt.custom && rt.group.is_empty() && rt.plural == "pods";
    if is_namespace && IMMORTAL_NAMESPACES.contains(&key.name.as_str()) {
        return Err(ApiError::forbidden(
            rt,
            &key.name,
            "this namespace may not be deleted",
        ));
    }
    let resource = storage_key(rt);
    for _ in 0..MAX_DELETE_ATTEMPTS {
        let current = state
            .store
            .get(&resource, key)
            .ok_or_else(|| ApiError::not_found(rt, &key.name))?;
        let old = current.value();
        let uid = str_at(&old, "/metadata/uid").to_string();
        if let Some(want) = &opts.precondition_uid
            && *want != uid
        {
            return Err(precondition_failed(rt, &key.name, "UID", want, &uid));
        }
        if let Some(want) = &opts.precondition_rv
            && *want != current.rv.to_string()
        {
            return Err(precondition_failed(
                rt,
                &key.name,
                "ResourceVersion",
                want,
                &current.rv.to_string(),
            ));
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
            || (is_namespace
                && old
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty()));
        let grace = if is_pod { pod_grace(&old, opts) } else { 0 };
        let being_deleted = old.pointer("/metadata/deletionTimestamp").is_some();
        if opts.dry_run {
            return Ok(if has_finalizers || grace > 0 {
                DeleteOutcome::Pending(current)
            } else {
                DeleteOutcome::Deleted(current)
            });
        }
        let result = if !has_finalizers && grace == 0 {
            state
                .store
                .delete(&resource, key.clone(), current.rv)
                .map(DeleteOutcome::Deleted)
        } else if being_deleted {
            let existing = old
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if !is_pod || grace >= existing {
                return Ok(DeleteOutcome::Pending(current));
            }
            let mut new = old.clone();
            mark_deleting(&mut new, grace, false, is_namespace);
            state
                .store
                .update(&resource, key.clone(), current.rv, &mut new)
                .map(DeleteOutcome::Pending)
        } else {
            let mut new = old.clone();
            mark_deleting(&mut new, grace, rt.has_generation, is_namespace);
            state
                .store
                .update(&resource, key.clone(), current.rv, &mut new)
                .map(DeleteOutcome::Pending)
        };
        match result {
            Ok(outcome) => {
                match &outcome {
                    DeleteOutcome::Deleted(gone) => after_delete(state, rt, &gone.value()),
                    DeleteOutcome::Pending(_) if is_namespace && !being_deleted => {
                        crate::namespace_lifecycle::spawn(state, &key.name);
                    }
                    DeleteOutcome::Pending(_) => {}
                }
                return Ok(outcome);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound) => return Err(ApiError::not_found(rt, &key.name)),
            Err(other) => return Err(ApiError::internal(other.to_string())),
        }
    }
    Err(ApiError::conflict_modified(rt, &key.name))
}

/// Grace period of a pod deletion: 0 for pods not on a node or already finished; else the request's, else
/// the pod's `terminationGracePeriodSeconds`, else 30.
fn pod_grace(pod: &Value, opts: &DeleteOptions) -> i64 {
    let unbound = str_at(pod, "/spec/nodeName").is_empty();
    let finished = matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed");
    if unbound || finished {
        return 0;
    }
    opts.grace_period_seconds
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

fn mark_deleting(obj: &mut Value, grace: i64, bump_generation: bool, is_namespace: bool) {
    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let meta = ensure_object(
        ensure_object(obj)
            .entry("metadata")
            .or_insert_with(|| json!({})),
    );
    meta.insert(
        "deletionTimestamp".into(),
        json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    );
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    if bump_generation && let Some(g) = generation {
        meta.insert("generation".into(), json!(g + 1));
    }
    if is_namespace {
        let status = ensure_object(
            ensure_object(obj)
                .entry("status")
                .or_insert_with(|| json!({})),
        );
        status.insert("phase".into(), json!("Terminating"));
    }
}

/// Cleanup after an object is gone: service allocations, a CRD's types and custom resources.
pub(crate) fn after_delete(state: &Arc<ApiState>, rt: &ResourceType, obj: &Value) {
    if rt.custom {
        return;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "services") => super::strategy::release_service(state, obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => super::crd::remove(state, obj),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_grace_rules() {
        let opts = DeleteOptions::default();
        assert_eq!(
            pod_grace(&json!({"spec": {}}), &opts),
            0,
            "unbound pods go at once"
        );
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 5}, "status": {"phase": "Running"}});
        assert_eq!(pod_grace(&bound, &opts), 5);
        let zero = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        assert_eq!(pod_grace(&bound, &zero), 0);
        let done = json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace(&done, &opts), 0);
        assert_eq!(pod_grace(&json!({"spec": {"nodeName": "n"}}), &opts), 30);
    }
}
