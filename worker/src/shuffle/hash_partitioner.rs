//! [`HashPartitioner`]: assigns each row to a bucket by a hash of its key columns.
//!
//! The hash must be the same in every process and on every machine, or a key would land in
//! different buckets on different map tasks; so it is xxh3 (portable, seedless) rather than a
//! randomly seeded in-memory hasher. The aggregation hash tables use a different hash, so the
//! keys of one bucket do not collide in them.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::{RowConverter, SortField};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::Result;

/// Hash of a NULL key: every NULL goes to the same bucket.
const NULL_HASH: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hashes key columns into bucket numbers.
pub struct HashPartitioner {
    buckets: u32,
    converter: Option<RowConverter>,
    /// Without keys, rows are dealt round-robin; the next row goes to this bucket.
    next: u64,
    /// 0 for shuffles; anything else remixes the hash, so that rows that all fell into one
    /// shuffle bucket spread over the buckets of a spill.
    seed: u64,
}

impl HashPartitioner {
    /// A partitioner into `buckets` buckets for keys of these types.
    pub fn new(buckets: u32, key_types: &[DataType]) -> Result<Self> {
        let single_fast = matches!(key_types, [DataType::Utf8] | [DataType::Int64]);
        let converter = if single_fast || key_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                key_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect(),
            )?)
        };
        Ok(HashPartitioner {
            buckets: buckets.max(1),
            converter,
            next: 0,
            seed: 0,
        })
    }

    /// The same partitioner with its hash remixed by `seed` (for spill partitions).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn bucket(&self, hash: u64) -> u32 {
        let hash = if self.seed == 0 {
            hash
        } else {
            xxh3_64(&(hash ^ self.seed).to_le_bytes())
        };
        // Lemire's multiply-shift: a uniform map of the hash onto 0..buckets without a division.
        ((u128::from(hash) * u128::from(self.buckets)) >> 64) as u32
    }

    /// Writes the bucket of each of the `rows` rows into `out`. Without keys, rows are dealt
    /// round-robin.
    pub fn partition(&mut self, keys: &[ArrayRef], rows: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        if self.buckets == 1 {
            out.resize(rows, 0);
            return Ok(());
        }
        if keys.is_empty() {
            let buckets = u64::from(self.buckets);
            out.extend((0..rows as u64).map(|i| ((self.next + i) % buckets) as u32));
            self.next = (self.next + rows as u64) % buckets;
            return Ok(());
        }
        if let Some(converter) = &self.converter {
            let encoded = converter.convert_columns(keys)?;
            out.extend(encoded.iter().map(|r| self.bucket(xxh3_64(r.as_ref()))));
            return Ok(());
        }
        let key = &keys[0];
        match key.data_type() {
            DataType::Utf8 => {
                let s = key.as_string::<i32>();
                out.extend((0..rows).map(|i| {
                    self.bucket(if s.is_null(i) {
                        NULL_HASH
                    } else {
                        xxh3_64(s.value(i).as_bytes())
                    })
                }));
            }
            _ => {
                let v = key.as_primitive::<Int64Type>();
                out.extend((0..rows).map(|i| {
                    self.bucket(if v.is_null(i) {
                        NULL_HASH
                    } else {
                        xxh3_64(&v.value(i).to_le_bytes())
                    })
                }));
            }
        }
        Ok(())
    }
}
