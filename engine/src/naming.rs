//! Super-cluster naming rules (cluster key, super namespace with the 63-character hashing rule, the
//! `tenancy.x-k8s.io/*` marks and reading them back). They live in the shared crate `tenancy-naming`
//! (`naming/`), so the syncer and its peers (vc-manager, vn-agent) use one implementation; re-exported here.

pub use tenancy_naming::*;
