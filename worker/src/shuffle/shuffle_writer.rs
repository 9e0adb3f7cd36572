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
//!
//! Wide rows (64 bytes and more on average) are held as the batches came, with each bucket's
//! row numbers, and copied once per bucket as it is written; narrow rows are copied into their
//! buckets as they arrive. Every stored batch is at most about [`MAX_STORED_BATCH_BYTES`]:
//! workers serve stored batches as they are, one Flight message each.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, interleave_record_batch, take_record_batch};
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
use crate::memory::memory_pool::{MemoryReservation, batch_bytes, pinned_bytes};
use crate::memory::spill::{SpillDir, SpillFile};
use std::sync::Arc;

/// The write buffer of the data and spill files. Small on purpose: the IPC writer hands over
/// each batch as one encoded message, and a message larger than the buffer goes straight to
/// the file, where a buffer as large as a batch (1 MiB) copied every byte once more.
const WRITE_BUFFER: usize = 64 << 10;

/// A stored batch holds at most about this many bytes (more rows are cut into several
/// batches): workers serve stored batches as they are, one Flight message each, and a
/// message must stay far below gRPC's limit (`quiver_proto::MAX_MESSAGE_BYTES`).
pub const MAX_STORED_BATCH_BYTES: usize = 8 << 20;

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

/// Rows at least this wide on average (terasort's are 100 bytes) are held as they came and
/// copied once, as their bucket is written; narrower rows (a join's few numbers) are copied
/// into their buckets as they arrive, where that costs less than keeping a list of rows.
const WIDE_ROW_BYTES: usize = 64;

/// What a writer holds until it writes. Wide rows: the batches as they came and, per bucket,
/// its rows (numbered across the batches, ascending); each bucket is copied once, as it is
/// written, instead of once per pushed batch and again to join those pieces into batches of
/// a useful size. Narrow rows: per bucket, its part of each batch (a copy). With a single
/// bucket the batches are the bucket, and nothing per bucket is kept.
#[derive(Default)]
struct Held {
    batches: Vec<RecordBatch>,
    /// The number of the first row of each batch, and of the row after the last.
    starts: Vec<u32>,
    rows: Vec<Vec<u32>>,
    slices: Vec<Vec<RecordBatch>>,
}

impl Held {
    fn clear(&mut self) {
        self.batches.clear();
        self.starts.truncate(1);
        // Fresh vectors, not cleared ones: their capacity would stay, uncounted, after a spill.
        self.rows.iter_mut().for_each(|r| *r = Vec::new());
        self.slices.iter_mut().for_each(|s| *s = Vec::new());
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.slices.iter().all(Vec::is_empty)
    }

    /// The rows held so far.
    fn len(&self) -> usize {
        self.starts.last().map_or(0, |&s| s as usize)
    }
}

/// Buffers a map task's output per bucket and writes it at the end.
pub struct ShuffleWriter {
    schema: SchemaRef,
    routing: BucketRouting,
    buckets: usize,
    held: Held,
    /// Whether rows are wide (see [`WIDE_ROW_BYTES`]), from the first batch.
    wide: Option<bool>,
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
        let buckets = buckets.max(1) as usize;
        Ok(ShuffleWriter {
            routing,
            buckets,
            held: Held {
                batches: Vec::new(),
                starts: vec![0],
                rows: vec![Vec::new(); if buckets == 1 { 0 } else { buckets }],
                slices: vec![Vec::new(); if buckets == 1 { 0 } else { buckets }],
            },
            wide: None,
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
        self.spill_held()?;
        // What arrives next still has to be held, whatever the budget says.
        self.memory.resize(bytes);
        Ok(())
    }

    /// Writes every held bucket to a spill file and empties memory.
    fn spill_held(&mut self) -> Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let file = self.spill.create_file("buckets")?;
        let out = File::create(file.path()).map_err(|e| WorkerError::io(file.path(), e))?;
        let mut out = CountingWriter {
            inner: BufWriter::with_capacity(WRITE_BUFFER, out),
            written: 0,
        };
        let offsets = write_buckets(
            &mut out,
            &self.schema,
            &self.held,
            self.buckets,
            self.batch_size,
        )?;
        out.inner
            .flush()
            .map_err(|e| WorkerError::io(file.path(), e))?;
        self.spill.add_spilled(out.written);
        self.spilled.push(SpilledBuckets { file, offsets });
        self.held.clear();
        Ok(())
    }

    /// Routes every row of `batch` to its bucket.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows as u64;
        if self.buckets == 1 {
            self.reserve(batch_bytes(&batch))?;
            self.held.batches.push(batch);
            return Ok(());
        }
        self.routing.route(&batch, &mut self.scratch)?;
        let wide = *self
            .wide
            .get_or_insert_with(|| batch_bytes(&batch) >= rows * WIDE_ROW_BYTES);
        if !wide {
            return self.push_sliced(&batch);
        }
        // Held rows are numbered in a u32: past that, they are spilled as if memory ran out.
        if u32::try_from(self.held.len() + rows).is_err() {
            self.spill_held()?;
            self.memory.resize(0);
            if u32::try_from(rows).is_err() {
                return Err(WorkerError::Arrow(arrow::error::ArrowError::ComputeError(
                    format!("a batch of {rows} rows is too large to shuffle"),
                )));
            }
        }
        // A batch held as it came keeps alive every buffer its columns slice (a projection of
        // a decoded shuffle batch pins the whole message): when that is much more than its
        // rows, hold a compact copy instead, so what is counted is what is held.
        let counted = batch_bytes(&batch);
        let batch = if pinned_bytes(&batch) > 2 * counted + (1 << 20) {
            take_record_batch(&batch, &UInt32Array::from_iter_values(0..rows as u32))?
        } else {
            batch
        };
        self.reserve(counted + rows * std::mem::size_of::<u32>())?;
        let first = self.held.len() as u32;
        for (row, &b) in self.scratch.iter().enumerate() {
            self.held.rows[b as usize].push(first + row as u32);
        }
        self.held.starts.push(first + rows as u32);
        self.held.batches.push(batch);
        Ok(())
    }

    /// Copies the rows of `batch` (routed into `scratch`) into their buckets: a counting sort
    /// of row indices by bucket, then one `take` and zero-copy slices.
    fn push_sliced(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut counts = vec![0usize; self.buckets + 1];
        for &b in &self.scratch {
            counts[b as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut order = vec![0u32; batch.num_rows()];
        for (row, &b) in self.scratch.iter().enumerate() {
            order[counts[b as usize]] = row as u32;
            counts[b as usize] += 1;
        }
        let sorted = take_record_batch(batch, &UInt32Array::from(order))?;
        self.reserve(batch_bytes(&sorted))?;
        for (b, bucket) in self.held.slices.iter_mut().enumerate() {
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
            inner: BufWriter::with_capacity(WRITE_BUFFER, file),
            written: 0,
        };
        let offsets = if self.spilled.is_empty() {
            write_buckets(
                &mut out,
                &self.schema,
                &self.held,
                self.buckets,
                self.batch_size,
            )?
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
            for b in 0..self.buckets {
                for (file, run_offsets) in &mut runs {
                    let (start, end) = (run_offsets[b], run_offsets[b + 1]);
                    if end > start {
                        file.seek(SeekFrom::Start(start))
                            .map_err(|e| WorkerError::io(&data_path, e))?;
                        std::io::copy(&mut file.take(end - start), &mut out)
                            .map_err(|e| WorkerError::io(&data_path, e))?;
                    }
                }
                write_bucket(&mut out, &self.schema, &self.held, b, self.batch_size)?;
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
    held: &Held,
    buckets: usize,
    batch_size: usize,
) -> Result<Vec<u64>> {
    let mut offsets = Vec::with_capacity(buckets + 1);
    offsets.push(out.written);
    for b in 0..buckets {
        write_bucket(out, schema, held, b, batch_size)?;
        offsets.push(out.written);
    }
    Ok(offsets)
}

/// Writes bucket `bucket` of `held` as one IPC stream of batches of about `batch_size` rows.
fn write_bucket<W: Write>(
    out: &mut CountingWriter<W>,
    schema: &SchemaRef,
    held: &Held,
    bucket: usize,
    batch_size: usize,
) -> Result<()> {
    if held.rows.is_empty() {
        // A single bucket: the batches as they came, small ones joined.
        if !held.batches.is_empty() {
            let mut writer = StreamWriter::try_new(&mut *out, schema)?;
            for chunk in coalesce(schema, &held.batches, batch_size)? {
                write_bounded(&mut writer, &chunk)?;
            }
            writer.finish()?;
        }
        return Ok(());
    }
    let (rows, slices) = (&held.rows[bucket], &held.slices[bucket]);
    if rows.is_empty() && slices.is_empty() {
        return Ok(());
    }
    let mut writer = StreamWriter::try_new(&mut *out, schema)?;
    for chunk in coalesce(schema, slices, batch_size)? {
        write_bounded(&mut writer, &chunk)?;
    }
    let batches: Vec<&RecordBatch> = held.batches.iter().collect();
    let mut picks = Vec::with_capacity(batch_size.min(rows.len()));
    // The bucket's rows ascend, so their batch only ever moves forward.
    let mut batch = 0;
    for chunk in rows.chunks(batch_size) {
        picks.clear();
        for &row in chunk {
            while held.starts[batch + 1] <= row {
                batch += 1;
            }
            picks.push((batch, (row - held.starts[batch]) as usize));
        }
        write_bounded(&mut writer, &interleave_record_batch(&batches, &picks)?)?;
    }
    writer.finish()?;
    Ok(())
}

/// Writes `batch`, cut into consecutive slices of at most about [`MAX_STORED_BATCH_BYTES`]
/// when it is larger (the IPC writer stores only a slice's own rows).
fn write_bounded<W: Write>(writer: &mut StreamWriter<W>, batch: &RecordBatch) -> Result<()> {
    let (bytes, rows) = (batch_bytes(batch), batch.num_rows());
    if bytes <= MAX_STORED_BATCH_BYTES || rows <= 1 {
        writer.write(batch)?;
        return Ok(());
    }
    let pieces = bytes.div_ceil(MAX_STORED_BATCH_BYTES);
    let per_piece = rows.div_ceil(pieces);
    for start in (0..rows).step_by(per_piece) {
        writer.write(&batch.slice(start, per_piece.min(rows - start)))?;
    }
    Ok(())
}

/// Joins small batches into batches of about `batch_size` rows, so the reader is not
/// handed thousands of tiny batches.
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
