//! The per-resource framework: one [`Resource`] per synced kind, and the [`Resources`] registry of the kinds
//! that are on.
//!
//! A resource has three parts:
//! * **down** ([`Resource::reconcile_down`]): make the super copy match the tenant object (tenant → super);
//! * **up** ([`Resource::reconcile_up`]): back-populate what the super cluster decided (status, allocated
//!   addresses) into the tenant object (super → tenant);
//! * **patrol check** ([`Resource::check`]): given both sides as the view holds them, is there drift?
//!
//! plus its [`KindSpec`] (what to list+watch on each side). Adding a kind is one module implementing
//! [`Resource`] and one line in [`super::kinds::catalogue`]; which resources are on is configuration
//! (`--resources`, [`Resources::from_names`]), and the enabled set also decides what the sources watch
//! ([`Resources::kinds`]).
//!
//! Work keys of the super cluster itself (`key.cluster == SUPER_CLUSTER`, for kinds fanned out to many
//! tenants) go to [`Resource::reconcile_super`] with a [`SuperCtx`] instead of a tenant context.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{SyncError, TenantInfo, Tenants};
use crate::log::View;
use crate::record::WorkKey;
use crate::source::KindSpec;

pub use super::Ctx;

/// Result of a reconcile step.
pub type SyncFuture<'a> = BoxFuture<'a, Result<(), SyncError>>;

/// What a patrol check found for one tenant object (or the absence of one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// Both sides agree (or the object is deliberately not synced).
    InSync,
    /// The tenant object has no super copy.
    MissingInSuper,
    /// The super copy (ours, by its marks) stands for a tenant object that is absent.
    OrphanInSuper,
    /// Both exist and differ; what differs (for logs, bounded by the resource).
    Different(&'static str),
}

/// What a patrol check looks at: both sides of one work key as the view holds them.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// The tenant.
    pub tenant: &'a TenantInfo,
    /// The work key (tenant identity of the object).
    pub key: &'a WorkKey,
    /// The tenant object, if the view has it.
    pub tenant_object: Option<&'a Value>,
    /// The super copy, if the view has it (at [`Resource::super_location`]).
    pub super_object: Option<&'a Value>,
    /// The view, for resources whose rules depend on another object (Endpoints look at their Service).
    pub view: &'a View,
}

impl Check<'_> {
    /// Both sides parsed as `K` (tenant, super); a side that is absent or does not parse is `None`.
    #[must_use]
    pub fn objects<K: serde::de::DeserializeOwned>(&self) -> (Option<K>, Option<K>) {
        // Deserialized from the borrowed value: no copy of the JSON tree per check.
        let parse = |v: Option<&Value>| v.and_then(|v| K::deserialize(v).ok());
        (parse(self.tenant_object), parse(self.super_object))
    }
}

/// Where the super copy of a tenant object lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperLocation {
    /// Super namespace (`""` for cluster-scoped copies).
    pub namespace: String,
    /// Super name.
    pub name: String,
}

/// What a reconcile of a super-cluster work key (`key.cluster == SUPER_CLUSTER`) works with.
pub struct SuperCtx<'a> {
    /// The work key.
    pub key: &'a WorkKey,
    /// The view.
    pub view: &'a View,
    /// Every registered tenant (fan-out).
    pub tenants: &'a Tenants,
    /// Client of the super cluster.
    pub super_client: &'a kube::Client,
}

/// One synced kind. Implementations are stateless (or hold only configuration) and shared by every shard.
pub trait Resource: Send + Sync + 'static {
    /// The kind name used in work keys, records and the view (e.g. `Service`).
    fn kind(&self) -> &'static str;

    /// What to list+watch, on each side.
    fn spec(&self) -> KindSpec;

    /// On unless configured otherwise (opt-in kinds return `false`).
    fn default_enabled(&self) -> bool {
        true
    }

    /// Down: make the super cluster match the tenant object named by `ctx.key`. Default: nothing flows down
    /// (kinds copied up only).
    fn reconcile_down<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// Up: copy what the super cluster decided back into the tenant object. Runs after
    /// [`Resource::reconcile_down`] in the same reconcile. Default: nothing flows up.
    fn reconcile_up<'a>(&'a self, ctx: &'a Ctx<'a>) -> SyncFuture<'a> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// A work key of the super cluster itself (fan-out kinds). Default: nothing to do.
    fn reconcile_super<'a>(&'a self, ctx: &'a SuperCtx<'a>) -> SyncFuture<'a> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }

    /// Where the super copy of tenant object `key` lives; `None` for kinds that are not copied down.
    fn super_location(&self, tenant: &TenantInfo, key: &WorkKey) -> Option<SuperLocation>;

    /// Patrol check: is there drift between the two sides as the view holds them?
    fn check(&self, check: &Check<'_>) -> Drift;
}

/// Unknown names in a resource list.
#[derive(Debug, thiserror::Error)]
pub enum ResourcesError {
    /// A name that is no known kind.
    #[error("unknown resource {name:?}; known: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// Every known kind, comma-separated.
        known: String,
    },
    /// A namespaced tenant kind without `Namespace` (its super namespaces would never exist).
    #[error("resource {0} needs Namespace to be enabled too")]
    NeedsNamespace(String),
}

/// The enabled resources, by kind name. Cheap to clone.
#[derive(Clone)]
pub struct Resources {
    by_kind: Arc<BTreeMap<&'static str, Arc<dyn Resource>>>,
    vn_agent_port: i32,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

impl Resources {
    fn from_list(list: Vec<Arc<dyn Resource>>) -> Self {
        Self {
            by_kind: Arc::new(list.into_iter().map(|r| (r.kind(), r)).collect()),
            vn_agent_port: crate::upward::node::DEFAULT_VN_AGENT_PORT,
        }
    }

    /// The same resources, with virtual nodes advertising `port` as their kubelet port (the vn-agent's;
    /// `--vn-agent-port`).
    #[must_use]
    pub fn with_vn_agent_port(mut self, port: i32) -> Self {
        if self.by_kind.contains_key(crate::upward::KIND_NODE) {
            let mut by_kind = (*self.by_kind).clone();
            by_kind.insert(
                crate::upward::KIND_NODE,
                Arc::new(crate::upward::nodes::NodeResource::new(port)),
            );
            self.by_kind = Arc::new(by_kind);
        }
        self.vn_agent_port = port;
        self
    }

    /// The kubelet port virtual nodes advertise (the vn-agent's).
    #[must_use]
    pub fn vn_agent_port(&self) -> i32 {
        self.vn_agent_port
    }

    /// The resources that are on by default.
    #[must_use]
    pub fn defaults() -> Self {
        Self::from_list(
            super::kinds::catalogue()
                .into_iter()
                .filter(|r| r.default_enabled())
                .collect(),
        )
    }

    /// Every known resource, opt-in ones included.
    #[must_use]
    pub fn all() -> Self {
        Self::from_list(super::kinds::catalogue())
    }

    /// Names of every known kind, and whether each is on by default.
    #[must_use]
    pub fn known() -> Vec<(&'static str, bool)> {
        super::kinds::catalogue()
            .iter()
            .map(|r| (r.kind(), r.default_enabled()))
            .collect()
    }

    /// The resources named in `names` (kind names, case-insensitive; `default` stands for every default
    /// kind, `all` for every known kind).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, ResourcesError> {
        let catalogue = super::kinds::catalogue();
        let mut picked: Vec<Arc<dyn Resource>> = Vec::new();
        let mut add = |r: &Arc<dyn Resource>| {
            if !picked.iter().any(|p| p.kind() == r.kind()) {
                picked.push(r.clone());
            }
        };
        for name in names {
            let name = name.as_ref().trim();
            if name.is_empty() {
                continue;
            }
            if name.eq_ignore_ascii_case("default") {
                catalogue
                    .iter()
                    .filter(|r| r.default_enabled())
                    .for_each(&mut add);
            } else if name.eq_ignore_ascii_case("all") {
                catalogue.iter().for_each(&mut add);
            } else {
                let found = catalogue
                    .iter()
                    .find(|r| r.kind().eq_ignore_ascii_case(name))
                    .ok_or_else(|| ResourcesError::Unknown {
                        name: name.to_owned(),
                        known: catalogue
                            .iter()
                            .map(|r| r.kind())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                add(found);
            }
        }
        let has_namespace = picked.iter().any(|r| r.kind() == super::KIND_NAMESPACE);
        if !has_namespace
            && let Some(r) = picked.iter().find(|r| {
                let spec = r.spec();
                spec.namespaced && spec.tenant_watch.is_on()
            })
        {
            return Err(ResourcesError::NeedsNamespace(r.kind().to_owned()));
        }
        Ok(Self::from_list(picked))
    }

    /// The resource of `kind`, if enabled.
    #[must_use]
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Resource>> {
        self.by_kind.get(kind)
    }

    /// Enabled kind names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.by_kind.keys().copied().collect()
    }

    /// What the sources watch: the spec of every enabled resource.
    #[must_use]
    pub fn kinds(&self) -> Vec<KindSpec> {
        self.by_kind.values().map(|r| r.spec()).collect()
    }

    /// Every enabled resource.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Resource>> {
        self.by_kind.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_kinds_case_insensitively_and_reject_unknown_ones() {
        let r = Resources::from_names(&["namespace", "POD"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.names(), vec!["Namespace", "Pod"]);
        let err = Resources::from_names(&["Namespace", "Pods"]).err();
        assert!(
            matches!(&err, Some(ResourcesError::Unknown { name, .. }) if name == "Pods"),
            "{err:?}"
        );
        let err = Resources::from_names(&["Pod"]).err();
        assert!(
            matches!(&err, Some(ResourcesError::NeedsNamespace(k)) if k == "Pod"),
            "{err:?}"
        );
    }

    #[test]
    fn default_is_the_default_enabled_kinds_and_drives_the_watched_kinds() {
        let d = Resources::from_names(&["default"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.names(), Resources::defaults().names());
        let defaults: Vec<&str> = Resources::known()
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| k)
            .collect();
        let mut sorted = defaults.clone();
        sorted.sort_unstable();
        assert_eq!(d.names(), sorted);
        let watched: Vec<String> = d.kinds().into_iter().map(|k| k.kind).collect();
        assert_eq!(watched, d.names());
        assert!(Resources::all().names().len() >= d.names().len());
    }

    #[test]
    fn the_vn_agent_port_is_configurable_and_adds_no_kind() {
        let d = Resources::defaults();
        assert_eq!(
            d.vn_agent_port(),
            crate::upward::node::DEFAULT_VN_AGENT_PORT
        );
        let r = d.with_vn_agent_port(12345);
        assert_eq!(r.vn_agent_port(), 12345);
        assert_eq!(r.names(), Resources::defaults().names());
        let without_nodes = Resources::from_names(&["Namespace"])
            .unwrap_or_else(|e| panic!("{e}"))
            .with_vn_agent_port(12345);
        assert_eq!(without_nodes.names(), vec!["Namespace"]);
    }
}
