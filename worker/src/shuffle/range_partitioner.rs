//! [`RangePartitioner`]: assigns each row to a bucket by where its sort key falls among
//! boundaries taken from a sample, so that bucket `i` holds only keys that sort at or before
//! every key of bucket `i + 1`.
//!
//! Boundaries are the sample's quantiles. Every task of a stage reads the same sample and so
//! computes the same boundaries. A key equal to several boundaries (a key holding a large
//! share of the rows) may go to any bucket between the first and the last of them without
//! breaking the order: its rows are dealt round-robin across those buckets, so one hot key
//! does not make one huge bucket.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter};
use quiver_plan::SortExpr;

use crate::error::Result;
use crate::expr::sort_keys::{sort_fields, sort_key_columns};
use crate::functions::FunctionRegistry;

/// Range partitioning of one map task's rows.
pub struct RangePartitioner {
    order: Vec<SortExpr>,
    converter: RowConverter,
    boundaries: Vec<OwnedRow>,
    functions: Arc<FunctionRegistry>,
    /// Deals rows of keys equal to several boundaries round-robin.
    next: usize,
}

impl RangePartitioner {
    /// A partitioner into `buckets` buckets for rows of `schema`, with boundaries from
    /// `sample` (batches whose columns are the sort keys, in order).
    pub fn new(
        schema: &SchemaRef,
        order: Vec<SortExpr>,
        buckets: u32,
        sample: &[RecordBatch],
        functions: Arc<FunctionRegistry>,
    ) -> Result<Self> {
        let types = order
            .iter()
            .map(|o| o.expr.data_type(schema, "sort"))
            .collect::<quiver_plan::Result<Vec<_>>>()?;
        let converter = RowConverter::new(sort_fields(&order, schema)?)?;
        let mut sampled = Vec::new();
        for batch in sample {
            let columns = batch
                .columns()
                .iter()
                .zip(&types)
                .map(|(c, t)| Ok(cast(c, t)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let rows = converter.convert_columns(&columns)?;
            sampled.extend(rows.iter().map(|r| r.owned()));
        }
        sampled.sort_unstable();
        let n = sampled.len();
        let buckets = buckets.max(1) as usize;
        let boundaries = if n == 0 {
            vec![]
        } else {
            (1..buckets)
                .map(|i| sampled[(i * n / buckets).min(n - 1)].clone())
                .collect()
        };
        Ok(RangePartitioner {
            order,
            converter,
            boundaries,
            functions,
            next: 0,
        })
    }

    /// Writes the bucket of every row of `batch` into `out`.
    pub fn partition(&mut self, batch: &RecordBatch, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        let keys = sort_key_columns(&self.order, batch, &self.functions)?;
        let rows = self.converter.convert_columns(&keys)?;
        for row in rows.iter() {
            let first = self.boundaries.partition_point(|b| b.row() < row);
            let last = first + self.boundaries[first..].partition_point(|b| b.row() <= row);
            let bucket = if last == first {
                first
            } else {
                self.next = self.next.wrapping_add(1);
                first + self.next % (last - first + 1)
            };
            out.push(bucket as u32);
        }
        Ok(())
    }
}
