//! `apisim`: an embedded, kube-apiserver-faithful simulated Kubernetes API server.
//!
//! It serves the Kubernetes REST API over plain HTTP on loopback for any resource type (built-in types and
//! the custom resources of CRDs created in it), stored as JSON in memory, with the semantics of the real
//! `kube-apiserver`: one global resourceVersion, list+watch with bookmarks and 410 Gone, conflicts,
//! finalizers, the status subresource, patches, namespace termination, ClusterIP allocation, and an
//! optional built-in scheduler + kubelet. Hundreds of instances fit in one process.
//!
//! Module map (data flow of a request):
//! `server` (HTTP accept loop) → `faults` (injected errors/latency) → `routing` (URL → resource request)
//! → `handlers` (REST verbs) → `store` (objects with revisions, history) → `watch` (fan-out to watchers).
//! Helpers: `registry` / `resource_type` (which resources exist), `selectors`, `patch`, `validation`,
//! `ipalloc`, `table`, `openapi`, `discovery`, `status` (error bodies), `kubelet` (scheduler + kubelet).

pub mod faults;
pub mod ipalloc;
pub mod openapi;
pub mod patch;
pub mod resource_type;
pub mod selectors;
pub mod table;
pub mod validation;
