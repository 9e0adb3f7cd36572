//! The Quiver worker: runs tasks over Arrow record batches on a rayon pool, stores map output
//! as Arrow IPC files, serves it to other workers over Arrow Flight, and reports to the
//! coordinator.
//!
//! # Layout
//! - [`command_line`] — the worker's flags and its run-until-signal loop (also used by
//!   users' own worker binaries).
//! - [`process`] — wiring — bind, serve, heartbeat, report; [`process::start`] returns a handle.
//! - [`worker_service`] — the gRPC `Worker` service (launch, cancel, remove job data).
//! - [`cluster_trust`] — the worker's session key and what the coordinator told it (grant key,
//!   accepted tokens, limits); the access policy of its port.
//! - [`coordinator_link`] — registration, heartbeats, task reports and output commits.
//! - [`task_executor`] — runs task attempts on rayon, catches panics, writes outputs.
//! - [`functions`] — the registry of user functions (row, batch and flat-map).
//! - [`operators`] — the operators (one file each) and the pipeline that chains them.
//! - [`shuffle`] — hash and range partitioning, the shuffle writer and reader, the map output
//!   store and the Flight server (the Flight client is `quiver-net`'s).
//! - [`expr`] — expression evaluation, string kernels and sort keys, used by both the
//!   operators and the shuffle.
//! - [`memory`] — the memory budget (`--memory-limit`), reservations and spill files.
//! - [`io`] — text/Parquet/CSV readers of input splits, the Parquet writer.
//! - [`error`] — [`WorkerError`].
//!
//! Layering, from the bottom: `error`, `functions`, `memory`, `io` and [`expr`]; then
//! [`shuffle`]; then [`operators`] (which reads shuffle buckets, and partitions its spills as
//! the shuffle does); then `task_executor` and the services. Nothing in `shuffle` uses
//! `operators`.
//!
//! Nothing here depends on the coordinator crate: the two share only `quiver-proto` and
//! `quiver-plan`.

pub mod cluster_trust;
pub mod command_line;
pub mod coordinator_link;
pub mod error;
pub mod expr;
pub mod functions;
pub mod io;
pub mod memory;
pub mod operators;
pub mod process;
pub mod shuffle;
pub mod task_executor;
pub mod worker_service;

pub use error::{Result, WorkerError};
pub use functions::FunctionRegistry;
pub use memory::memory_pool::default_memory_limit;
pub use process::{RunningWorker, WorkerConfig, start};
