//! [`SortBuffer`]: sorts one task's rows, or keeps only its first `limit` rows (top-k).
//!
//! Rows are compared through Arrow's row format, whose byte order is exactly the requested
//! order (ascending or descending, nulls first or last, per key). With a limit, the buffer
//! is cut back to its first `limit` rows whenever it grows past a few times that, so a top-k
//! over any input holds O(k) rows, never the whole input.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortOptions, concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use quiver_plan::SortExpr;

use super::expr_eval::evaluate;
use crate::error::Result;
use crate::functions::FunctionRegistry;

/// A sort of one task's rows.
pub struct SortBuffer {
    schema: SchemaRef,
    order: Vec<SortExpr>,
    converter: RowConverter,
    limit: Option<usize>,
    batches: Vec<RecordBatch>,
    rows: usize,
    functions: Arc<FunctionRegistry>,
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
    ) -> Result<Self> {
        Ok(SortBuffer {
            converter: RowConverter::new(sort_fields(&order, &schema)?)?,
            schema,
            order,
            limit: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            batches: Vec::new(),
            rows: 0,
            functions,
        })
    }

    /// Adds a batch.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
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

    /// Bytes held, for memory accounting.
    pub fn buffered_bytes(&self) -> usize {
        self.batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
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
    pub fn finish(self, batch_size: usize) -> Result<Vec<RecordBatch>> {
        if self.rows == 0 {
            return Ok(vec![]);
        }
        let sorted = self.sorted(self.limit)?;
        let batch_size = batch_size.max(1);
        Ok((0..sorted.num_rows())
            .step_by(batch_size)
            .map(|start| sorted.slice(start, batch_size.min(sorted.num_rows() - start)))
            .collect())
    }
}
