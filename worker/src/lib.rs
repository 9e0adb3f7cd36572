//! The Quiver worker: runs tasks over Arrow record batches on a rayon pool, stores map output
//! as Arrow IPC files, serves it to other workers over Arrow Flight, and reports to the
//! coordinator.
//!
//! # Layout
//! - [`command_line`] — the worker's flags and its run-until-signal loop (also used by
//!   users' own worker binaries).
//! - `process` — wiring — bind, serve, heartbeat, report; [`start`] returns a handle.
//! - `worker_service` — the gRPC `Worker` service (launch, cancel, remove job data).
//! - `cluster_trust` — the worker's session key and what the coordinator told it (grant key,
//!   accepted tokens, limits); the access policy of its port.
//! - `coordinator_link` — registration, heartbeats and task reports.
//! - `task_executor` — runs task attempts on rayon, catches panics, writes outputs.
//! - `functions` — the registry of user functions (row, batch and flat-map).
//! - `operators` — the operators (one file each) and the pipeline that chains them.
//! - `shuffle` — hash and range partitioning, the shuffle writer and reader, the map output
//!   store and the Flight server (the Flight client is `quiver-net`'s).
//! - `expr` — expression evaluation, string kernels and sort keys, used by both the
//!   operators and the shuffle.
//! - `memory` — the memory budget (`--memory-limit`), reservations and spill files.
//! - `io` — text/Parquet/CSV readers of input splits, the Parquet writer.
//! - `work_dir` — the lock on `--work-dir` and removing a dead predecessor's leftovers.
//! - `health` — the optional plain-HTTP endpoint (`--health-bind`): `/healthz` and `/readyz`
//!   probes, and `/metrics`.
//! - `worker_metrics` — the worker's counters (shuffle bytes served and fetched, fetch
//!   failures, spills, attempts) and its `/metrics` page.
//! - `error` — [`WorkerError`].
//!
//! Layering, from the bottom: `error`, `functions`, `memory`, `io` and `expr`; then
//! `shuffle`; then `operators` (which reads shuffle buckets, and partitions its spills as
//! the shuffle does); then `task_executor` and the services. Nothing in `shuffle` uses
//! `operators`.
//!
//! # What this crate exports
//! The worker as a component: [`start`] with a [`WorkerConfig`] (an in-process worker, as
//! `LocalCluster` uses), [`command_line`] (the `quiver-worker` flags and [`command_line::run`],
//! for users' own worker binaries), [`FunctionRegistry`] (their functions), [`WorkerError`],
//! and the two memory helpers [`default_memory_limit`] and [`parse_bytes`]. Everything else is
//! `pub(crate)`. The feature `internals` makes `expr`, `io`, `memory`, `operators`,
//! `shuffle` and `worker_metrics` public for this crate's integration tests and the micro-benchmarks in
//! `quiver-benches`; they are not a stable API.
//!
//! Nothing here depends on the coordinator crate: the two share only `quiver-proto` and
//! `quiver-plan`.

#![cfg_attr(not(feature = "internals"), warn(missing_docs))]

mod cluster_trust;
pub mod command_line;
mod coordinator_link;
mod error;
mod functions;
mod health;
mod process;
mod task_executor;
mod work_dir;
#[cfg(feature = "internals")]
pub mod worker_metrics;
#[cfg(not(feature = "internals"))]
mod worker_metrics;
mod worker_service;

// Internal, public only for this crate's tests and the micro-benchmarks (feature `internals`).
#[cfg(feature = "internals")]
pub mod expr;
#[cfg(not(feature = "internals"))]
mod expr;
#[cfg(feature = "internals")]
pub mod io;
#[cfg(not(feature = "internals"))]
mod io;
#[cfg(feature = "internals")]
pub mod memory;
#[cfg(not(feature = "internals"))]
mod memory;
#[cfg(feature = "internals")]
pub mod operators;
#[cfg(not(feature = "internals"))]
mod operators;
#[cfg(feature = "internals")]
pub mod shuffle;
#[cfg(not(feature = "internals"))]
mod shuffle;

pub use error::{Result, WorkerError};
pub use functions::FunctionRegistry;
pub use memory::memory_pool::{default_memory_limit, parse_bytes};
pub use process::{RunningWorker, WorkerConfig, start};
