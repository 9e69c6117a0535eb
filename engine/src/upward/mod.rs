//! Cluster-wide upward sync (super → tenants): virtual nodes and their leases, events, public objects and
//! persistent volumes. See `docs/upward.md` for the design (work keys, fan-out, fairness, failure modes).
//!
//! Pure translation (unit tested on realistic objects): [`node`], [`lease`], [`event`], [`public`], [`pv`].
//! Bookkeeping in the view: [`placement`] (which tenants run pods on which super nodes). Executors, as
//! [`Resource`](crate::reconcile::Resource)s: [`nodes`], [`events`], [`publics`], [`volumes`]; the periodic
//! part (lease renewal, virtual node collection): [`lifecycle`].

pub mod event;
pub mod events;
pub mod lease;
pub mod lifecycle;
pub mod node;
pub mod nodes;
pub mod placement;
pub mod public;
pub mod publics;
pub mod pv;
pub mod volumes;

/// The upward resources (Node, Event, PersistentVolume and the public kinds), for the catalogue.
#[must_use]
pub fn resources() -> Vec<std::sync::Arc<dyn crate::reconcile::Resource>> {
    let mut list: Vec<std::sync::Arc<dyn crate::reconcile::Resource>> = vec![
        std::sync::Arc::new(nodes::NodeResource::default()),
        std::sync::Arc::new(events::EventResource),
        std::sync::Arc::new(volumes::VolumeResource),
    ];
    for r in publics::public_resources() {
        list.push(std::sync::Arc::new(r));
    }
    list
}

/// Annotation on a tenant object copied up from the super cluster (event, public object, PV): the uid of the
/// super object it is a copy of. Only tenant objects carrying it are ever updated or deleted by the syncer.
pub const ANNOTATION_SUPER_UID: &str = "tenancy.x-k8s.io/super.uid";

/// Kind name of nodes in work keys and the view.
pub const KIND_NODE: &str = "Node";
/// Kind name of events in work keys and the view.
pub const KIND_EVENT: &str = "Event";
/// Kind name of persistent volumes in work keys and the view.
pub const KIND_PV: &str = "PersistentVolume";
/// Kind name of node leases in the view.
pub const KIND_LEASE: &str = "Lease";
