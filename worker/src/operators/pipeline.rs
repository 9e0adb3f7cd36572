//! Builds a pull-based iterator of batches from a stage's [`PlanNode`] tree.
//!
//! Each task runs its pipeline on one rayon thread: sources read files or shuffle buckets,
//! narrow operators transform batch by batch, and an aggregation, a sort or a join's build
//! side consume their whole input before they emit. Cancellation is checked between batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use quiver_plan::{FileSplit, PlanNode, ShuffleInput, SourceFormat, StageRead};

use super::hash_aggregate::HashAggregate;
use super::hash_join::{HashJoinStream, JoinSpec};
use super::sample::RowSampler;
use super::sort::SortBuffer;
use crate::error::{Result, WorkerError};
use crate::expr::expr_eval::{evaluate, filter, predicate_mask};
use crate::functions::FunctionRegistry;
use crate::io::{csv_reader, parquet_reader, text_reader::TextSplitReader};
use crate::memory::memory_pool::TaskMemory;
use crate::memory::spill::SpillDir;
use crate::shuffle::shuffle_reader::{ShuffleReadContext, read_bucket, read_shuffle};

/// A stream of batches produced on the task's thread.
pub type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// Everything a pipeline reads besides its plan.
#[derive(Clone)]
pub struct PipelineContext {
    pub splits: Vec<FileSplit>,
    pub inputs: Vec<ShuffleInput>,
    pub batch_size: usize,
    pub cancelled: Arc<AtomicBool>,
    pub shuffle: ShuffleReadContext,
    pub functions: Arc<FunctionRegistry>,
    /// The task's share of the worker's memory budget.
    pub memory: TaskMemory,
    /// Where the task's operators spill; removed when the task ends.
    pub spill: Arc<SpillDir>,
}

impl PipelineContext {
    fn check_cancelled(&self) -> Result<()> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(WorkerError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// The shuffle input of `stage` in this task's definition.
fn shuffle_input<'a>(
    ctx: &'a PipelineContext,
    stage: &quiver_plan::StageId,
) -> Result<&'a ShuffleInput> {
    ctx.inputs
        .iter()
        .find(|i| i.stage == *stage)
        .ok_or_else(|| {
            WorkerError::Plan(quiver_plan::PlanError::InvalidPlan(format!(
                "task has no shuffle input locations for stage {stage}"
            )))
        })
}

/// All output of `stage` (bucket 0 of every map task): a broadcast join side or a sample.
pub fn read_broadcast(stage: quiver_plan::StageId, ctx: &PipelineContext) -> Result<BatchIter> {
    Ok(read_bucket(&ctx.shuffle, shuffle_input(ctx, &stage)?, 0))
}

/// Runs `work` when the first batch is asked for, then yields the batches it returned.
fn deferred(work: impl FnOnce() -> Result<Vec<RecordBatch>> + Send + 'static) -> BatchIter {
    Box::new(
        std::iter::once_with(work).flat_map(|r| -> Vec<Result<RecordBatch>> {
            match r {
                Ok(batches) => batches.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            }
        }),
    )
}

/// The batches `node` produces for this task.
pub fn build(node: &PlanNode, ctx: &Arc<PipelineContext>) -> Result<BatchIter> {
    Ok(match node {
        PlanNode::Scan(scan) => {
            let schema = scan.schema.clone();
            let format = scan.format;
            let csv = scan.csv.clone();
            let batch_size = ctx.batch_size;
            let splits = ctx.splits.clone();
            Box::new(splits.into_iter().flat_map(move |split| -> BatchIter {
                let opened: Result<BatchIter> = match format {
                    SourceFormat::Text => TextSplitReader::open(&split, schema.clone(), batch_size)
                        .map(|r| Box::new(r) as BatchIter),
                    SourceFormat::Parquet => {
                        parquet_reader::read_parquet_split(&split, schema.clone(), batch_size)
                            .map(|r| Box::new(r) as BatchIter)
                    }
                    SourceFormat::Csv => {
                        csv_reader::read_csv_split(&split, schema.clone(), &csv, batch_size)
                            .map(|r| Box::new(r) as BatchIter)
                    }
                };
                opened.unwrap_or_else(|e| Box::new(std::iter::once(Err(e))))
            }))
        }
        PlanNode::StageRead(StageRead::Shuffle { stage, .. }) => {
            read_shuffle(&ctx.shuffle, shuffle_input(ctx, stage)?)
        }
        PlanNode::StageRead(StageRead::Broadcast { stage, .. }) => read_broadcast(*stage, ctx)?,
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
                cancelled: ctx.cancelled.clone(),
            };
            Box::new(HashJoinStream::new(
                spec,
                build(left, ctx)?,
                build(right, ctx)?,
                Some(ctx.memory.reservation()),
                ctx.spill.clone(),
            )?)
        }
        PlanNode::Sort {
            input,
            order,
            limit,
        } => {
            let mut sort = SortBuffer::new(
                input.schema()?,
                order.clone(),
                *limit,
                ctx.functions.clone(),
                ctx.memory.reservation(),
                ctx.spill.clone(),
            )?;
            let mut source = build(input, ctx)?;
            let (ctx2, batch_size) = (ctx.clone(), ctx.batch_size);
            let run = move || -> Result<BatchIter> {
                for b in source.by_ref() {
                    ctx2.check_cancelled()?;
                    sort.push(b?)?;
                }
                sort.finish(batch_size)
            };
            Box::new(std::iter::once_with(run).flat_map(|r| -> BatchIter {
                match r {
                    Ok(batches) => batches,
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            }))
        }
        PlanNode::Sample { input, rows } => {
            let seed = u64::from(ctx.shuffle.bucket);
            let mut sampler = RowSampler::new(input.schema()?, *rows as usize, seed);
            let mut source = build(input, ctx)?;
            let ctx2 = ctx.clone();
            deferred(move || {
                for b in source.by_ref() {
                    ctx2.check_cancelled()?;
                    sampler.push(&b?)?;
                }
                sampler.finish()
            })
        }
        PlanNode::Union { inputs, partitions } => {
            // This task runs the input its partition falls in, as that input's partition.
            let mut offset = 0;
            let task = ctx.shuffle.bucket;
            for (input, &count) in inputs.iter().zip(partitions) {
                if task < offset + count {
                    let mut sub = PipelineContext::clone(ctx);
                    sub.shuffle.bucket = task - offset;
                    return build(input, &Arc::new(sub));
                }
                offset += count;
            }
            return Err(WorkerError::Plan(quiver_plan::PlanError::InvalidPlan(
                format!("task {task} is beyond the union's {offset} partitions"),
            )));
        }
        PlanNode::Filter { input, predicate } => {
            let predicate = predicate.clone();
            let ctx2 = ctx.clone();
            Box::new(build(input, ctx)?.filter_map(move |b| {
                let out = b.and_then(|b| {
                    ctx2.check_cancelled()?;
                    filter(&b, &predicate, &ctx2.functions)
                });
                match out {
                    Ok(b) if b.num_rows() == 0 => None,
                    other => Some(other),
                }
            }))
        }
        PlanNode::Project {
            input: child,
            exprs,
        } => {
            let schema = node.schema()?;
            let exprs = exprs.clone();
            let functions = ctx.functions.clone();
            Box::new(build(child, ctx)?.map(move |b| {
                let b = b?;
                let columns = exprs
                    .iter()
                    .map(|e| evaluate(e, &b, &functions))
                    .collect::<Result<Vec<_>>>()?;
                Ok(RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &arrow::record_batch::RecordBatchOptions::new()
                        .with_row_count(Some(b.num_rows())),
                )?)
            }))
        }
        PlanNode::Explode { input, column } => {
            let schema = node.schema()?;
            let column = column.clone();
            Box::new(build(input, ctx)?.filter_map(move |b| {
                match b.and_then(|b| explode(&b, &column, &schema)) {
                    Ok(b) if b.num_rows() == 0 => None,
                    other => Some(other),
                }
            }))
        }
        PlanNode::Limit { input, n } => {
            let mut source = build(input, ctx)?;
            let mut remaining = usize::try_from(*n).unwrap_or(usize::MAX);
            // Stops pulling from its input once it has enough: files are not read further.
            Box::new(std::iter::from_fn(move || {
                while remaining > 0 {
                    match source.next()? {
                        Err(e) => return Some(Err(e)),
                        Ok(b) if b.num_rows() == 0 => continue,
                        Ok(b) => {
                            let take = b.num_rows().min(remaining);
                            remaining -= take;
                            return Some(Ok(b.slice(0, take)));
                        }
                    }
                }
                None
            }))
        }
        PlanNode::Repartition { .. } => {
            return Err(WorkerError::Plan(quiver_plan::PlanError::InvalidPlan(
                "a repartition must be cut into a shuffle by the coordinator".into(),
            )));
        }
        PlanNode::MapBatches {
            input, function, ..
        } => {
            let (functions, function) = (ctx.functions.clone(), function.clone());
            Box::new(build(input, ctx)?.map(move |b| functions.eval_batch(&function, b?)))
        }
        PlanNode::FlatMap {
            input, function, ..
        } => {
            let (functions, function) = (ctx.functions.clone(), function.clone());
            Box::new(build(input, ctx)?.filter_map(move |b| {
                match b.and_then(|b| functions.eval_flat_map(&function, &b)) {
                    Ok(b) if b.num_rows() == 0 => None,
                    other => Some(other),
                }
            }))
        }
        PlanNode::Aggregate {
            input,
            keys,
            aggregates,
            mode,
            filter,
        } => {
            let input_schema = input.schema()?;
            let output_schema = node.schema()?;
            let aggregate = HashAggregate::new(
                &input_schema,
                keys.clone(),
                aggregates.clone(),
                *mode,
                output_schema,
                ctx.functions.clone(),
                ctx.memory.reservation(),
                ctx.spill.clone(),
            )?;
            // A filter the planner fused into the aggregation: rows it drops are skipped.
            let (mut source, fused_filter) = (build(input, ctx)?, filter.clone());
            let ctx2 = ctx.clone();
            let batch_size = ctx.batch_size;
            // Pulls the whole input (passing on what a partial aggregation emits early to
            // stay within its memory), then the groups.
            let mut aggregate = Some(aggregate);
            let mut pending: std::collections::VecDeque<RecordBatch> = Default::default();
            let mut output: Option<BatchIter> = None;
            Box::new(std::iter::from_fn(move || {
                loop {
                    if let Some(b) = pending.pop_front() {
                        return Some(Ok(b));
                    }
                    if let Some(out) = output.as_mut() {
                        return out.next();
                    }
                    let agg = aggregate.as_mut()?;
                    match source.next() {
                        Some(b) => {
                            let step =
                                ctx2.check_cancelled()
                                    .and(b)
                                    .and_then(|b| match &fused_filter {
                                        Some(predicate) => {
                                            let mask =
                                                predicate_mask(&b, predicate, &ctx2.functions)?;
                                            agg.push_selected(&b, &mask)
                                        }
                                        None => agg.push(&b),
                                    });
                            match step {
                                Ok(early) => pending.extend(early),
                                Err(e) => {
                                    aggregate = None;
                                    return Some(Err(e));
                                }
                            }
                        }
                        None => match aggregate.take()?.finish(batch_size) {
                            Ok(out) => output = Some(out),
                            Err(e) => return Some(Err(e)),
                        },
                    }
                }
            }))
        }
    })
}

/// One row per element of the list column `column`, other columns repeated.
fn explode(batch: &RecordBatch, column: &str, schema: &SchemaRef) -> Result<RecordBatch> {
    let index = batch.schema().index_of(column)?;
    let list = batch.column(index).as_list::<i32>();
    let offsets = list.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[list.len()] as usize);
    let only_column = batch.num_columns() == 1;
    if list.null_count() == 0 && only_column {
        // The common case (word count): the exploded column is just the list's values.
        let values = list.values().slice(first, last - first);
        return Ok(RecordBatch::try_new(schema.clone(), vec![values])?);
    }
    let mut rows = Vec::with_capacity(last - first);
    let mut elements = Vec::with_capacity(last - first);
    for i in 0..list.len() {
        if list.is_valid(i) {
            for e in offsets[i]..offsets[i + 1] {
                rows.push(i as u32);
                elements.push(e as u32);
            }
        }
    }
    let (rows, elements) = (UInt32Array::from(rows), UInt32Array::from(elements));
    let columns = (0..batch.num_columns())
        .map(|c| -> Result<ArrayRef> {
            Ok(if c == index {
                take(list.values().as_ref(), &elements, None)?
            } else {
                take(batch.column(c).as_ref(), &rows, None)?
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
