//! Coordinator integration tests: stage planning, and the scheduler driven by virtual workers
//! (plain function calls standing in for workers that succeed, fail or vanish).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adaptive_execution;
mod output_commit;
mod placement;
mod resumed_jobs;
mod scheduler;
mod scheduler_policies;
mod stage_planner;
