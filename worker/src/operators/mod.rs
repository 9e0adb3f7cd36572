//! Operators over Arrow batches, one file each, and the pipeline that chains them for one task.
//!
//! # Layout
//! - [`pipeline`] — turns a stage plan into a stream of batches, one operator per node.
//! - [`batch_stream`] — the stream type operators pass each other, and their cancellation
//!   check (every operator makes it between batches).
//! - Sources: [`scan`] (input splits), [`stage_read`] (shuffle and broadcast reads).
//! - Batch by batch: [`filter`], [`project`], [`explode`], [`limit`], [`map_batches`],
//!   [`flat_map`].
//! - Whole input: [`hash_aggregate`] (with [`group_keys`], [`int64_keys`], [`packed_keys`] and
//!   [`accumulators`]; [`dictionary_keys`] picks the string keys its scan reads as
//!   dictionaries), [`hash_join`], [`sort`], [`sample`].
//! - [`union`] — which of a union's inputs a task runs.
//!
//! Expressions are evaluated by [`crate::expr`], below both the operators and the shuffle.

pub mod accumulators;
pub mod batch_stream;
pub mod dictionary_keys;
pub mod explode;
pub mod filter;
pub mod flat_map;
pub mod group_keys;
pub mod hash_aggregate;
pub mod hash_join;
pub mod int64_keys;
pub mod limit;
pub mod map_batches;
pub mod packed_keys;
pub mod pipeline;
pub mod project;
pub mod sample;
pub mod scan;
pub mod sort;
pub mod stage_read;
pub mod union;
