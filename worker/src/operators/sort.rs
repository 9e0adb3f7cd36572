//! [`SortBuffer`]: sorts one task's rows, or keeps only its first `limit` rows (top-k).
//!
//! Rows are compared through Arrow's row format, whose byte order is exactly the requested
//! order (ascending or descending, nulls first or last, per key). With a limit, the buffer
//! is cut back to its first `limit` rows whenever it grows past a few times that, so a top-k
//! over any input holds O(k) rows, never the whole input.
//!
//! Without a limit the rows are held against the task's memory budget. When it refuses more,
//! the buffer is sorted and written to a spill file (a sorted run) and starts over; at the
//! end the runs are merged, reading one batch of each at a time (an external merge sort).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortOptions, concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use quiver_plan::SortExpr;

use super::expr_eval::evaluate;
use crate::error::Result;
use crate::functions::FunctionRegistry;
use crate::memory::memory_pool::MemoryReservation;
use crate::memory::spill::{SpillDir, SpillRun};

/// Sorted batches out of a sort.
pub type SortOutput = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// A sort of one task's rows.
pub struct SortBuffer {
    schema: SchemaRef,
    order: Vec<SortExpr>,
    converter: RowConverter,
    limit: Option<usize>,
    batches: Vec<RecordBatch>,
    rows: usize,
    functions: Arc<FunctionRegistry>,
    memory: MemoryReservation,
    spill: Arc<SpillDir>,
    runs: Vec<SpillRun>,
}

/// The row-format fields of a sort order over `schema`.
pub fn sort_fields(order: &[SortExpr], schema: &SchemaRef) -> Result<Vec<SortField>> {
    order
        .iter()
        .map(|o| {
            let t = o.expr.data_type(schema, "sort")?;
            Ok(SortField::new_with_options(
                t,
                SortOptions {
                    descending: o.descending,
                    nulls_first: o.nulls_first,
                },
            ))
        })
        .collect()
}

impl SortBuffer {
    /// A buffer sorting rows of `schema` by `order`, keeping the first `limit` if set.
    pub fn new(
        schema: SchemaRef,
        order: Vec<SortExpr>,
        limit: Option<u64>,
        functions: Arc<FunctionRegistry>,
        memory: MemoryReservation,
        spill: Arc<SpillDir>,
    ) -> Result<Self> {
        Ok(SortBuffer {
            converter: RowConverter::new(sort_fields(&order, &schema)?)?,
            schema,
            order,
            limit: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            batches: Vec::new(),
            rows: 0,
            functions,
            memory,
            spill,
            runs: Vec::new(),
        })
    }

    /// Adds a batch.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = batch.get_array_memory_size();
        if self.limit.is_none() && !self.memory.try_resize(self.memory.size() + bytes) {
            self.spill_run()?;
            self.memory.resize(bytes);
        }
        self.rows += batch.num_rows();
        self.batches.push(batch);
        if let Some(k) = self.limit
            && self.rows > k.saturating_mul(4).max(64 * 1024)
        {
            let kept = self.sorted(Some(k))?;
            self.rows = kept.num_rows();
            self.batches = vec![kept];
        }
        Ok(())
    }

    /// Sorts what is buffered into a spill file and empties the buffer.
    fn spill_run(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let sorted = self.sorted(None)?;
        let mut writer = self.spill.create(&self.schema)?;
        for start in (0..sorted.num_rows()).step_by(8192) {
            writer.write(&sorted.slice(start, 8192.min(sorted.num_rows() - start)))?;
        }
        self.runs.push(writer.finish()?);
        self.batches.clear();
        self.rows = 0;
        Ok(())
    }

    /// The buffered rows in order (the first `limit` of them when set), as one batch.
    fn sorted(&self, limit: Option<usize>) -> Result<RecordBatch> {
        let all = concat_batches(&self.schema, &self.batches)?;
        let keys = self
            .order
            .iter()
            .map(|o| evaluate(&o.expr, &all, &self.functions))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let rows = self.converter.convert_columns(&keys)?;
        let mut indices: Vec<u32> = (0..all.num_rows() as u32).collect();
        let cmp = |a: &u32, b: &u32| rows.row(*a as usize).cmp(&rows.row(*b as usize));
        match limit {
            Some(k) if k < indices.len() => {
                if k > 0 {
                    indices.select_nth_unstable_by(k - 1, cmp);
                }
                indices.truncate(k);
                indices.sort_unstable_by(cmp);
            }
            _ => indices.sort_unstable_by(cmp),
        }
        Ok(take_record_batch(&all, &UInt32Array::from(indices))?)
    }

    /// All rows in order, in batches of at most `batch_size` rows.
    pub fn finish(mut self, batch_size: usize) -> Result<SortOutput> {
        let batch_size = batch_size.max(1);
        if !self.runs.is_empty() {
            self.spill_run()?;
            self.memory.resize(0);
            let merge = RunMerge::new(
                std::mem::take(&mut self.runs),
                self.order.clone(),
                self.converter,
                self.functions.clone(),
                batch_size,
            )?;
            return Ok(Box::new(merge));
        }
        if self.rows == 0 {
            return Ok(Box::new(std::iter::empty()));
        }
        let sorted = self.sorted(self.limit)?;
        let batches: Vec<_> = (0..sorted.num_rows())
            .step_by(batch_size)
            .map(|start| sorted.slice(start, batch_size.min(sorted.num_rows() - start)))
            .collect();
        Ok(Box::new(batches.into_iter().map(Ok)))
    }
}

/// One sorted run being merged: its current batch, that batch's sort keys, and a position.
struct MergeInput {
    batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    batch: RecordBatch,
    keys: arrow::row::Rows,
    pos: usize,
    _run: SpillRun,
}

/// A k-way merge of sorted runs, through a binary heap of run indices ordered by each run's
/// current row.
struct RunMerge {
    inputs: Vec<MergeInput>,
    heap: Vec<usize>,
    order: Vec<SortExpr>,
    converter: RowConverter,
    functions: Arc<FunctionRegistry>,
    batch_size: usize,
    failed: bool,
}

impl RunMerge {
    fn new(
        runs: Vec<SpillRun>,
        order: Vec<SortExpr>,
        converter: RowConverter,
        functions: Arc<FunctionRegistry>,
        batch_size: usize,
    ) -> Result<Self> {
        let mut merge = RunMerge {
            inputs: Vec::new(),
            heap: Vec::new(),
            order,
            converter,
            functions,
            batch_size,
            failed: false,
        };
        for run in runs {
            let mut batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> =
                Box::new(run.read()?);
            if let Some(first) = batches.next() {
                let batch = first?;
                let keys = merge.keys(&batch)?;
                merge.inputs.push(MergeInput {
                    batches,
                    batch,
                    keys,
                    pos: 0,
                    _run: run,
                });
            }
        }
        merge.heap = (0..merge.inputs.len()).collect();
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i);
        }
        Ok(merge)
    }

    fn keys(&self, batch: &RecordBatch) -> Result<arrow::row::Rows> {
        let columns = self
            .order
            .iter()
            .map(|o| evaluate(&o.expr, batch, &self.functions))
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(self.converter.convert_columns(&columns)?)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.inputs[a], &self.inputs[b]);
        x.keys.row(x.pos) < y.keys.row(y.pos)
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < self.heap.len() && self.less(self.heap[l], self.heap[smallest]) {
                smallest = l;
            }
            if r < self.heap.len() && self.less(self.heap[r], self.heap[smallest]) {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    /// The next output batch: rows taken from the runs' current batches in order, cut short
    /// when a run moves on to its next batch (whose rows the indices could not reach).
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.batch_size);
        let mut advance = None;
        while picks.len() < self.batch_size && !self.heap.is_empty() {
            let top = self.heap[0];
            let input = &mut self.inputs[top];
            picks.push((top, input.pos));
            input.pos += 1;
            if input.pos == input.batch.num_rows() {
                advance = Some(top);
                break;
            }
            self.sift_down(0);
        }
        let out = if picks.is_empty() {
            None
        } else {
            let schema = self.inputs[picks[0].0].batch.schema();
            let columns = (0..schema.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn arrow::array::Array> = self
                        .inputs
                        .iter()
                        .map(|i| i.batch.column(c).as_ref())
                        .collect();
                    Ok(arrow::compute::interleave(&arrays, &picks)?)
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            Some(RecordBatch::try_new(schema, columns)?)
        };
        if let Some(i) = advance {
            match self.inputs[i].batches.next() {
                Some(next) => {
                    let batch = next?;
                    self.inputs[i].keys = self.keys(&batch)?;
                    self.inputs[i].batch = batch;
                    self.inputs[i].pos = 0;
                    self.sift_down(0);
                }
                None => {
                    // The run is done: move the last heap entry to the top.
                    let last = self.heap.len() - 1;
                    self.heap.swap(0, last);
                    self.heap.pop();
                    self.sift_down(0);
                }
            }
        }
        Ok(out)
    }
}

impl Iterator for RunMerge {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.next_batch() {
                Ok(Some(b)) if b.num_rows() == 0 => continue,
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) if self.heap.is_empty() => return None,
                Ok(None) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
