//! The Quiver coordinator: worker registry, stage graphs, scheduling, heartbeats, and the job
//! API.
//!
//! # Layout
//! - `process` — wiring — bind, serve, run the heartbeat monitor; [`start`].
//! - `access` — which role (client or worker token) may call which method.
//! - `admission` — the checks a request passes before it changes state: limits on every
//!   number, UUID ids, paths under the allowed roots.
//! - `coordinator_service` — the gRPC `Coordinator` service (decode, check, call, encode).
//! - `coordinator_state` — the scheduler behind its lock, the clock, workers' session keys,
//!   and the dispatch of its actions; `coordinator_state::CoordinatorState::handle` is how
//!   an event gets in.
//! - `event` — `event::Event`s as plain data, the `event::Timestamp` that comes with each,
//!   and the `event::Outcome` of handling one.
//! - `scheduler` — the core state machine — `scheduler::Scheduler::handle`: an event and
//!   the time in, `scheduler::Action`s and a reply out; no I/O, no clocks.
//! - `worker_registry` — the one owner of worker state (liveness, heartbeats, draining,
//!   exclusions), inside the scheduler.
//! - `scheduler_metrics` — the scheduler's counters and histograms (attempts, failures and
//!   retries by reason, shuffle bytes, durations) for `/metrics`.
//! - `placement` — which worker's free slot a task gets; `speculation` — backups of
//!   stragglers; `scheduler_config` — their settings.
//! - `cluster_status` — jobs and workers as clients see them (`ListJobs`, `ListWorkers`,
//!   the dashboard).
//! - `dashboard` — the dashboard's pages (jobs, one job, workers; live by server-sent events)
//!   and Prometheus `/metrics`, read-only.
//! - `job` — job, stage and task state.
//! - `job_log` — the job log in `--state-dir`: records of accepted, started (the shape they
//!   were planned for), committing and finished jobs, read back on start (a torn tail
//!   dropped), compacted; written on a thread of its own.
//! - `stage_planner` — cutting a plan into stages at exchanges; input splits.
//! - `job_status` — encoding a job as the `JobStatus` drivers see.
//! - `heartbeat_monitor` — the timer that sends the scheduler its ticks.
//! - `task_launcher` — how instructions reach workers (a trait, and its gRPC implementation).
//! - `error` — [`CoordinatorError`].
//!
//! # What this crate exports
//! The coordinator as a component: [`start`] with a [`CoordinatorConfig`] and
//! [`SchedulerConfig`] (an in-process coordinator, as `LocalCluster` and the binary use),
//! [`RunningCoordinator`] and [`CoordinatorError`]. Everything else is `pub(crate)`. The
//! feature `internals` makes `adaptive`, `admission`, `event`, `job`, `job_log`, `placement`, `scheduler`,
//! `scheduler_metrics`, `stage_planner` and `worker_registry` public for integration tests
//! (this crate's, and the SDK's test of job options on both sides of the wire); they are not a
//! stable API.
//!
//! The coordinator never carries bulk data and never depends on the worker crate.

#![cfg_attr(not(feature = "internals"), warn(missing_docs))]

mod access;
mod byte_size;
mod cluster_status;
mod coordinator_service;
mod coordinator_state;
mod dashboard;
mod error;
mod heartbeat_monitor;
mod job_output;
mod job_status;
mod process;
mod scheduler_config;
mod speculation;
mod task_launcher;

// Internal, public only for integration tests (feature `internals`).
#[cfg(feature = "internals")]
pub mod adaptive;
#[cfg(not(feature = "internals"))]
mod adaptive;
#[cfg(feature = "internals")]
pub mod admission;
#[cfg(not(feature = "internals"))]
mod admission;
#[cfg(not(feature = "internals"))]
mod attempt_history;
#[cfg(feature = "internals")]
pub mod attempt_history;
#[cfg(feature = "internals")]
pub mod event;
#[cfg(not(feature = "internals"))]
mod event;
#[cfg(feature = "internals")]
pub mod job;
#[cfg(not(feature = "internals"))]
mod job;
#[cfg(feature = "internals")]
pub mod job_log;
#[cfg(not(feature = "internals"))]
mod job_log;
#[cfg(feature = "internals")]
pub mod placement;
#[cfg(not(feature = "internals"))]
mod placement;
#[cfg(feature = "internals")]
pub mod scheduler;
#[cfg(not(feature = "internals"))]
mod scheduler;
#[cfg(feature = "internals")]
pub mod scheduler_metrics;
#[cfg(not(feature = "internals"))]
mod scheduler_metrics;
#[cfg(feature = "internals")]
pub mod stage_planner;
#[cfg(not(feature = "internals"))]
mod stage_planner;
#[cfg(feature = "internals")]
pub mod worker_registry;
#[cfg(not(feature = "internals"))]
mod worker_registry;

pub use error::{CoordinatorError, Result};
pub use process::{CoordinatorConfig, RunningCoordinator, start};
pub use scheduler_config::SchedulerConfig;
