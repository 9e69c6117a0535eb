//! The VirtualCluster sync engine.
//!
//! Data flow (each stage is a module; see `docs/architecture.md`):
//!
//! ```text
//! source (watch per cluster × kind) ──► log (sled, group commit) ──► shard (crossbeam, fair, coalescing)
//!                                            │                              │
//!                                            └── view (latest objects) ◄────┴── reconcile ──► sink (API writes)
//! ```
//!
//! * [`record`]: what flows from a source into the log, and the identity a shard hands to a reconciler.
//! * [`naming`]: the super-cluster naming rules (cluster key, namespace translation, 63-character hashing).
//! * [`log`]: the durable, versioned, group-committed event log in sled, its per-shard checkpoints and the
//!   materialised view of the latest object per key.
//! * [`shard`]: routing by (cluster, tenant namespace), bounded queues, coalescing and weighted fair scheduling.
//! * [`source`]: list+watch of every registered cluster, persisted resume points, relist on 410 Gone.
//! * [`reconcile`]: per-resource reconcile logic (namespaces, pods), both directions.
//! * [`pipeline`]: wires log and shards together behind one handle (`Pipeline`, `LogSink`, `WorkInjector`).
//! * [`patrol`]: periodic anti-entropy: walks the view (and lists the super cluster) for drift and enqueues
//!   repairs.
//! * [`upward`]: cluster-wide upward sync (virtual nodes and leases, events, public objects, volumes).
//! * [`control`], [`grpc`]: the dynamic tenant set (register / unregister at run time, durable) and the
//!   gRPC API over it (tenant registry, translation, health; mutual TLS).
//! * [`app`], [`config`], [`metrics`], [`embedded`]: the `syncer` binary's wiring, flags, Prometheus exporter
//!   and the embedded default (simulated clusters with sample workloads).

pub mod app;
pub mod config;
pub mod control;
pub mod embedded;
pub mod grpc;
pub mod log;
pub mod metrics;
pub mod naming;
pub mod patrol;
pub mod pipeline;
pub mod reconcile;
pub mod record;
pub mod shard;
pub mod source;
pub mod upward;
