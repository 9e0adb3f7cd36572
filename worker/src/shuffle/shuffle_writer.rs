//! [`ShuffleWriter`]: partitions a map task's output into buckets and writes them as one Arrow
//! IPC data file plus an index.
//!
//! Data file: bucket after bucket, each one or more complete IPC streams (schema, batches,
//! end marker); an empty bucket takes no bytes. Index file: `buckets + 1` little-endian u64
//! offsets into the data file. One file per task instead of one per bucket keeps the number
//! of files (and open handles) independent of the reduce side's width.
//!
//! The buckets are held in memory against the task's memory budget. When the budget refuses
//! more, they are written to a spill file in the same layout and memory starts over; at the
//! end each bucket's spilled streams are copied byte for byte (no decoding) in front of its
//! in-memory part. That is why a bucket may hold several streams.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use quiver_plan::Expr;

use super::hash_partitioner::HashPartitioner;
use super::map_output_store::MapOutput;
use super::range_partitioner::RangePartitioner;
use crate::error::{Result, WorkerError};
use crate::expr::expr_eval::evaluate;
use crate::functions::FunctionRegistry;
use crate::memory::memory_pool::{MemoryReservation, batch_bytes};
use crate::memory::spill::{SpillDir, SpillFile};
use std::sync::Arc;

/// How rows are assigned to buckets.
pub enum BucketRouting {
    /// By a hash of key expressions (round-robin without keys).
    Hash {
        keys: Vec<Expr>,
        partitioner: HashPartitioner,
        functions: Arc<FunctionRegistry>,
    },
    /// By sort-key ranges.
    Range(RangePartitioner),
}

impl BucketRouting {
    /// Hash routing of rows of `schema` by `keys` into `buckets` buckets.
    pub fn hash(
        schema: &SchemaRef,
        keys: Vec<Expr>,
        buckets: u32,
        functions: Arc<FunctionRegistry>,
    ) -> Result<Self> {
        let key_types = keys
            .iter()
            .map(|k| k.data_type(schema, "shuffle"))
            .collect::<quiver_plan::Result<Vec<_>>>()?;
        Ok(BucketRouting::Hash {
            partitioner: HashPartitioner::new(buckets, &key_types)?,
            keys,
            functions,
        })
    }

    fn route(&mut self, batch: &RecordBatch, out: &mut Vec<u32>) -> Result<()> {
        match self {
            BucketRouting::Hash {
                keys,
                partitioner,
                functions,
            } => {
                let keys = keys
                    .iter()
                    .map(|k| evaluate(k, batch, functions))
                    .collect::<Result<Vec<_>>>()?;
                partitioner.partition(&keys, batch.num_rows(), out)
            }
            BucketRouting::Range(r) => r.partition(batch, out),
        }
    }
}

/// Buckets written to a spill file: where each bucket's bytes are in it.
struct SpilledBuckets {
    file: SpillFile,
    offsets: Vec<u64>,
}

/// Buffers a map task's output per bucket and writes it at the end.
pub struct ShuffleWriter {
    schema: SchemaRef,
    routing: BucketRouting,
    buckets: Vec<Vec<RecordBatch>>,
    batch_size: usize,
    rows: u64,
    scratch: Vec<u32>,
    memory: MemoryReservation,
    spill: Arc<SpillDir>,
    spilled: Vec<SpilledBuckets>,
}

impl ShuffleWriter {
    /// A writer of `buckets` buckets, routing rows by `routing`, holding at most what
    /// `memory` allows and spilling the rest into `spill`.
    pub fn new(
        schema: SchemaRef,
        routing: BucketRouting,
        buckets: u32,
        batch_size: usize,
        memory: MemoryReservation,
        spill: Arc<SpillDir>,
    ) -> Result<Self> {
        Ok(ShuffleWriter {
            routing,
            buckets: vec![Vec::new(); buckets.max(1) as usize],
            schema,
            batch_size: batch_size.max(1),
            rows: 0,
            scratch: Vec::new(),
            memory,
            spill,
            spilled: Vec::new(),
        })
    }

    /// Counts `bytes` more against the budget, spilling every bucket first if it refuses.
    fn reserve(&mut self, bytes: usize) -> Result<()> {
        let want = self.memory.size() + bytes;
        if self.memory.try_resize(want) {
            return Ok(());
        }
        let file = self.spill.create_file("buckets")?;
        let out = File::create(file.path()).map_err(|e| WorkerError::io(file.path(), e))?;
        let mut out = CountingWriter {
            inner: BufWriter::with_capacity(1 << 20, out),
            written: 0,
        };
        let offsets = write_buckets(&mut out, &self.schema, &self.buckets, self.batch_size)?;
        out.inner
            .flush()
            .map_err(|e| WorkerError::io(file.path(), e))?;
        self.spill.add_spilled(out.written);
        self.spilled.push(SpilledBuckets { file, offsets });
        self.buckets.iter_mut().for_each(Vec::clear);
        // What arrives next still has to be held, whatever the budget says.
        self.memory.resize(bytes);
        Ok(())
    }

    /// Routes every row of `batch` to its bucket.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows as u64;
        if self.buckets.len() == 1 {
            self.reserve(batch_bytes(&batch))?;
            self.buckets[0].push(batch);
            return Ok(());
        }
        self.routing.route(&batch, &mut self.scratch)?;
        // Counting sort of row indices by bucket, then one `take` and zero-copy slices.
        let mut counts = vec![0usize; self.buckets.len() + 1];
        for &b in &self.scratch {
            counts[b as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut order = vec![0u32; rows];
        for (row, &b) in self.scratch.iter().enumerate() {
            order[counts[b as usize]] = row as u32;
            counts[b as usize] += 1;
        }
        let sorted = take_record_batch(&batch, &UInt32Array::from(order))?;
        self.reserve(batch_bytes(&sorted))?;
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            let (start, end) = (starts[b], starts[b + 1]);
            if end > start {
                bucket.push(sorted.slice(start, end - start));
            }
        }
        Ok(())
    }

    /// Writes the data and index files; returns where each bucket is.
    pub fn finish(self, data_path: PathBuf, index_path: PathBuf) -> Result<MapOutput> {
        if let Some(dir) = data_path.parent() {
            fs::create_dir_all(dir).map_err(|e| WorkerError::io(dir, e))?;
        }
        let file = File::create(&data_path).map_err(|e| WorkerError::io(&data_path, e))?;
        let mut out = CountingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            written: 0,
        };
        let offsets = if self.spilled.is_empty() {
            write_buckets(&mut out, &self.schema, &self.buckets, self.batch_size)?
        } else {
            // Each bucket: its spilled streams, copied as bytes, then what is in memory.
            let mut runs = self
                .spilled
                .iter()
                .map(|s| {
                    File::open(s.file.path())
                        .map(|f| (f, &s.offsets))
                        .map_err(|e| WorkerError::io(s.file.path(), e))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut offsets = vec![0u64];
            for (b, bucket) in self.buckets.iter().enumerate() {
                for (file, run_offsets) in &mut runs {
                    let (start, end) = (run_offsets[b], run_offsets[b + 1]);
                    if end > start {
                        file.seek(SeekFrom::Start(start))
                            .map_err(|e| WorkerError::io(&data_path, e))?;
                        std::io::copy(&mut file.take(end - start), &mut out)
                            .map_err(|e| WorkerError::io(&data_path, e))?;
                    }
                }
                write_bucket(&mut out, &self.schema, bucket, self.batch_size)?;
                offsets.push(out.written);
            }
            offsets
        };
        out.inner
            .flush()
            .map_err(|e| WorkerError::io(&data_path, e))?;
        let index: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        fs::write(&index_path, index).map_err(|e| WorkerError::io(&index_path, e))?;
        Ok(MapOutput {
            data_path,
            offsets,
            rows: self.rows,
        })
    }
}

/// Writes every bucket as one IPC stream (nothing for an empty bucket); returns the offsets
/// of the buckets' starts and of the end.
fn write_buckets<W: Write>(
    out: &mut CountingWriter<W>,
    schema: &SchemaRef,
    buckets: &[Vec<RecordBatch>],
    batch_size: usize,
) -> Result<Vec<u64>> {
    let mut offsets = Vec::with_capacity(buckets.len() + 1);
    offsets.push(out.written);
    for bucket in buckets {
        write_bucket(out, schema, bucket, batch_size)?;
        offsets.push(out.written);
    }
    Ok(offsets)
}

fn write_bucket<W: Write>(
    out: &mut CountingWriter<W>,
    schema: &SchemaRef,
    bucket: &[RecordBatch],
    batch_size: usize,
) -> Result<()> {
    if !bucket.is_empty() {
        let mut writer = StreamWriter::try_new(&mut *out, schema)?;
        for chunk in coalesce(schema, bucket, batch_size)? {
            writer.write(&chunk)?;
        }
        writer.finish()?;
    }
    Ok(())
}

/// Joins small slices into batches of about `batch_size` rows, so the reader is not handed
/// thousands of tiny batches.
fn coalesce(
    schema: &SchemaRef,
    parts: &[RecordBatch],
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut pending: Vec<&RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    for part in parts {
        pending.push(part);
        pending_rows += part.num_rows();
        if pending_rows >= batch_size {
            out.push(concat_batches(schema, pending.drain(..))?);
            pending_rows = 0;
        }
    }
    if !pending.is_empty() {
        out.push(concat_batches(schema, pending.drain(..))?);
    }
    Ok(out)
}

/// A writer that counts the bytes that pass through it.
struct CountingWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
