//! Operators over Arrow batches and the pipeline that chains them for one task.

pub mod accumulators;
pub mod group_keys;
pub mod hash_aggregate;
pub mod hash_join;
pub mod packed_keys;
pub mod pipeline;
pub mod sample;
pub mod sort;
