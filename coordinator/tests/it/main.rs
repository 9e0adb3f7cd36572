//! Coordinator integration tests: stage planning, and the scheduler driven by virtual workers
//! (plain function calls standing in for workers that succeed, fail or vanish).

mod scheduler;
mod stage_planner;
