//! The diff a relist makes against what the log already knows (the view).
//!
//! After a 410 Gone (or on a first start) the source lists everything and compares with the view of that
//! cluster × kind: a listed object whose resourceVersion differs from the known one becomes an `Added`
//! (unknown) or `Modified` (known) record; a known object absent from the list becomes a synthetic `Deleted`
//! record carrying its last known state. Known objects *newer* than the list (the reconciler recorded its
//! own write after the list's snapshot) are left alone in both directions.

use std::cmp::Ordering;

use serde_json::Value;

use crate::record::EventType;

/// What the view knows about one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    /// Namespace as seen in that cluster.
    pub namespace: String,
    /// Name as seen in that cluster.
    pub name: String,
    /// Last known resourceVersion.
    pub resource_version: String,
    /// Last known object.
    pub object: Value,
}

/// Compares two resourceVersions numerically when both parse as u64 (etcd revisions), else `None`.
///
/// Kubernetes declares resourceVersions opaque; comparing them is only done where the syncer must decide
/// which of two observations is newer, and falls back to "different" when they are not numbers.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    Some(a.parse::<u64>().ok()?.cmp(&b.parse::<u64>().ok()?))
}

/// The event to record for a listed object with version `listed`, given the known version, or `None` when the
/// view is already up to date (same version) or ahead of the list.
pub fn listed_event(known: Option<&str>, listed: &str) -> Option<EventType> {
    match known {
        None => Some(EventType::Added),
        Some(k) if k == listed => None,
        Some(k) => match compare_versions(k, listed) {
            Some(Ordering::Greater) => None,
            _ => Some(EventType::Modified),
        },
    }
}

/// Whether a known object missing from a list taken at `list_rv` is really gone (and not written after the
/// list's snapshot).
pub fn is_gone(known_rv: &str, list_rv: &str) -> bool {
    !matches!(compare_versions(known_rv, list_rv), Some(Ordering::Greater))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_objects_become_added_modified_or_nothing() {
        assert_eq!(listed_event(None, "5"), Some(EventType::Added));
        assert_eq!(listed_event(Some("5"), "5"), None);
        assert_eq!(listed_event(Some("4"), "5"), Some(EventType::Modified));
        // The reconciler recorded a newer write than the list saw: keep the newer one.
        assert_eq!(listed_event(Some("9"), "5"), None);
        // Opaque versions: any difference is a modification.
        assert_eq!(listed_event(Some("a"), "b"), Some(EventType::Modified));
    }

    #[test]
    fn known_objects_newer_than_the_list_are_not_deleted() {
        assert!(is_gone("4", "10"));
        assert!(is_gone("10", "10"));
        assert!(!is_gone("11", "10"));
        assert!(is_gone("x", "10"));
    }

    proptest::proptest! {
        /// Numeric versions: a listed object is recorded exactly when the view is behind it, and a known
        /// object missing from the list is deleted exactly when it is not newer than the list.
        #[test]
        fn numeric_versions_follow_the_newer_wins_rule(known in 0u64..1000, listed in 0u64..1000) {
            let (k, l) = (known.to_string(), listed.to_string());
            let event = listed_event(Some(&k), &l);
            proptest::prop_assert_eq!(event.is_some(), known < listed);
            proptest::prop_assert_eq!(event.is_some_and(|e| e == EventType::Modified), known < listed);
            proptest::prop_assert_eq!(is_gone(&k, &l), known <= listed);
            proptest::prop_assert_eq!(listed_event(None, &l), Some(EventType::Added));
        }
    }
}
