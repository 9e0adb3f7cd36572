//! Builds a pull-based iterator of batches from a stage's [`PlanNode`] tree.
//!
//! Each task runs its pipeline on one rayon thread. Each node becomes its operator (one file
//! each in [`crate::operators`]) over the streams of its inputs: sources read files or shuffle
//! buckets, narrow operators transform batch by batch, and an aggregation, a sort or a join's
//! build side consume their whole input before they emit. Every operator checks for
//! cancellation between batches. The plan is executed as it is: decisions such as fusing a
//! filter into a partial aggregation were made by the coordinator's planner.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quiver_plan::{AggregateMode, FileSplit, PlanError, PlanNode, ShuffleInput, StageId};

pub use super::batch_stream::BatchIter;
use super::dictionary_keys::scan_with_dictionary_keys;
use super::explode::explode;
use super::filter::filter;
use super::flat_map::flat_map;
use super::hash_aggregate::{HashAggregate, aggregate_stream};
use super::hash_join::{HashJoinStream, JoinSpec};
use super::limit::limit;
use super::map_batches::map_batches;
use super::project::project;
use super::sample::{RowSampler, sample_stream};
use std::ops::Range;

use super::scan::scan_in;
use super::sort::{SortBuffer, sort_stream};
use super::stage_read::stage_read;
use super::union::union_input;
use crate::error::{Result, WorkerError};
use crate::functions::FunctionRegistry;
use crate::io::input_storage::InputStorage;
use crate::memory::memory_pool::TaskMemory;
use crate::memory::spill::SpillDir;
use crate::shuffle::shuffle_reader::ShuffleReadContext;

/// Everything a pipeline reads besides its plan.
#[derive(Clone)]
pub struct PipelineContext {
    pub splits: Vec<FileSplit>,
    pub inputs: Vec<ShuffleInput>,
    pub batch_size: usize,
    pub cancelled: Arc<AtomicBool>,
    /// The task's partition of its stage (within a union, of the union's input it runs): its
    /// sample's seed.
    pub partition: u32,
    /// The buckets it reads of every shuffle: its partition's, or a run of adjacent ones when
    /// the coordinator coalesced the stage's partitions.
    pub buckets: Range<u32>,
    pub shuffle: ShuffleReadContext,
    pub functions: Arc<FunctionRegistry>,
    /// The task's share of the worker's memory budget.
    pub memory: TaskMemory,
    /// Where the task's operators spill; removed when the task ends.
    pub spill: Arc<SpillDir>,
    /// Where input splits named by URL are read from (the worker's stores, the job's options).
    pub storage: InputStorage,
}

/// All output of `stage`, a one-bucket stage (every map task's bucket 0): a sample.
pub fn read_broadcast(stage: StageId, ctx: &PipelineContext) -> Result<BatchIter> {
    super::stage_read::read_broadcast(&ctx.shuffle, &ctx.inputs, stage, 1)
}

/// The batches `node` produces for this task.
pub fn build(node: &PlanNode, ctx: &Arc<PipelineContext>) -> Result<BatchIter> {
    let cancelled = || ctx.cancelled.clone();
    Ok(match node {
        PlanNode::Scan(s) => scan_in(
            s,
            ctx.splits.clone(),
            ctx.batch_size,
            cancelled(),
            ctx.storage.clone(),
        ),
        PlanNode::StageRead(read) => stage_read(
            read,
            &ctx.shuffle,
            &ctx.inputs,
            ctx.buckets.clone(),
            cancelled(),
        )?,
        PlanNode::Union { inputs, partitions } => {
            // This task runs the input its partition falls in, as that input's partition.
            let (input, partition) = union_input(inputs, partitions, ctx.partition)?;
            let sub = PipelineContext {
                partition,
                buckets: partition..partition + 1,
                ..PipelineContext::clone(ctx)
            };
            return build(input, &Arc::new(sub));
        }
        PlanNode::Filter { input, predicate } => filter(
            build(input, ctx)?,
            predicate.clone(),
            ctx.functions.clone(),
            cancelled(),
        ),
        PlanNode::Project { input, exprs } => project(
            build(input, ctx)?,
            exprs.clone(),
            node.schema()?,
            ctx.functions.clone(),
            cancelled(),
        ),
        PlanNode::Explode { input, column } => explode(
            build(input, ctx)?,
            column.clone(),
            node.schema()?,
            cancelled(),
        ),
        PlanNode::Limit { input, n } => limit(build(input, ctx)?, *n, cancelled()),
        PlanNode::MapBatches {
            input, function, ..
        } => map_batches(
            build(input, ctx)?,
            function.clone(),
            ctx.functions.clone(),
            cancelled(),
        ),
        PlanNode::FlatMap {
            input, function, ..
        } => flat_map(
            build(input, ctx)?,
            function.clone(),
            ctx.functions.clone(),
            cancelled(),
        ),
        PlanNode::Sample { input, rows } => sample_stream(
            RowSampler::new(input.schema()?, *rows as usize, u64::from(ctx.partition)),
            build(input, ctx)?,
            cancelled(),
        ),
        PlanNode::Sort {
            input,
            order,
            limit,
        } => {
            let sort = SortBuffer::new(
                input.schema()?,
                order.clone(),
                *limit,
                ctx.functions.clone(),
                ctx.memory.reservation(),
                ctx.spill.clone(),
            )?;
            sort_stream(sort, build(input, ctx)?, ctx.batch_size, cancelled())
        }
        PlanNode::Aggregate {
            input,
            keys,
            aggregates,
            mode,
            filter,
        } => {
            let aggregate = HashAggregate::new(
                &input.schema()?,
                keys.clone(),
                aggregates.clone(),
                *mode,
                node.schema()?,
                ctx.functions.clone(),
                ctx.memory.reservation(),
                ctx.spill.clone(),
            )?;
            // A scan right below reads the string keys as dictionaries where it can.
            let source = match input.as_ref() {
                PlanNode::Scan(scan) if *mode != AggregateMode::Final => {
                    scan_with_dictionary_keys(scan, keys, aggregates, filter.as_ref())
                        .map(|scan| build(&PlanNode::Scan(scan), ctx))
                }
                _ => None,
            };
            aggregate_stream(
                aggregate,
                match source {
                    Some(source) => source?,
                    None => build(input, ctx)?,
                },
                filter.clone(),
                ctx.functions.clone(),
                ctx.batch_size,
                cancelled(),
            )
        }
        PlanNode::Join {
            left,
            right,
            left_keys,
            right_keys,
            join_type,
            ..
        } => {
            let spec = JoinSpec {
                left_schema: left.schema()?,
                right_schema: right.schema()?,
                left_keys: left_keys.clone(),
                right_keys: right_keys.clone(),
                join_type: *join_type,
                functions: ctx.functions.clone(),
                batch_size: ctx.batch_size,
                cancelled: cancelled(),
            };
            Box::new(HashJoinStream::new(
                spec,
                build(left, ctx)?,
                build(right, ctx)?,
                Some(ctx.memory.reservation()),
                ctx.spill.clone(),
            )?)
        }
        PlanNode::Repartition { .. } => {
            return Err(WorkerError::Plan(PlanError::InvalidPlan(
                "a repartition must be cut into a shuffle by the coordinator".into(),
            )));
        }
    })
}
