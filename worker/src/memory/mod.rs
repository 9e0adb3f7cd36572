//! Memory: the worker's budget for operator state, and spilling to local disk when a task
//! would go over it.
//!
//! - [`memory_pool`] — the worker-wide [`memory_pool::MemoryPool`] (`--memory-limit`), each
//!   task's share of it, and the reservations operators hold against that share.
//! - [`spill`] — writing batches to a task's spill directory as Arrow IPC and reading them
//!   back; the directory is removed when the task ends, whether it succeeded or not.
//!
//! Operators that hold a whole input (hash aggregation, a join's build side, a sort, the
//! shuffle writer's buckets) reserve what they hold; when a reservation is refused they spill
//! and carry on. Nothing here knows about operators.

pub mod memory_pool;
pub mod spill;
