//! The Quiver coordinator: worker registry, stage graphs, scheduling, heartbeats, and the job
//! API.
//!
//! # Layout
//! - [`process`] — wiring — bind, serve, run the heartbeat monitor; [`process::start`].
//! - [`access`] — which role (client or worker token) may call which method.
//! - [`admission`] — the checks a request passes before it changes state: limits on every
//!   number, UUID ids, paths under the allowed roots.
//! - [`coordinator_service`] — the gRPC `Coordinator` service (decode, check, call, encode).
//! - [`coordinator_state`] — the scheduler behind its lock, the clock, workers' session keys,
//!   and the dispatch of its actions; [`coordinator_state::CoordinatorState::handle`] is how
//!   an event gets in.
//! - [`event`] — [`event::Event`]s as plain data, the [`event::Timestamp`] that comes with each,
//!   and the [`event::Outcome`] of handling one.
//! - [`scheduler`] — the core state machine — [`scheduler::Scheduler::handle`]: an event and
//!   the time in, [`scheduler::Action`]s and a reply out; no I/O, no clocks.
//! - [`worker_registry`] — the one owner of worker state (liveness, heartbeats, draining,
//!   exclusions), inside the scheduler.
//! - [`placement`] — which worker's free slot a task gets; [`speculation`] — backups of
//!   stragglers; [`scheduler_config`] — their settings.
//! - [`dashboard`] — the HTML page and Prometheus `/metrics`, read-only.
//! - [`job`] — job, stage and task state.
//! - [`stage_planner`] — cutting a plan into stages at exchanges; input splits.
//! - [`job_status`] — encoding a job as the `JobStatus` drivers see.
//! - [`heartbeat_monitor`] — the timer that sends the scheduler its ticks.
//! - [`task_launcher`] — how instructions reach workers (a trait, and its gRPC implementation).
//! - [`error`] — [`CoordinatorError`].
//!
//! The coordinator never carries bulk data and never depends on the worker crate.

pub mod access;
pub mod admission;
pub mod coordinator_service;
pub mod coordinator_state;
pub mod dashboard;
pub mod error;
pub mod event;
pub mod heartbeat_monitor;
pub mod job;
pub mod job_status;
pub mod placement;
pub mod process;
pub mod scheduler;
pub mod scheduler_config;
pub mod speculation;
pub mod stage_planner;
pub mod task_launcher;
pub mod worker_registry;

pub use error::{CoordinatorError, Result};
pub use process::{CoordinatorConfig, RunningCoordinator, start};
pub use scheduler::SchedulerConfig;
