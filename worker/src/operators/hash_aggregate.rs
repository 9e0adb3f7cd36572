//! [`HashAggregate`]: group-by with aggregates, in any of the three modes (single, partial
//! before a shuffle, final after it). It consumes its whole input, then emits one row per
//! group in batches; [`aggregate_stream`] runs one over its input stream.
//!
//! The groups are held against the task's memory budget. When the budget refuses more:
//! - a partial aggregation emits what it has and starts over: the final step merges
//!   repeated keys anyway, so this costs only some shuffle bytes;
//! - a final (or single) aggregation writes its groups, as partial states, into spill files
//!   partitioned by a hash of the key, and starts over. At the end the groups in memory are
//!   spilled too, and each spill partition (a fraction of the keys) is aggregated on its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use quiver_plan::{AggregateExpr, AggregateFunction, AggregateMode, Expr};

use super::accumulators::{Accumulator, rows_per_group, sums_per_group};
use super::batch_stream::{BatchIter, cancellable, check_cancelled};
use super::group_keys::GroupKeys;
use crate::error::Result;
use crate::expr::expr_eval::{evaluate, evaluate_shared, predicate_mask};
use crate::functions::FunctionRegistry;
use crate::memory::memory_pool::MemoryReservation;
use crate::memory::spill::{SpillDir, SpillRun, SpillWriter};
use crate::shuffle::hash_partitioner::HashPartitioner;

/// How many files a spilling final aggregation splits its keys into.
const SPILL_PARTITIONS: u32 = 16;
/// Remixes the key hash for spill partitions (any constant other than 0).
const SPILL_SEED: u64 = 0x51_7C_C1_B7_27_22_0A_95;

/// Batches out of an aggregation.
pub type AggregateOutput = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// The open spill files of a final aggregation, one per key partition.
struct AggregateSpill {
    partitioner: HashPartitioner,
    writers: Vec<SpillWriter>,
    state_schema: SchemaRef,
}

/// Hash aggregation state of one task.
pub struct HashAggregate {
    keys: Vec<Expr>,
    aggregates: Vec<AggregateExpr>,
    mode: AggregateMode,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    key_types: Vec<DataType>,
    /// The type of each aggregate's final value (what its accumulator is built for).
    single_types: Vec<DataType>,
    groups: GroupKeys,
    accumulators: Vec<Accumulator>,
    /// Reused between batches: the group index of each input row.
    group_ids: Vec<u32>,
    /// Reused between batches (not in final mode): the batch's row count in each group.
    rows_per_group: Vec<i64>,
    /// With a fused filter ([`HashAggregate::push_selected`]): which groups have a selected
    /// row. Rows that are not selected still find (or make) their group, so that no batch
    /// is copied to drop them; groups only they made are left out of the output.
    live: Vec<bool>,
    functions: Arc<FunctionRegistry>,
    memory: MemoryReservation,
    spill_dir: Arc<SpillDir>,
    spill: Option<AggregateSpill>,
}

impl HashAggregate {
    /// `input_schema` is what arrives; `output_schema` what the plan says this node produces.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input_schema: &SchemaRef,
        keys: Vec<Expr>,
        aggregates: Vec<AggregateExpr>,
        mode: AggregateMode,
        output_schema: SchemaRef,
        functions: Arc<FunctionRegistry>,
        memory: MemoryReservation,
        spill_dir: Arc<SpillDir>,
    ) -> Result<Self> {
        let key_types = keys
            .iter()
            .map(|k| k.data_type(input_schema, "group_by"))
            .collect::<quiver_plan::Result<Vec<_>>>()?;
        // Final outputs are the single-mode output types; in partial mode the state columns
        // of sum/min/max/count carry the final type too, and mean is built from sum + count.
        let single_types: Vec<_> = match mode {
            AggregateMode::Final => {
                let offset = keys.len();
                aggregates
                    .iter()
                    .enumerate()
                    .map(|(i, _)| output_schema.field(offset + i).data_type().clone())
                    .collect()
            }
            _ => aggregates
                .iter()
                .map(|a| a.output_type(input_schema))
                .collect::<quiver_plan::Result<_>>()?,
        };
        let mut aggregate = HashAggregate {
            groups: GroupKeys::new(&key_types)?,
            accumulators: vec![],
            key_types,
            single_types,
            keys,
            aggregates,
            mode,
            input_schema: input_schema.clone(),
            output_schema,
            group_ids: Vec::new(),
            rows_per_group: Vec::new(),
            live: Vec::new(),
            functions,
            memory,
            spill_dir,
            spill: None,
        };
        aggregate.accumulators = aggregate.new_accumulators();
        Ok(aggregate)
    }

    fn new_accumulators(&self) -> Vec<Accumulator> {
        self.aggregates
            .iter()
            .zip(&self.single_types)
            .map(|(a, t)| Accumulator::new(a.function, t))
            .collect()
    }

    /// Roughly the bytes the groups and their accumulators hold.
    fn held_bytes(&self) -> usize {
        self.groups.allocated_bytes() + self.groups.len() * 16 * self.accumulators.len().max(1)
    }

    /// Adds one input batch. Returns batches a partial aggregation emitted early to stay
    /// within its memory budget (usually none).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        self.push_rows(batch, None)
    }

    /// Adds the rows of `batch` that `selected` marks true (a filter fused into the
    /// aggregation: the rows are skipped, not copied out). Only for partial aggregations,
    /// and then for every batch of the task.
    pub fn push_selected(
        &mut self,
        batch: &RecordBatch,
        selected: &BooleanArray,
    ) -> Result<Vec<RecordBatch>> {
        debug_assert_eq!(self.mode, AggregateMode::Partial);
        self.push_rows(batch, Some(selected))
    }

    fn push_rows(
        &mut self,
        batch: &RecordBatch,
        selected: Option<&BooleanArray>,
    ) -> Result<Vec<RecordBatch>> {
        self.update(batch, selected)?;
        let held = self.held_bytes();
        if self.memory.try_resize(held) || self.groups.len() <= 1 {
            return Ok(vec![]);
        }
        if self.mode == AggregateMode::Partial {
            let out = self.take_output(usize::MAX)?;
            self.memory.resize(self.held_bytes());
            return Ok(out);
        }
        self.spill_groups()?;
        self.memory.resize(self.held_bytes());
        Ok(vec![])
    }

    fn update(&mut self, batch: &RecordBatch, selected: Option<&BooleanArray>) -> Result<()> {
        let key_arrays = self
            .keys
            .iter()
            .map(|k| evaluate(k, batch, &self.functions))
            .collect::<Result<Vec<_>>>()?;
        self.groups
            .intern(&key_arrays, batch.num_rows(), &mut self.group_ids)?;
        let n_groups = self.groups.len();
        // Rows a fused filter drops go to one extra group past the end, cut off below.
        let slots = match selected {
            Some(selected) => {
                // NULL counts as false.
                let keep = match selected.nulls() {
                    Some(nulls) => selected.values() & nulls.inner(),
                    None => selected.values().clone(),
                };
                // Filters mostly keep rows (Q1: 98%): visit only the dropped ones.
                let dropped = n_groups as u32;
                for i in (!&keep).set_indices() {
                    self.group_ids[i] = dropped;
                }
                n_groups + 1
            }
            None => n_groups,
        };
        // Work per group instead of per row only while the groups are few beside the
        // batch's rows (Q1: 4 groups); with many (a join's customers: hundreds of thousands)
        // every batch would touch all of them.
        let per_group = slots <= batch.num_rows();
        if self.mode != AggregateMode::Final {
            if per_group {
                rows_per_group(&self.group_ids, slots, &mut self.rows_per_group);
            }
            if selected.is_some() {
                self.live.resize(n_groups, false);
                if per_group {
                    for (live, &n) in self.live.iter_mut().zip(&self.rows_per_group) {
                        *live |= n > 0;
                    }
                } else {
                    // Dropped rows point one past the live groups.
                    for &g in &self.group_ids {
                        if let Some(live) = self.live.get_mut(g as usize) {
                            *live = true;
                        }
                    }
                }
            }
        }
        let rows = per_group.then_some(self.rows_per_group.as_slice());
        // The aggregates' inputs, evaluated together so that they share subexpressions.
        let inputs: Vec<&Expr> = match self.mode {
            AggregateMode::Final => vec![],
            _ => self
                .aggregates
                .iter()
                .filter_map(|a| a.input.as_ref())
                .collect(),
        };
        let values = evaluate_shared(&inputs, batch, &self.functions)?;
        // Per-group sums of a Float64 input, by the index of its first occurrence in `inputs`.
        let mut group_sums: Vec<(usize, Vec<f64>)> = Vec::new();
        let mut next_input = 0;
        let mut state_column = self.keys.len();
        for (acc, agg) in self.accumulators.iter_mut().zip(&self.aggregates) {
            acc.resize(slots);
            match self.mode {
                AggregateMode::Final => {
                    let width = if agg.function == AggregateFunction::Mean {
                        2
                    } else {
                        1
                    };
                    let states = &batch.columns()[state_column..state_column + width];
                    acc.merge(&self.group_ids, states)?;
                    state_column += width;
                }
                AggregateMode::Single | AggregateMode::Partial => {
                    let Some(i) = agg.input.as_ref().map(|_| next_input) else {
                        acc.update(&self.group_ids, rows, None)?;
                        continue;
                    };
                    next_input += 1;
                    let value = &values[i];
                    let Some(rows) = rows.filter(|_| {
                        acc.takes_group_sums()
                            && value.data_type() == &DataType::Float64
                            && value.null_count() == 0
                    }) else {
                        acc.update(&self.group_ids, rows, Some(value))?;
                        continue;
                    };
                    let first = inputs.iter().position(|e| *e == inputs[i]).unwrap_or(i);
                    let at = match group_sums.iter().position(|(j, _)| *j == first) {
                        Some(at) => at,
                        None => {
                            let floats = value.as_primitive::<Float64Type>().values();
                            group_sums
                                .push((first, sums_per_group(&self.group_ids, floats, slots)));
                            group_sums.len() - 1
                        }
                    };
                    acc.add_group_sums(&group_sums[at].1, rows);
                }
            }
        }
        if slots > n_groups {
            self.accumulators
                .iter_mut()
                .for_each(|a| a.resize(n_groups));
        }
        Ok(())
    }

    /// The groups as batches (final values, or partial states in partial mode) and a fresh,
    /// empty table.
    fn take_output(&mut self, batch_size: usize) -> Result<Vec<RecordBatch>> {
        let states = self.mode == AggregateMode::Partial;
        let schema = self.output_schema.clone();
        self.take_batches(states, &schema, batch_size)
    }

    fn take_batches(
        &mut self,
        states: bool,
        schema: &SchemaRef,
        batch_size: usize,
    ) -> Result<Vec<RecordBatch>> {
        let n_groups = self.groups.len();
        let groups = std::mem::replace(&mut self.groups, GroupKeys::new(&self.key_types)?);
        let mut accumulators = self.new_accumulators();
        std::mem::swap(&mut accumulators, &mut self.accumulators);
        for acc in &mut accumulators {
            acc.resize(n_groups);
        }
        let mut columns: Vec<ArrayRef> = groups.into_arrays()?;
        for (acc, aggregate) in accumulators.iter().zip(&self.aggregates) {
            if states {
                columns.extend(acc.state(&aggregate.name)?);
            } else {
                columns.push(acc.finish(&aggregate.name)?);
            }
        }
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                Ok(if c.data_type() == f.data_type() {
                    c
                } else {
                    cast(&c, f.data_type())?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut all = RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n_groups)),
        )?;
        let live = std::mem::take(&mut self.live);
        if live.len() == n_groups && live.contains(&false) {
            all = filter_record_batch(&all, &BooleanArray::from(live))?;
        }
        let n_groups = all.num_rows();
        let batch_size = batch_size.max(1);
        Ok((0..n_groups)
            .step_by(batch_size)
            .map(|start| all.slice(start, batch_size.min(n_groups - start)))
            .collect())
    }

    /// The schema of partial states: keys, then each aggregate's state columns, as the plan
    /// lays them out (`AggregateExpr::state_fields`). A final aggregation's input already is
    /// in that layout.
    fn state_schema(&self) -> Result<SchemaRef> {
        if self.mode == AggregateMode::Final {
            return Ok(self.input_schema.clone());
        }
        let mut fields = self
            .keys
            .iter()
            .map(|k| k.to_field(&self.input_schema, "group_by"))
            .collect::<quiver_plan::Result<Vec<_>>>()?;
        for a in &self.aggregates {
            fields.extend(a.state_fields(&self.input_schema)?);
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Writes the groups, as partial states, into the spill partitions; empties the table.
    fn spill_groups(&mut self) -> Result<()> {
        if self.spill.is_none() {
            let state_schema = self.state_schema()?;
            let writers = (0..SPILL_PARTITIONS)
                .map(|_| self.spill_dir.create(&state_schema))
                .collect::<Result<Vec<_>>>()?;
            self.spill = Some(AggregateSpill {
                partitioner: HashPartitioner::new(SPILL_PARTITIONS, &self.key_types)?
                    .with_seed(SPILL_SEED),
                writers,
                state_schema,
            });
        }
        let state_schema = self.spill.as_ref().map(|s| s.state_schema.clone());
        let Some(state_schema) = state_schema else {
            return Ok(());
        };
        let batches = self.take_batches(true, &state_schema, 64 * 1024)?;
        let spill = self.spill.as_mut().expect("created above");
        let key_count = self.keys.len();
        let mut buckets = Vec::new();
        for batch in batches {
            let keys: Vec<ArrayRef> = batch.columns()[..key_count].to_vec();
            spill
                .partitioner
                .partition(&keys, batch.num_rows(), &mut buckets)?;
            for (p, writer) in spill.writers.iter_mut().enumerate() {
                let mask = arrow::array::BooleanArray::from(
                    buckets.iter().map(|&b| b as usize == p).collect::<Vec<_>>(),
                );
                writer.write(&arrow::compute::filter_record_batch(&batch, &mask)?)?;
            }
        }
        Ok(())
    }

    /// Emits one row per group, in batches of at most `batch_size` rows.
    pub fn finish(mut self, batch_size: usize) -> Result<AggregateOutput> {
        if self.spill.is_none() {
            let out = self.take_output(batch_size)?;
            return Ok(Box::new(out.into_iter().map(Ok)));
        }
        self.spill_groups()?;
        self.memory.resize(0);
        let spill = self.spill.take().expect("spilled");
        let runs = spill
            .writers
            .into_iter()
            .map(SpillWriter::finish)
            .collect::<Result<Vec<SpillRun>>>()?;
        // Each partition holds a share of the keys, as partial states: a final aggregation
        // of its own, one partition at a time.
        let template = FinalTemplate {
            keys: self
                .keys
                .iter()
                .map(|k| Expr::Column(k.output_name()))
                .collect(),
            aggregates: self.aggregates.clone(),
            output_schema: self.output_schema.clone(),
            state_schema: spill.state_schema,
            functions: self.functions.clone(),
            memory: self.memory,
            spill_dir: self.spill_dir.clone(),
        };
        Ok(Box::new(
            runs.into_iter()
                .map(move |run| template.aggregate(run, batch_size))
                .flat_map(|r| match r {
                    Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                }),
        ))
    }
}

/// What a final aggregation of one spill partition needs.
struct FinalTemplate {
    keys: Vec<Expr>,
    aggregates: Vec<AggregateExpr>,
    output_schema: SchemaRef,
    state_schema: SchemaRef,
    functions: Arc<FunctionRegistry>,
    memory: MemoryReservation,
    spill_dir: Arc<SpillDir>,
}

impl FinalTemplate {
    fn aggregate(&self, run: SpillRun, batch_size: usize) -> Result<Vec<RecordBatch>> {
        let mut partition = HashAggregate::new(
            &self.state_schema,
            self.keys.clone(),
            self.aggregates.clone(),
            AggregateMode::Final,
            self.output_schema.clone(),
            self.functions.clone(),
            self.memory.task().reservation(),
            self.spill_dir.clone(),
        )?;
        for batch in run.read()? {
            // One partition is a sixteenth of the keys: it is aggregated in memory even if
            // that is over the budget (the reservation records it).
            partition.update(&batch?, None)?;
            let held = partition.held_bytes();
            partition.memory.resize(held);
        }
        partition.take_output(batch_size)
    }
}

/// Aggregates all of `input` with `aggregate`, passing on at once what a partial aggregation
/// emits early to stay within its memory, then yields the groups in batches of at most
/// `batch_size` rows. With a `filter` (one the planner fused into a partial aggregation), the
/// rows for which it is not true are skipped, not copied out.
pub fn aggregate_stream(
    aggregate: HashAggregate,
    mut input: BatchIter,
    filter: Option<Expr>,
    functions: Arc<FunctionRegistry>,
    batch_size: usize,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    let mut aggregate = Some(aggregate);
    let mut pending: VecDeque<RecordBatch> = VecDeque::new();
    let mut output: Option<AggregateOutput> = None;
    Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(b) = pending.pop_front() {
                return Some(Ok(b));
            }
            if let Some(out) = output.as_mut() {
                return out.next();
            }
            let agg = aggregate.as_mut()?;
            match input.next() {
                Some(b) => {
                    let step = check_cancelled(&cancelled)
                        .and(b)
                        .and_then(|b| match &filter {
                            Some(predicate) => {
                                let mask = predicate_mask(&b, predicate, &functions)?;
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
                    Ok(out) => output = Some(cancellable(out, cancelled.clone())),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }))
}
