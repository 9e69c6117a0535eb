//! Condition types and reasons written by `vc-manager`, and the rule for updating a condition list.

use crate::Condition;

/// The spec is valid and its ClusterVersion exists.
pub const VALID: &str = "Valid";
/// Every object of the control plane exists with the current PKI and templates.
pub const PROVISIONED: &str = "Provisioned";
/// The control plane answers (StatefulSets ready, or the embedded/process server up).
pub const READY: &str = "Ready";
/// The syncer serves this tenant (registered over gRPC).
pub const REGISTERED: &str = "Registered";

/// Reasons (CamelCase, stable: scripts and `kubectl-vc` rely on them).
pub mod reasons {
    /// `spec.clusterVersionName` names no ClusterVersion.
    pub const CLUSTER_VERSION_NOT_FOUND: &str = "ClusterVersionNotFound";
    /// The ClusterVersion lacks a template the provisioner needs, or a template does not parse.
    pub const INVALID_CLUSTER_VERSION: &str = "InvalidClusterVersion";
    /// `spec.serviceCidr` is not an IPv4 CIDR with room for services.
    pub const INVALID_SERVICE_CIDR: &str = "InvalidServiceCidr";
    /// Namespace and name are too long for the super-cluster naming scheme.
    pub const NAME_TOO_LONG: &str = "NameTooLong";
    /// Another spec field is invalid (domain, prefixes, PKI lifetime).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The spec is valid.
    pub const SPEC_VALID: &str = "SpecValid";
    /// Objects being created or updated.
    pub const PROVISIONING: &str = "Provisioning";
    /// All objects present.
    pub const PROVISIONED: &str = "Provisioned";
    /// A component is not ready yet.
    pub const WAITING_FOR_COMPONENTS: &str = "WaitingForComponents";
    /// All components ready.
    pub const COMPONENTS_READY: &str = "ComponentsReady";
    /// Registered with the syncer.
    pub const REGISTERED: &str = "Registered";
    /// The syncer could not be reached or refused the registration (retried).
    pub const REGISTRATION_FAILED: &str = "RegistrationFailed";
    /// No syncer is configured for this vc-manager.
    pub const NO_SYNCER: &str = "NoSyncerConfigured";
    /// Provisioning failed in a way retrying may fix (API errors); see the message.
    pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
    /// The VirtualCluster is Running.
    pub const RUNNING: &str = "Running";
}

/// Sets `new` in `conditions`: replaces the condition of the same type, keeping its
/// `lastTransitionTime` when the status did not change. Returns `true` when anything changed.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            if *old == new {
                return false;
            }
            *old = new;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// The condition of type `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: &str, time: &str, reason: &str) -> Condition {
        Condition {
            type_: READY.into(),
            status: status.into(),
            observed_generation: Some(1),
            last_transition_time: time.into(),
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn same_status_keeps_transition_time_and_reports_no_change() {
        let mut list = vec![cond("False", "t1", "A")];
        assert!(!set(&mut list, cond("False", "t2", "A")));
        assert_eq!(list[0].last_transition_time, "t1");
        assert!(set(&mut list, cond("False", "t3", "B")));
        assert_eq!(list[0].last_transition_time, "t1");
        assert_eq!(list[0].reason, "B");
        assert!(set(&mut list, cond("True", "t4", "B")));
        assert_eq!(list[0].last_transition_time, "t4");
        assert_eq!(list.len(), 1);
        assert_eq!(get(&list, READY).map(|c| c.status.as_str()), Some("True"));
    }
}
