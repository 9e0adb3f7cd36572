//! The Quiver coordinator: worker registry, stage graphs, scheduling, heartbeats, and the job
//! API.
//!
//! # Layout
//! - `process` — wiring — bind, serve, run the heartbeat monitor; [[`start`]].
//! - `access` — which role (client or worker token) may call which method.
//! - `admission` — the checks a request passes before it changes state: limits on every
//!   number, UUID ids, paths under the allowed roots.
//! - `coordinator_service` — the gRPC `Coordinator` service (decode, check, call, encode).
//! - `coordinator_state` — the scheduler behind its lock, and the dispatch of its actions.
//! - `scheduler` — the core state machine — events in, `Action`s out; no I/O.
//! - `dashboard` — the HTML page and Prometheus `/metrics`, read-only.
//! - `job` — job, stage and task state.
//! - `stage_planner` — cutting a plan into stages at exchanges; input splits.
//! - `job_status` — encoding a job as the `JobStatus` drivers see.
//! - `worker_registry` and `heartbeat_monitor` — worker liveness.
//! - `task_launcher` — how instructions reach workers (a trait, and its gRPC implementation).
//! - `error` — [`CoordinatorError`].
//!
//! # What this crate exports
//! The coordinator as a component: [`start`] with a [`CoordinatorConfig`] and
//! [`SchedulerConfig`] (an in-process coordinator, as `LocalCluster` and the binary use),
//! [`RunningCoordinator`] and [`CoordinatorError`]. Everything else is `pub(crate)`. The
//! feature `internals` makes `admission`, `job`, `scheduler` and `stage_planner` public for
//! integration tests; they are not a stable API.
//!
//! The coordinator never carries bulk data and never depends on the worker crate.

#![cfg_attr(not(feature = "internals"), warn(missing_docs))]

mod access;
mod coordinator_service;
mod coordinator_state;
mod dashboard;
mod error;
mod heartbeat_monitor;
mod job_status;
mod process;
mod task_launcher;
mod worker_registry;

// Internal, public only for tests (feature `internals`): this crate's, and the SDK's test of
// what job options mean on both sides of the wire.
#[cfg(feature = "internals")]
pub mod admission;
#[cfg(not(feature = "internals"))]
mod admission;
#[cfg(feature = "internals")]
pub mod job;
#[cfg(not(feature = "internals"))]
mod job;
#[cfg(feature = "internals")]
pub mod scheduler;
#[cfg(not(feature = "internals"))]
mod scheduler;
#[cfg(feature = "internals")]
pub mod stage_planner;
#[cfg(not(feature = "internals"))]
mod stage_planner;

pub use error::{CoordinatorError, Result};
pub use process::{CoordinatorConfig, RunningCoordinator, start};
pub use scheduler::SchedulerConfig;
