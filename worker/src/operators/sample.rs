//! [`RowSampler`]: a uniform sample of at most `k` rows of a task's input, the same every
//! time the task runs.
//!
//! Each row gets a pseudo-random priority from its position and the task's partition, and
//! the `k` rows with the smallest priorities are kept ("bottom-k" sampling). Determinism
//! matters: a global sort's range boundaries come from the sample, and a sample task that is
//! rerun after a failure must give the boundaries the other tasks already used.
//! [`sample_stream`] runs a sampler over its input stream.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;

use super::batch_stream::{BatchIter, check_cancelled, deferred};
use crate::error::Result;

/// SplitMix64: a fast, well-mixed hash of a 64-bit counter.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Bottom-k sample of a stream of batches.
pub struct RowSampler {
    schema: SchemaRef,
    k: usize,
    seed: u64,
    seen: u64,
    /// Rows kept so far and their priorities, in the same order.
    kept: Vec<RecordBatch>,
    priorities: Vec<u64>,
    /// Rows with a priority at or above this cannot be among the k smallest.
    threshold: u64,
}

impl RowSampler {
    /// A sampler keeping at most `k` rows; `seed` makes different tasks sample differently.
    pub fn new(schema: SchemaRef, k: usize, seed: u64) -> Self {
        RowSampler {
            schema,
            k,
            seed: splitmix64(seed),
            seen: 0,
            kept: Vec::new(),
            priorities: Vec::new(),
            threshold: u64::MAX,
        }
    }

    /// Offers every row of `batch`.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut keep = Vec::with_capacity(batch.num_rows());
        for _ in 0..batch.num_rows() {
            let p = splitmix64(self.seed ^ self.seen);
            self.seen += 1;
            let admitted = p < self.threshold;
            if admitted {
                self.priorities.push(p);
            }
            keep.push(admitted);
        }
        let admitted = filter_record_batch(batch, &BooleanArray::from(keep))?;
        if admitted.num_rows() > 0 {
            self.kept.push(admitted);
        }
        if self.priorities.len() >= 2 * self.k.max(1) {
            self.compact()?;
        }
        Ok(())
    }

    /// Cuts the kept rows back to the k of smallest priority.
    fn compact(&mut self) -> Result<()> {
        let all = concat_batches(&self.schema, &self.kept)?;
        let mut order: Vec<u32> = (0..self.priorities.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.priorities[i as usize]);
        order.truncate(self.k);
        self.threshold = order
            .last()
            .map_or(0, |&i| self.priorities[i as usize].saturating_add(1));
        if order.len() < self.k {
            self.threshold = u64::MAX;
        }
        self.priorities = order.iter().map(|&i| self.priorities[i as usize]).collect();
        self.kept = vec![take_record_batch(
            &all,
            &arrow::array::UInt32Array::from(order),
        )?];
        Ok(())
    }

    /// The sample.
    pub fn finish(mut self) -> Result<Vec<RecordBatch>> {
        if self.priorities.len() > self.k {
            self.compact()?;
        }
        Ok(self.kept)
    }
}

/// Samples all of `input` with `sampler` when the first batch is asked for, then yields the
/// sample.
pub fn sample_stream(
    mut sampler: RowSampler,
    input: BatchIter,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    deferred(move || {
        for b in input {
            check_cancelled(&cancelled)?;
            sampler.push(&b?)?;
        }
        Ok(Box::new(sampler.finish()?.into_iter().map(Ok)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn run(values: std::ops::Range<i64>, k: usize, seed: u64) -> Vec<i64> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let mut sampler = RowSampler::new(schema.clone(), k, seed);
        let all: Vec<i64> = values.collect();
        for chunk in all.chunks(1000) {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(chunk.to_vec()))],
            )
            .unwrap();
            sampler.push(&batch).unwrap();
        }
        let mut out = Vec::new();
        for b in sampler.finish().unwrap() {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend((0..a.len()).map(|i| a.value(i)));
        }
        out.sort();
        out
    }

    #[test]
    fn keeps_k_distinct_rows_deterministically_and_spread_out() {
        let a = run(0..100_000, 500, 7);
        assert_eq!(a.len(), 500);
        assert_eq!(a, run(0..100_000, 500, 7));
        assert_ne!(a, run(0..100_000, 500, 8));
        let mut dedup = a.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 500);
        // Uniform: each tenth of the range holds roughly a tenth of the sample.
        for tenth in 0..10 {
            let n = a.iter().filter(|&&v| v / 10_000 == tenth).count();
            assert!((20..=80).contains(&n), "tenth {tenth} has {n} of 500");
        }
        assert_eq!(run(0..10, 500, 1).len(), 10);
    }
}
