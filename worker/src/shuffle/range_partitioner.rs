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
use crate::operators::sort::key_prefix;

/// Range partitioning of one map task's rows.
pub struct RangePartitioner {
    order: Vec<SortExpr>,
    converter: RowConverter,
    boundaries: Vec<OwnedRow>,
    /// Each boundary's first 8 bytes as a number: most rows are placed by these alone.
    prefixes: Vec<u64>,
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
            prefixes: boundaries
                .iter()
                .map(|b| key_prefix(b.row().as_ref()))
                .collect(),
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
        let bounds: Vec<usize> = (0..self.boundaries.len()).collect();
        for row in rows.iter() {
            // Boundary `b` against the row: by the 8-byte prefixes, by whole keys on a tie.
            let prefix = key_prefix(row.as_ref());
            let cmp = |&b: &usize| {
                self.prefixes[b]
                    .cmp(&prefix)
                    .then_with(|| self.boundaries[b].row().cmp(&row))
            };
            let first = bounds.partition_point(|b| cmp(b).is_lt());
            let last = first + bounds[first..].partition_point(|b| cmp(b).is_le());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use arrow::array::{AsArray, BinaryArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use quiver_plan::expr::col;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Keys of a few letters after a shared 9-byte stem, so that the boundaries and the
    /// rows tie on their 8-byte prefixes and the whole keys decide: every row lands in a
    /// bucket whose boundaries enclose it, as a search over whole keys places it.
    #[test]
    fn rows_tying_with_boundaries_on_the_prefix_go_by_the_whole_key() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Binary, false)]));
        let mut rng = StdRng::seed_from_u64(7);
        let mut key = || {
            let mut k = b"stemstem-".to_vec();
            k.extend((0..rng.random_range(0..4)).map(|_| b"abc"[rng.random_range(0..3)]));
            k
        };
        let batch = |keys: &[Vec<u8>]| {
            let array = BinaryArray::from_iter_values(keys.iter().map(|k| k.as_slice()));
            RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).unwrap()
        };
        let sample: Vec<Vec<u8>> = (0..200).map(|_| key()).collect();
        let rows: Vec<Vec<u8>> = (0..1000).map(|_| key()).collect();
        let buckets = 5;
        let mut partitioner = RangePartitioner::new(
            &schema,
            vec![SortExpr::asc(col("k"))],
            buckets,
            &[batch(&sample)],
            Arc::default(),
        )
        .unwrap();
        // The same boundaries, by hand: the sample's quantiles.
        let mut sorted = sample.clone();
        sorted.sort();
        let bounds: Vec<&[u8]> = (1..buckets as usize)
            .map(|i| sorted[i * sorted.len() / buckets as usize].as_slice())
            .collect();
        let mut out = Vec::new();
        let input = batch(&rows);
        partitioner.partition(&input, &mut out).unwrap();
        assert_eq!(out.len(), rows.len());
        let keys = input.column(0).as_binary::<i32>();
        for (i, &b) in out.iter().enumerate() {
            let k = keys.value(i);
            let first = bounds.partition_point(|&x| x < k);
            let last = bounds.partition_point(|&x| x <= k);
            assert!(
                (first..=last).contains(&(b as usize)),
                "row {k:?} went to bucket {b}, not one of {first}..={last}"
            );
        }
        // Both sides of some boundary were used: the test is not vacuous.
        assert!(out.contains(&0) && out.contains(&(buckets - 1)));
    }
}
