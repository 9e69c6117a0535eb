//! The API calls reconcilers make, with the outcomes they have to tell apart and bounded error codes.
//!
//! Every update carries the object's resourceVersion (optimistic concurrency) and every delete a `uid`
//! precondition, so a write never lands on an object other than the one that was read: the API server
//! answers 409 Conflict instead, and the caller re-reads.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// A failed API call: what was attempted, on which object, and the client error.
#[derive(Debug, Error)]
#[error("failed to {verb} {kind} {namespace}/{name} in cluster {cluster}")]
pub struct WriteError {
    /// The call, e.g. `create`, `update_status`, `bind`.
    pub verb: &'static str,
    /// Kind of the object.
    pub kind: &'static str,
    /// Cluster key or the super cluster's name.
    pub cluster: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Cause.
    #[source]
    pub source: kube::Error,
}

impl WriteError {
    /// The bounded metric code of this error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        error_code(&self.source)
    }

    /// One line for logs and events: what failed and the API server's message (kube's own rendering of an
    /// API error repeats the whole status).
    #[must_use]
    pub fn summary(&self) -> String {
        match &self.source {
            kube::Error::Api(status) => format!("{self}: {} ({})", status.message, status.code),
            other => format!("{self}: {other}"),
        }
    }

    /// True for 409 Conflict (stale resourceVersion, failed precondition, already bound).
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        status_code(&self.source) == Some(409)
    }

    /// True for 404 Not Found.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        status_code(&self.source) == Some(404)
    }
}

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Bounded code for a client error: `conflict`, `already_exists`, `not_found`, `forbidden`, `unauthorized`,
/// `invalid`, `api_unavailable` (429, 5xx, transport) or `api_error`.
#[must_use]
pub fn error_code(err: &kube::Error) -> &'static str {
    match err {
        kube::Error::Api(status) => match status.code {
            409 if status.reason == "AlreadyExists" => "already_exists",
            409 => "conflict",
            404 | 410 => "not_found",
            403 => "forbidden",
            401 => "unauthorized",
            400 | 422 => "invalid",
            429 | 500..=599 => "api_unavailable",
            _ => "api_error",
        },
        kube::Error::SerdeError(_) => "decode",
        _ => "api_unavailable",
    }
}

/// Which object of which cluster a call is about (for errors and logs).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Cluster key or the super cluster's name.
    pub cluster: &'a str,
    /// Kind of the object.
    pub kind: &'static str,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Target<'_> {
    fn err(&self, verb: &'static str, source: kube::Error) -> WriteError {
        WriteError {
            verb,
            kind: self.kind,
            cluster: self.cluster.to_owned(),
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            source,
        }
    }
}

/// Result of a create.
#[derive(Debug)]
pub enum Created<K> {
    /// Created; the API server's answer.
    Yes(K),
    /// The name is taken (409 AlreadyExists); the caller re-reads to decide.
    AlreadyExists,
}

/// Result of a delete.
#[derive(Debug)]
pub enum Deleted<K> {
    /// Accepted; the API server returned the object (still present while terminating, or its last state).
    Object(K),
    /// Accepted and gone (the API server returned a Status).
    Gone,
    /// Nothing of that name existed (404).
    NotFound,
}

/// Reads an object; `None` when it does not exist.
pub async fn get<K>(api: &Api<K>, target: Target<'_>) -> Result<Option<K>, WriteError>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.get_opt(target.name)
        .await
        .map_err(|e| target.err("get", e))
}

/// Creates an object.
pub async fn create<K>(api: &Api<K>, target: Target<'_>, obj: &K) -> Result<Created<K>, WriteError>
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(created) => Ok(Created::Yes(created)),
        Err(kube::Error::Api(status)) if status.code == 409 && status.reason == "AlreadyExists" => {
            Ok(Created::AlreadyExists)
        }
        Err(e) => Err(target.err("create", e)),
    }
}

/// Replaces an object; `obj` carries the resourceVersion it was read at.
pub async fn replace<K>(api: &Api<K>, target: Target<'_>, obj: &K) -> Result<K, WriteError>
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    api.replace(target.name, &PostParams::default(), obj)
        .await
        .map_err(|e| target.err("update", e))
}

/// Replaces an object's status (status subresource); `obj` carries the resourceVersion it was read at.
pub async fn replace_status<K>(api: &Api<K>, target: Target<'_>, obj: &K) -> Result<K, WriteError>
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    api.replace_status(target.name, &PostParams::default(), obj)
        .await
        .map_err(|e| target.err("update_status", e))
}

/// Deletes an object only if its uid is still `uid`, with an optional grace period (negative = 0).
pub async fn delete<K>(
    api: &Api<K>,
    target: Target<'_>,
    uid: &str,
    grace_seconds: Option<i64>,
) -> Result<Deleted<K>, WriteError>
where
    K: Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams {
        grace_period_seconds: grace_seconds.map(|g| u32::try_from(g.max(0)).unwrap_or(u32::MAX)),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(target.name, &params).await {
        Ok(answer) => Ok(answer.left().map_or(Deleted::Gone, Deleted::Object)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Deleted::NotFound),
        Err(e) => Err(target.err("delete", e)),
    }
}

/// Binds a pod to a node through `pods/binding`, only if the pod's uid is still `uid`.
pub async fn bind(
    api: &Api<Pod>,
    target: Target<'_>,
    uid: &str,
    node: &str,
) -> Result<(), WriteError> {
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(target.name.to_owned()),
            namespace: Some(target.namespace.to_owned()),
            uid: Some(uid.to_owned()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            ..ObjectReference::default()
        },
    };
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        target.name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
    .map_err(|e| target.err("bind", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn codes_are_bounded_and_specific() {
        assert_eq!(
            error_code(&api_error(409, "AlreadyExists")),
            "already_exists"
        );
        assert_eq!(error_code(&api_error(409, "Conflict")), "conflict");
        assert_eq!(error_code(&api_error(404, "NotFound")), "not_found");
        assert_eq!(error_code(&api_error(403, "Forbidden")), "forbidden");
        assert_eq!(error_code(&api_error(422, "Invalid")), "invalid");
        assert_eq!(
            error_code(&api_error(429, "TooManyRequests")),
            "api_unavailable"
        );
        assert_eq!(
            error_code(&api_error(503, "ServiceUnavailable")),
            "api_unavailable"
        );
        assert_eq!(error_code(&api_error(418, "")), "api_error");
    }
}
