//! Per-type rules applied on create and update, like the real registries' strategies: system metadata,
//! status reset on create, status-subresource rules, generation, defaults for pods/services/deployments,
//! namespace finalizers, service IP and port allocation.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::now_rfc3339;
use crate::resource_type::ResourceType;
use crate::services::AllocError;
use crate::state::ApiState;
use crate::status::{ApiError, Cause};

fn is(rt: &ResourceType, group: &str, plural: &str) -> bool {
    !rt.custom && rt.group == group && rt.plural == plural
}

/// A string list as Go's `%#v` prints it: `[]string{"a", "b"}`.
pub(crate) fn go_string_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| crate::validation::go_quote(i))
        .collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Makes `v` a JSON object (replacing anything else) and returns its map.
pub(crate) fn ensure_object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("value was just made an object"),
    }
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    ensure_object(
        ensure_object(obj)
            .entry("metadata")
            .or_insert_with(|| json!({})),
    )
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), value);
    }
}

/// System metadata and the create-time status rules. Called once the name and namespace are final.
pub(super) fn prepare_create(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("managedFields");
    meta.remove("selfLink");
    if rt.has_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if rt.has_status && !is(rt, "", "nodes") {
        if rt.custom {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        } else {
            obj["status"] = json!({});
        }
    }
    if is(rt, "", "pods") {
        default_pod(obj);
    } else if is(rt, "", "namespaces") {
        let name = super::str_at(obj, "/metadata/name").to_string();
        let meta = meta_mut(obj);
        if !meta.get("labels").is_some_and(Value::is_object) {
            meta.insert("labels".into(), json!({}));
        }
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    } else if is(rt, "", "persistentvolumeclaims") || is(rt, "", "persistentvolumes") {
        obj["status"] = json!({"phase": "Pending"});
    } else if is(rt, "", "services") {
        default_service(obj);
        obj["status"] = json!({"loadBalancer": {}});
        allocate_service(state, rt, obj)?;
    } else if is(rt, "apps", "deployments") {
        default_deployment(obj);
    }
    Ok(())
}

fn default_pod(obj: &mut Value) {
    default_pod_spec(obj);
    let qos = qos_class(obj);
    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// The API defaults of a pod spec (applied on create and on update, like the real decoder's defaulting).
fn default_pod_spec(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "restartPolicy", json!("Always"));
        set_default(spec, "dnsPolicy", json!("ClusterFirst"));
        set_default(spec, "schedulerName", json!("default-scheduler"));
        set_default(spec, "terminationGracePeriodSeconds", json!(30));
        set_default(spec, "securityContext", json!({}));
        set_default(spec, "enableServiceLinks", json!(true));
        set_default(spec, "priority", json!(0));
        set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    let image = c
                        .get("image")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let policy = if image_tag_is_latest(&image) {
                        "Always"
                    } else {
                        "IfNotPresent"
                    };
                    set_default(c, "imagePullPolicy", json!(policy));
                    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                    set_default(c, "terminationMessagePolicy", json!("File"));
                    set_default(c, "resources", json!({}));
                }
            }
        }
    }
}

/// The message of the real pod update validation.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,\
`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing \
tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Rejects pod spec changes the real server forbids (only images, activeDeadlineSeconds, added tolerations
/// and terminationGracePeriodSeconds may change; `spec.nodeName` only through `pods/binding`).
fn check_pod_update(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    default_pod_spec(new);
    let neutral = |pod: &Value, other: &Value| -> Value {
        let mut spec = pod.get("spec").cloned().unwrap_or(json!({}));
        if let Some(map) = spec.as_object_mut() {
            for list in ["containers", "initContainers"] {
                if let Some(items) = map.get_mut(list).and_then(Value::as_array_mut) {
                    for c in items.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
            map.remove("activeDeadlineSeconds");
            map.remove("terminationGracePeriodSeconds");
            // Additions to the old tolerations are allowed: compare only the old ones.
            let old_tolerations = other.pointer("/spec/tolerations").cloned();
            map.remove("tolerations");
            if let Some(t) = old_tolerations {
                map.insert("tolerations".into(), t);
            }
        }
        spec
    };
    let old_spec = neutral(old, old);
    let mut new_spec = neutral(new, old);
    // The new tolerations must still contain every old one.
    let old_tol: Vec<Value> = old
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let new_tol: Vec<Value> = new
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !old_tol.iter().all(|t| new_tol.contains(t)) {
        new_spec = json!(null);
    }
    if old_spec != new_spec {
        let name = super::str_at(old, "/metadata/name").to_string();
        return Err(ApiError::invalid(
            rt,
            &name,
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: format!("Forbidden: {POD_UPDATE_FORBIDDEN}"),
                field: "spec".into(),
            }],
        ));
    }
    Ok(())
}

/// Keeps a service's allocated ClusterIP(s) and node ports when an update leaves them empty (like the
/// real `patchAllocatedValues`); changing an allocated ClusterIP is refused as immutable.
fn keep_service_allocations(
    rt: &ResourceType,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    default_service(new);
    let old_ip = super::str_at(old, "/spec/clusterIP").to_string();
    let new_ip = super::str_at(new, "/spec/clusterIP").to_string();
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if !old_ip.is_empty() {
        if new_ip.is_empty() {
            spec.insert("clusterIP".into(), json!(old_ip));
            if let Some(ips) = old.pointer("/spec/clusterIPs") {
                spec.insert("clusterIPs".into(), ips.clone());
            }
        } else if new_ip != old_ip {
            let name = super::str_at(old, "/metadata/name").to_string();
            return Err(ApiError::invalid(
                rt,
                &name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {}: may not change once set",
                        go_string_slice(std::slice::from_ref(&new_ip))
                    ),
                    field: "spec.clusterIPs[0]".into(),
                }],
            ));
        }
        for key in ["ipFamilies", "ipFamilyPolicy"] {
            if spec.get(key).is_none()
                && let Some(v) = old.pointer(&format!("/spec/{key}"))
            {
                spec.insert(key.into(), v.clone());
            }
        }
    }
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if p.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let same = old_ports
                .iter()
                .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"));
            if let Some(np) = same.and_then(|o| o.get("nodePort")) {
                p.insert("nodePort".into(), np.clone());
            }
        }
    }
    Ok(())
}

fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub(crate) fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_service(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if svc_type != "ExternalName" {
        set_default(spec, "sessionAffinity", json!("None"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
}

fn default_deployment(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
        set_default(
            spec,
            "strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
        );
    }
}

fn alloc_invalid(
    rt: &ResourceType,
    name: &str,
    field: &str,
    value: &str,
    err: &AllocError,
) -> ApiError {
    ApiError::invalid(
        rt,
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {err}"),
            field: field.into(),
        }],
    )
}

/// Allocates the ClusterIP and NodePorts of a new service; on error nothing stays allocated.
fn allocate_service(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let name = super::str_at(obj, "/metadata/name").to_string();
    let svc_type = super::str_at(obj, "/spec/type").to_string();
    let mut alloc = state.services.lock();
    let mut taken_ip: Option<String> = None;
    if svc_type != "ExternalName" {
        let requested = super::str_at(obj, "/spec/clusterIP").to_string();
        let ip = match requested.as_str() {
            "None" => "None".to_string(),
            "" => alloc
                .allocate_ip()
                .map_err(|e| ApiError::internal(e.to_string()))?,
            ip => {
                alloc.allocate_specific_ip(ip).map_err(|e| {
                    alloc_invalid(
                        rt,
                        &name,
                        "spec.clusterIPs",
                        &format!("[]string{{\"{ip}\"}}"),
                        &e,
                    )
                })?;
                ip.to_string()
            }
        };
        if ip != "None" {
            taken_ip = Some(ip.clone());
        }
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
        if ip != "None" {
            obj["spec"]["ipFamilies"] = json!(["IPv4"]);
            obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        } else if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        }
    }
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        let mut taken_ports: Vec<u16> = Vec::new();
        let count = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let requested = obj
                .pointer(&format!("/spec/ports/{i}/nodePort"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let result = if requested == 0 {
                alloc.allocate_port()
            } else {
                let port = u16::try_from(requested).unwrap_or(0);
                alloc.allocate_specific_port(port).map(|_| port)
            };
            match result {
                Ok(port) => {
                    taken_ports.push(port);
                    if let Some(p) = obj
                        .pointer_mut(&format!("/spec/ports/{i}"))
                        .and_then(Value::as_object_mut)
                    {
                        p.insert("nodePort".into(), json!(port));
                    }
                }
                Err(e) => {
                    for p in taken_ports {
                        alloc.release_port(p);
                    }
                    if let Some(ip) = &taken_ip {
                        alloc.release_ip(ip);
                    }
                    return Err(alloc_invalid(
                        rt,
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        &requested.to_string(),
                        &e,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Releases what a service held (after its deletion or a failed create).
pub(crate) fn release_service(state: &Arc<ApiState>, obj: &Value) {
    let mut alloc = state.services.lock();
    if let Some(ips) = obj.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        for ip in ips.iter().filter_map(Value::as_str) {
            alloc.release_ip(ip);
        }
    }
    if let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) {
        for p in ports
            .iter()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        {
            alloc.release_port(u16::try_from(p).unwrap_or(0));
        }
    }
}

/// What part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteScope {
    /// The main resource (status kept from the old object if the type has a status subresource).
    Main,
    /// `/status`: only status changes.
    Status,
    /// `namespaces/{ns}/finalize`: only `spec.finalizers` changes.
    Finalize,
    /// Built-in controllers (binding, kubelet): the whole object as given, system metadata untouched.
    System,
}

/// Merges an update into the old object according to the scope and the system-metadata rules, and
/// maintains `generation`.
pub(super) fn prepare_update(
    rt: &ResourceType,
    scope: WriteScope,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    let name = super::str_at(old, "/metadata/name").to_string();
    let new_uid = super::str_at(new, "/metadata/uid").to_string();
    let old_uid = super::str_at(old, "/metadata/uid").to_string();
    if !new_uid.is_empty() && new_uid != old_uid {
        return Err(ApiError::invalid(
            rt,
            &name,
            vec![ApiError::invalid_value_cause(
                "metadata.uid",
                &new_uid,
                "field is immutable",
            )],
        ));
    }
    match scope {
        WriteScope::Main => {
            if rt.has_status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            if is(rt, "", "namespaces") {
                new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
            } else if is(rt, "", "pods") {
                check_pod_update(rt, old, new)?;
            } else if is(rt, "", "services") {
                keep_service_allocations(rt, old, new)?;
            } else if is(rt, "apps", "deployments") {
                default_deployment(new);
            }
        }
        WriteScope::Status => {
            let status = new.get("status").cloned();
            *new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        WriteScope::System => {}
        WriteScope::Finalize => {
            let finalizers = new.pointer("/spec/finalizers").cloned();
            *new = old.clone();
            match finalizers {
                Some(f) => new["spec"]["finalizers"] = f,
                None => new["spec"] = json!({}),
            }
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(new);
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(key) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => {
                meta.remove(key);
            }
        }
    }
    meta.remove("managedFields");
    meta.remove("selfLink");
    if old_meta.get("deletionTimestamp").is_some() {
        let old_fin: Vec<Value> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut added: Vec<String> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter(|x| !old_fin.contains(x))
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        added.sort();
        added.dedup();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                rt,
                &name,
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new \
                         finalizers {}",
                        go_string_slice(&added)
                    ),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    if rt.has_generation && content_changed(rt, old, new) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(new).insert("generation".into(), json!(generation));
    }
    Ok(())
}

/// Whether anything outside `metadata` (and `status`, for types with a status subresource) changed; for
/// deployments, also the annotations.
fn content_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            o.remove("apiVersion");
            o.remove("kind");
            if rt.has_status {
                o.remove("status");
            }
        }
        v
    };
    // Deployments also count annotation changes (the real strategy does, for rollbacks).
    let annotations_changed = is(rt, "apps", "deployments")
        && old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations");
    strip(old) != strip(new) || annotations_changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;

    #[test]
    fn generation_bumps_on_spec_change_only() {
        let deploy = builtin("apps", "deployments").expect("deployments");
        let mut old = json!({"metadata": {"name": "d", "uid": "u1", "generation": 1}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
        // Stored objects carry their defaults (applied on create).
        default_deployment(&mut old);
        let mut labels_only = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"replicas": 5}});
        prepare_update(&deploy, WriteScope::Main, &old, &mut labels_only).expect("update");
        assert_eq!(labels_only["metadata"]["generation"], 1);
        assert_eq!(
            labels_only["status"]["replicas"], 0,
            "main resource must ignore status"
        );
        assert_eq!(labels_only["metadata"]["uid"], "u1");
        let mut scaled = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}});
        prepare_update(&deploy, WriteScope::Main, &old, &mut scaled).expect("update");
        assert_eq!(scaled["metadata"]["generation"], 2);
        let mut status = json!({"metadata": {"name": "d", "labels": {"x": "y"}}, "spec": {"replicas": 9}, "status": {"replicas": 1}});
        prepare_update(&deploy, WriteScope::Status, &old, &mut status).expect("status update");
        assert_eq!(
            status["spec"]["replicas"], 1,
            "status update must ignore spec"
        );
        assert_eq!(status["status"]["replicas"], 1);
        assert!(status["metadata"].get("labels").is_none());
        assert_eq!(status["metadata"]["generation"], 1);
    }

    #[test]
    fn uid_change_and_new_finalizers_while_deleting_are_invalid() {
        let cm = builtin("", "configmaps").expect("cm");
        let old = json!({"metadata": {"name": "c", "uid": "u1", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a"]}});
        let mut other_uid = json!({"metadata": {"name": "c", "uid": "u2"}});
        assert_eq!(
            prepare_update(&cm, WriteScope::Main, &old, &mut other_uid)
                .unwrap_err()
                .code,
            422
        );
        let mut more = json!({"metadata": {"name": "c", "finalizers": ["a", "c", "b"]}});
        let err = prepare_update(&cm, WriteScope::Main, &old, &mut more).unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"));
        assert_eq!(
            err.message,
            "ConfigMap \"c\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the \
             object is being deleted, found new finalizers []string{\"b\", \"c\"}"
        );
        assert_eq!(err.details.causes[0].reason, "FieldValueForbidden");
        let mut fewer = json!({"metadata": {"name": "c", "finalizers": []}});
        prepare_update(&cm, WriteScope::Main, &old, &mut fewer)
            .expect("removing finalizers is allowed");
        assert_eq!(
            fewer["metadata"]["deletionTimestamp"],
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
