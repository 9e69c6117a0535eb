//! Warning events on tenant objects the syncer will not or cannot copy, once per object and reason.
//!
//! "Once" comes from the event's name, derived from the object's uid and the reason: a second attempt gets
//! 409 AlreadyExists and is not repeated, whatever the number of reconciles.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use sha2::{Digest, Sha256};

use super::writer::{self, Created, Target, WriteError};
use super::{METRIC_REPORTS_TOTAL, count_write};

/// Component named as the source of the syncer's events.
pub const EVENT_COMPONENT: &str = "vc-syncer";
/// Longest object-name part of an event name (event names are DNS subdomains, at most 253 characters).
const MAX_NAME_PART: usize = 200;

/// The tenant object an event is about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'a> {
    pub(crate) cluster: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) uid: &'a str,
}

/// Name of the event reporting `reason` about the object with `uid`.
#[must_use]
pub(crate) fn event_name(object_name: &str, uid: &str, reason: &str) -> String {
    let digest = Sha256::digest(format!("{uid}/{reason}").as_bytes());
    let mut hash = hex::encode(digest);
    hash.truncate(16);
    let name: String = object_name.chars().take(MAX_NAME_PART).collect();
    let name = name.trim_end_matches(['-', '.']);
    format!("{name}.{hash}")
}

/// Logs and counts the report, and creates a Warning event about `subject` in its namespace (cluster-scoped
/// subjects get no event: only the log and the metric).
pub(crate) async fn report(
    client: &kube::Client,
    subject: Subject<'_>,
    reason: &'static str,
    message: &str,
) -> Result<(), WriteError> {
    metrics::counter!(METRIC_REPORTS_TOTAL, "kind" => subject.kind, "reason" => reason)
        .increment(1);
    tracing::warn!(
        cluster = subject.cluster,
        kind = subject.kind,
        namespace = subject.namespace,
        name = subject.name,
        reason,
        message,
        "tenant object not synced"
    );
    if subject.namespace.is_empty() {
        return Ok(());
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let name = event_name(subject.name, subject.uid, reason);
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(subject.namespace.to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(subject.kind.to_owned()),
            namespace: Some(subject.namespace.to_owned()),
            name: Some(subject.name.to_owned()),
            uid: Some(subject.uid.to_owned()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some("Warning".into()),
        source: Some(EventSource {
            component: Some(EVENT_COMPONENT.into()),
            host: None,
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), subject.namespace);
    let target = Target {
        cluster: subject.cluster,
        kind: "Event",
        namespace: subject.namespace,
        name: &name,
    };
    if let Created::Yes(_) = writer::create(&api, target, &event).await? {
        count_write("Event", "tenant", "create");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Kubernetes DNS-1123 subdomain (what event names must be).
    fn is_subdomain(s: &str) -> bool {
        s.len() <= 253
            && s.split('.').all(|part| {
                let b = part.as_bytes();
                let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
                !b.is_empty()
                    && b.iter().all(|c| alnum(c) || *c == b'-')
                    && b.first().is_some_and(alnum)
                    && b.last().is_some_and(alnum)
            })
    }

    #[test]
    fn event_names_are_stable_per_uid_and_reason() {
        let a = event_name("web-0", "uid-1", "NotSupported");
        assert_eq!(a, event_name("web-0", "uid-1", "NotSupported"));
        assert_ne!(a, event_name("web-0", "uid-2", "NotSupported"));
        assert_ne!(a, event_name("web-0", "uid-1", "InvalidPod"));
        assert!(a.starts_with("web-0."));
        assert!(is_subdomain(&a));
        let long = event_name(&"p".repeat(253), "u", "r");
        assert!(is_subdomain(&long), "{long}");
        // Cut right after a hyphen: the name part must not end with it.
        let cut = event_name(&format!("{}-{}", "a".repeat(199), "b".repeat(50)), "u", "r");
        assert!(is_subdomain(&cut), "{cut}");
    }
}
