//! `Status` error bodies with the reasons, codes and messages of the real API server
//! (k8s.io/apimachinery/pkg/api/errors).

use serde_json::{Value, json};

use crate::resource_type::ResourceType;

/// One entry of `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Field path, e.g. `metadata.name`.
    pub field: String,
}

/// An API error, rendered as a `Status` object with `status: Failure`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` field, e.g. `NotFound`.
    pub reason: &'static str,
    /// `message` field.
    pub message: String,
    /// `details` (boxed: errors travel through every handler's `Result`).
    pub details: Box<Details>,
}

/// The `details` of a `Status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind` (a plural resource for most errors, a Kind for `Invalid`).
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds` (also sent as the `Retry-After` header).
    pub retry_after: Option<u64>,
    /// `metadata.continue` of the Status (a fresh token after an expired one).
    pub list_continue: Option<String>,
}

/// The resource as the real server names it in messages: `pods`, `deployments.apps`.
pub fn qualified_resource(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

/// The kind as the real server names it in 422 messages: `Pod`, `Deployment.apps`, `Widget.example.com`.
pub fn qualified_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    fn with_resource(mut self, rt: &ResourceType, name: &str) -> ApiError {
        self.details.name = Some(name.to_string());
        self.details.group = Some(rt.group.clone());
        self.details.kind = Some(rt.plural.clone());
        self
    }

    /// 404 `pods "x" not found`.
    pub fn not_found(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified_resource(rt)),
        )
        .with_resource(rt, name)
    }

    /// 404 for a namespace that does not exist: `namespaces "foo" not found`.
    pub fn namespace_not_found(namespace: &str) -> ApiError {
        let mut err = ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        );
        err.details.name = Some(namespace.to_string());
        err.details.kind = Some("namespaces".to_string());
        err
    }

    /// 404 for a path that names no resource.
    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified_resource(rt)),
        )
        .with_resource(rt, name)
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict_modified(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified_resource(rt)
            ),
        )
        .with_resource(rt, name)
    }

    /// 403 `pods "x" is forbidden: <why>`.
    pub fn forbidden(rt: &ResourceType, name: &str, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", qualified_resource(rt)),
        )
        .with_resource(rt, name)
    }

    /// 422 `Pod "x" is invalid: <field>: <msg>; ...` with one cause per field error.
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if summary.len() == 1 {
            summary.join("")
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {joined}", qualified_kind(rt)),
        );
        err.details.name = Some(name.to_string());
        err.details.group = Some(rt.group.clone());
        err.details.kind = Some(rt.kind.clone());
        err.details.causes = causes;
        err
    }

    /// 422 Invalid for an options kind that is no stored type (e.g. `PodLogOptions "web" is invalid: ...`).
    pub fn invalid_kind(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if summary.len() == 1 {
            summary.join("")
        } else {
            format!("[{}]", summary.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {joined}"),
        );
        err.details.name = Some(name.to_string());
        err.details.group = Some(group.to_string());
        err.details.kind = Some(kind.to_string());
        err.details.causes = causes;
        err
    }

    /// 500 with no reason: what the real server answers for an error that is not an API status (a failed
    /// dial to a kubelet, for instance: the message is the Go error text).
    pub fn unknown_internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "", message)
    }

    /// An error the server relays from a backend (a kubelet) that answered `code` with `body`, as
    /// `errors.NewGenericServerResponse` builds it for `resource` (e.g. `pods/log`) and `name`.
    pub fn generic_server_response(code: u16, resource: &str, name: &str, body: &str) -> ApiError {
        let (reason, message) = match code {
            400 => ("BadRequest", "the server rejected our request for an unknown reason".to_string()),
            401 => ("Unauthorized", "the server has asked for the client to provide credentials".to_string()),
            403 => ("Forbidden", body.to_string()),
            404 => ("NotFound", "the server could not find the requested resource".to_string()),
            405 => ("MethodNotAllowed", "the server does not allow this method on the requested resource".to_string()),
            409 => ("Conflict", "the server reported a conflict".to_string()),
            422 => ("Invalid", "the server rejected our request due to an error in our request".to_string()),
            429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later".to_string()),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_string()),
            504 => ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request".to_string()),
            c if c >= 500 => ("InternalError", format!("an error on the server ({body:?}) has prevented the request from succeeding")),
            c => ("", format!("the server responded with the status code {c} but did not return more information")),
        };
        let mut err = ApiError::new(code, reason, format!("{message} ( {resource} {name})"));
        err.details.name = Some(name.to_string());
        err.details.kind = Some(resource.to_string());
        err.details.causes = vec![Cause {
            reason: "UnexpectedServerResponse".to_string(),
            message: body.to_string(),
            field: String::new(),
        }];
        err
    }

    /// A `FieldValueInvalid` cause: `Invalid value: "v": msg`.
    pub fn invalid_value_cause(field: &str, value: &str, msg: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid".to_string(),
            message: format!("Invalid value: \"{value}\": {msg}"),
            field: field.to_string(),
        }
    }

    /// A `FieldValueRequired` cause: `Required value: msg`.
    pub fn required_cause(field: &str, msg: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired".to_string(),
            message: if msg.is_empty() {
                "Required value".to_string()
            } else {
                format!("Required value: {msg}")
            },
            field: field.to_string(),
        }
    }

    /// 422 for invalid watch options (`ListOptions.meta.k8s.io "" is invalid: <field>: Forbidden: <msg>`).
    pub fn invalid_watch(field: &str, msg: &str) -> ApiError {
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: Forbidden: {msg}"),
        );
        err.details.group = Some("meta.k8s.io".to_string());
        err.details.kind = Some("ListOptions".to_string());
        err.details.causes = vec![Cause {
            reason: "FieldValueForbidden".to_string(),
            message: format!("Forbidden: {msg}"),
            field: field.to_string(),
        }];
        err
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    /// 406 NotAcceptable (e.g. protobuf requested).
    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }

    /// 413 `Request entity too large: limit is N`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 410 Expired with the given message (`too old resource version: N (M)` and friends).
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 410 for a `continue` token older than the kept history.
    pub fn continue_expired() -> ApiError {
        ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new \
             list without the continue parameter, or use the continue token in this response to retrieve the \
             remainder of the results. Continuing with the provided token results in an inconsistent list - \
             objects that were created, modified, or deleted between the time the first chunk was returned and now \
             may show up in the list.",
        )
    }

    /// 504 `Too large resource version: N, current: M`.
    pub fn too_large_resource_version(requested: u64, current: u64) -> ApiError {
        let mut err = ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        );
        err.details.causes = vec![Cause {
            reason: "ResourceVersionTooLarge".to_string(),
            message: "Too large resource version".to_string(),
            field: String::new(),
        }];
        err.details.retry_after = Some(1);
        err
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        let mut err = ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        );
        err.details.causes = vec![Cause {
            reason: String::new(),
            message,
            field: String::new(),
        }];
        err
    }

    /// 500 for an injected fault.
    pub fn injected_internal() -> ApiError {
        ApiError::internal("injected fault")
    }

    /// 429 TooManyRequests with a retry hint.
    pub fn too_many_requests(retry_after: u64) -> ApiError {
        let mut err = ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        err.details.retry_after = Some(retry_after);
        err
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.details.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = self.details.group.as_ref().filter(|g| !g.is_empty()) {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.details.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.details.causes.is_empty() {
            let causes: Vec<Value> = self
                .details
                .causes
                .iter()
                .map(|c| {
                    let mut m = serde_json::Map::new();
                    if !c.reason.is_empty() {
                        m.insert("reason".into(), json!(c.reason));
                    }
                    m.insert("message".into(), json!(c.message));
                    if !c.field.is_empty() {
                        m.insert("field".into(), json!(c.field));
                    }
                    Value::Object(m)
                })
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.details.retry_after {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(status) = status.as_object_mut()
        {
            // `reason` is omitted when empty (StatusReasonUnknown), as Go's `omitempty` does.
            status.remove("reason");
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        if let Some(token) = &self.details.list_continue {
            status["metadata"] = json!({ "continue": token });
        }
        status
    }
}

/// A `Status` with `status: Success` for a deleted object (what the real server answers a DELETE with for
/// most types).
pub fn success_deleted(rt: &ResourceType, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": rt.plural, "uid": uid });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;

    #[test]
    fn not_found_names_qualified_resource() {
        let deploy = builtin("apps", "deployments").expect("built-in deployments");
        let s = ApiError::not_found(&deploy, "web").to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["code"], 404);
        let pods = builtin("", "pods").expect("built-in pods");
        let s = ApiError::not_found(&pods, "x").to_status();
        assert_eq!(s["message"], "pods \"x\" not found");
        assert!(s["details"].get("group").is_none());
    }

    #[test]
    fn invalid_lists_causes_and_kind() {
        let pods = builtin("", "pods").expect("built-in pods");
        let cause = ApiError::invalid_value_cause("metadata.name", "Bad_Name", "bad");
        let s = ApiError::invalid(&pods, "Bad_Name", vec![cause]).to_status();
        assert_eq!(
            s["message"],
            "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": bad"
        );
        assert_eq!(s["details"]["kind"], "Pod");
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(s["code"], 422);
    }
}
