//! TeraSort: 100-byte records (a 10-byte binary key and a 90-byte payload) sorted by key.
//!
//! The generator writes Parquet files of `key: Binary` and `payload: Binary`, with random keys
//! and a payload that carries the record's number (so a lost or duplicated record shows). The
//! check reads the sorted output's files in name order and verifies the keys never go down and
//! the record count is unchanged.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::{Array, AsArray, BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quiver::Dataset;
use quiver::functions::col;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes of one record.
pub const RECORD_BYTES: u64 = 100;
/// Records per GiB of input at scale 1.0.
pub const RECORDS_PER_SCALE: u64 = (1 << 30) / RECORD_BYTES;

/// The record schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("payload", DataType::Binary, false),
    ]))
}

/// Records `first..first + count`, deterministic for a seed.
pub fn records(first: u64, count: usize, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed ^ first.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut keys = Vec::with_capacity(count * 10);
    let mut payloads = Vec::with_capacity(count * 90);
    for i in 0..count as u64 {
        let mut key = [0u8; 10];
        rng.fill(&mut key);
        keys.extend_from_slice(&key);
        // The record number, then filler, as TeraGen does.
        let id = format!("{:020}", first + i);
        payloads.extend_from_slice(id.as_bytes());
        payloads.extend(std::iter::repeat_n(b'A' + ((first + i) % 26) as u8, 70));
    }
    let keys = BinaryArray::from_iter_values(keys.chunks(10));
    let payloads = BinaryArray::from_iter_values(payloads.chunks(90));
    RecordBatch::try_new(schema(), vec![Arc::new(keys), Arc::new(payloads)])
        .expect("columns match the schema")
}

/// Writes `total` records into `files` Parquet files under `dir`, one thread per file.
pub fn generate(dir: &Path, total: u64, files: usize, seed: u64) -> anyhow::Result<()> {
    let files = files.max(1) as u64;
    let per_file = total.div_ceil(files);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..files)
            .map(|f| {
                s.spawn(move || -> anyhow::Result<()> {
                    let first = f * per_file;
                    let last = (first + per_file).min(total);
                    let chunks = (first..last)
                        .step_by(65_536)
                        .map(|start| records(start, (last - start).min(65_536) as usize, seed));
                    super::write_parquet_file(
                        &dir.join(format!("part-{f:05}.parquet")),
                        schema(),
                        chunks,
                        1 << 20,
                    )
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))?
        })
    })
}

/// The job: every record of every input file or directory, sorted by key.
pub fn sort_job(inputs: &[impl AsRef<Path>]) -> quiver::Result<Dataset> {
    sort_records(Dataset::read_parquet(inputs)?)
}

/// The job over records read some other way (e.g. with [`quiver::Sources`] from an object
/// store that needs its own credentials).
pub fn sort_records(records: Dataset) -> quiver::Result<Dataset> {
    records.sort([col("key")])
}

/// Checks a sorted output directory: keys ascending across its files in name order. Returns
/// the number of records.
pub fn validate(output: &Path) -> anyhow::Result<u64> {
    let mut previous: Option<Vec<u8>> = None;
    let mut count = 0u64;
    for file in super::parquet_files(output)? {
        for batch in super::read_parquet_file(&file)? {
            let batch = batch?;
            let keys = batch
                .column_by_name("key")
                .context("output has no key column")?
                .as_binary::<i32>();
            for i in 0..keys.len() {
                let key = keys.value(i);
                if previous.as_deref().is_some_and(|p| p > key) {
                    bail!(
                        "{}: key {:02x?} comes after the larger key {:02x?}",
                        file.display(),
                        key,
                        previous.unwrap_or_default()
                    );
                }
                previous = Some(key.to_vec());
            }
            count += keys.len() as u64;
        }
    }
    Ok(count)
}
