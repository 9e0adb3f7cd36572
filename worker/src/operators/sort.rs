//! [`SortBuffer`]: sorts one task's rows, or keeps only its first `limit` rows (top-k);
//! [`sort_stream`] runs one over its input stream.
//!
//! Rows are compared through Arrow's row format, whose byte order is exactly the requested
//! order (ascending or descending, nulls first or last, per key). The sort itself orders
//! (first 8 key bytes as a number, row) pairs and compares whole keys only on a tie, so most
//! comparisons are one integer compare; the output is gathered from the buffered batches
//! (`interleave`) one output batch at a time, never as one concatenated copy of the input.
//! Each batch is put in order as it arrives (a reorder inside the cache), so that gather reads
//! the buffered batches front to back rather than jumping about the whole buffer; the batch
//! keeps its rows' key prefixes, and the final order is a stable sort of (prefix, batch, row)
//! by prefix that finds each batch as a sorted run and merges the runs. Only groups of equal
//! prefixes are then ordered by whole keys, converting just the batches they touch, so a sort
//! whose prefixes differ never converts its keys a second time. Rows with equal whole keys
//! come out in no particular order (the sort is not stable, and no caller needs it to be).
//! With a limit, the buffer is cut back to its first `limit` rows whenever it grows past a
//! few times that, so a top-k over any input holds O(k) rows, never the whole input.
//!
//! Without a limit the rows are held against the task's memory budget. When it refuses more,
//! the buffer is sorted and written to a spill file (a sorted run) and starts over; at the
//! end the runs are merged, reading one batch of each at a time (an external merge sort).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{interleave_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows};
use quiver_plan::SortExpr;

use super::batch_stream::{BatchIter, cancellable, check_cancelled, deferred};
use crate::error::Result;
use crate::expr::sort_keys::{sort_fields, sort_key_columns};
use crate::functions::FunctionRegistry;
use crate::memory::memory_pool::{MemoryReservation, batch_bytes};
use crate::memory::spill::{SpillDir, SpillRun};

/// Sorted batches out of a sort.
pub type SortOutput = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// What sorting holds per row besides the row itself: its (prefix, index) pair, its place
/// in the output order and its key's offset in the row format.
const SORT_BYTES_PER_ROW: usize = 40;

/// A sort of one task's rows.
pub struct SortBuffer {
    schema: SchemaRef,
    order: Vec<SortExpr>,
    converter: RowConverter,
    limit: Option<usize>,
    batches: Vec<RecordBatch>,
    /// Without a limit, each buffered batch is in order and this holds its rows' key
    /// prefixes ([`key_prefix`]), in the same order: the final sort works from these alone
    /// unless two prefixes are equal.
    prefixes: Vec<Vec<u64>>,
    rows: usize,
    functions: Arc<FunctionRegistry>,
    memory: MemoryReservation,
    spill: Arc<SpillDir>,
    runs: Vec<SpillRun>,
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
            prefixes: Vec::new(),
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
        let bytes = batch_bytes(&batch) + batch.num_rows() * SORT_BYTES_PER_ROW;
        // Top-k holds rows against the budget too: k comes from the job, and may be huge.
        if !self.memory.try_resize(self.memory.size() + bytes) {
            self.spill_run()?;
            self.memory.resize(bytes);
        }
        let batch = if self.limit.is_none() {
            let (batch, prefixes) = self.presorted(batch)?;
            self.prefixes.push(prefixes);
            batch
        } else {
            batch
        };
        self.rows += batch.num_rows();
        self.batches.push(batch);
        if let Some(k) = self.limit
            && self.rows > k.saturating_mul(4).max(64 * 1024)
        {
            let picks = self.sorted_picks(Some(k))?;
            let kept = self.gather(&picks)?;
            self.rows = kept.num_rows();
            self.memory
                .resize(batch_bytes(&kept) + kept.num_rows() * SORT_BYTES_PER_ROW);
            self.batches = vec![kept];
        }
        Ok(())
    }

    /// `batch` in sort order. Each batch is small enough to be reordered inside the cache;
    /// in return the final gather reads every buffered batch front to back, a few streams
    /// at a time, instead of jumping about the whole buffer: on wide rows (terasort's) that
    /// random gather, a cache and TLB miss per column per row, was most of the sort.
    /// Returns it with its rows' key prefixes in that order.
    fn presorted(&self, batch: RecordBatch) -> Result<(RecordBatch, Vec<u64>)> {
        let columns = sort_key_columns(&self.order, &batch, &self.functions)?;
        let keys = self.converter.convert_columns(&columns)?;
        let order = sorted_prefixes(&keys, None);
        let prefixes = order.iter().map(|&(p, _)| p).collect();
        if order.iter().enumerate().all(|(i, &(_, r))| r as usize == i) {
            return Ok((batch, prefixes));
        }
        let indices = UInt32Array::from_iter_values(order.into_iter().map(|(_, r)| r));
        Ok((take_record_batch(&batch, &indices)?, prefixes))
    }

    /// Sorts what is buffered (its first `limit` rows, with a limit) into a spill file and
    /// empties the buffer.
    fn spill_run(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let picks = self.sorted_picks(self.limit)?;
        let mut writer = self.spill.create(&self.schema)?;
        for chunk in picks.chunks(8192) {
            writer.write(&self.gather(chunk)?)?;
        }
        self.runs.push(writer.finish()?);
        self.batches.clear();
        self.prefixes.clear();
        self.rows = 0;
        Ok(())
    }

    /// Where the buffered rows go in order (the first `limit` of them when set), as picks of
    /// (buffered batch, row).
    fn sorted_picks(&mut self, limit: Option<usize>) -> Result<Vec<Pick>> {
        if limit.is_none() && self.prefixes.len() == self.batches.len() {
            return self.merged_picks();
        }
        let mut keys: Rows = self.converter.empty_rows(self.rows, 0);
        let mut starts = Vec::with_capacity(self.batches.len());
        for batch in &self.batches {
            starts.push(keys.num_rows());
            let columns = sort_key_columns(&self.order, batch, &self.functions)?;
            self.converter.append(&mut keys, &columns)?;
        }
        Ok(sorted_prefixes(&keys, limit)
            .into_iter()
            .map(|(_, i)| {
                let i = i as usize;
                let batch = starts.partition_point(|&s| s <= i) - 1;
                Pick {
                    prefix: 0,
                    batch: batch as u32,
                    row: (i - starts[batch]) as u32,
                }
            })
            .collect())
    }

    /// The order of all buffered rows when every batch is already in order: a stable sort
    /// of (prefix, batch, row) by prefix, which finds each batch as a sorted run and merges
    /// the runs, then a sort by whole keys of each group of equal prefixes (converting
    /// only the batches such groups touch). Uses up the stored prefixes.
    fn merged_picks(&mut self) -> Result<Vec<Pick>> {
        let mut picks = Vec::with_capacity(self.rows);
        for (b, prefixes) in std::mem::take(&mut self.prefixes).into_iter().enumerate() {
            picks.extend(prefixes.into_iter().enumerate().map(|(r, prefix)| Pick {
                prefix,
                batch: b as u32,
                row: r as u32,
            }));
        }
        picks.sort_by_key(|p| p.prefix);
        let mut keys: Vec<Option<Rows>> = self.batches.iter().map(|_| None).collect();
        let mut start = 0;
        while start < picks.len() {
            let prefix = picks[start].prefix;
            let mut end = start + 1;
            while end < picks.len() && picks[end].prefix == prefix {
                end += 1;
            }
            if end - start > 1 {
                let group = &mut picks[start..end];
                for p in group.iter() {
                    let b = p.batch as usize;
                    if keys[b].is_none() {
                        let columns =
                            sort_key_columns(&self.order, &self.batches[b], &self.functions)?;
                        keys[b] = Some(self.converter.convert_columns(&columns)?);
                    }
                }
                let row = |p: &Pick| {
                    keys[p.batch as usize]
                        .as_ref()
                        .map(|k| k.row(p.row as usize))
                };
                group.sort_unstable_by(|a, b| row(a).cmp(&row(b)));
            }
            start = end;
        }
        Ok(picks)
    }

    /// The buffered rows at `picks`, as one batch.
    fn gather(&self, picks: &[Pick]) -> Result<RecordBatch> {
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let picks: Vec<(usize, usize)> = picks
            .iter()
            .map(|p| (p.batch as usize, p.row as usize))
            .collect();
        Ok(interleave_record_batch(&batches, &picks)?)
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
            // Each run holds its own first `limit` rows; the merge's first `limit` are the
            // answer.
            let mut remaining = self.limit.unwrap_or(usize::MAX);
            return Ok(Box::new(merge.map_while(move |batch| {
                if remaining == 0 {
                    return None;
                }
                Some(batch.map(|b| {
                    let n = b.num_rows().min(remaining);
                    remaining -= n;
                    b.slice(0, n)
                }))
            })));
        }
        if self.rows == 0 {
            return Ok(Box::new(std::iter::empty()));
        }
        let picks = self.sorted_picks(self.limit)?;
        let mut next = 0;
        // The buffered batches and their reservation live until the last output batch.
        Ok(Box::new(std::iter::from_fn(move || {
            let chunk = picks.get(next..picks.len().min(next + batch_size))?;
            next += chunk.len();
            (!chunk.is_empty()).then(|| self.gather(chunk))
        })))
    }
}

/// Sorts all of `input` with `sort` when the first batch is asked for, then yields the sorted
/// rows in batches of at most `batch_size` rows.
pub fn sort_stream(
    mut sort: SortBuffer,
    input: BatchIter,
    batch_size: usize,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    deferred(move || {
        for b in input {
            check_cancelled(&cancelled)?;
            sort.push(b?)?;
        }
        Ok(cancellable(sort.finish(batch_size)?, cancelled))
    })
}

/// One buffered row in the output order: its batch, its place there, and (where known) its
/// key prefix. 16 bytes, as the (prefix, index) pairs it is sorted from.
#[derive(Clone, Copy, Debug)]
struct Pick {
    prefix: u64,
    batch: u32,
    row: u32,
}

/// The (key prefix, index) of each of `keys` in order (the first `limit` of them when set).
/// It sorts (first 8 key bytes, index) pairs, so most comparisons are one integer compare.
fn sorted_prefixes(keys: &Rows, limit: Option<usize>) -> Vec<(u64, u32)> {
    let mut order: Vec<(u64, u32)> = (0..keys.num_rows())
        .map(|i| (key_prefix(keys.row(i).as_ref()), i as u32))
        .collect();
    let cmp = |a: &(u64, u32), b: &(u64, u32)| {
        a.0.cmp(&b.0)
            .then_with(|| keys.row(a.1 as usize).cmp(&keys.row(b.1 as usize)))
    };
    match limit {
        Some(k) if k < order.len() => {
            if k > 0 {
                order.select_nth_unstable_by(k - 1, cmp);
            }
            order.truncate(k);
            order.sort_unstable_by(cmp);
        }
        _ => order.sort_unstable_by(cmp),
    }
    order
}

/// The first 8 bytes of a row-format key as a big-endian number (zero-padded): ordering by
/// it never contradicts ordering by the whole key, and only equal prefixes need the key.
pub(crate) fn key_prefix(row: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = row.len().min(8);
    bytes[..n].copy_from_slice(&row[..n]);
    u64::from_be_bytes(bytes)
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
        let columns = sort_key_columns(&self.order, batch, &self.functions)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::memory_pool::MemoryPool;
    use arrow::array::{Array, AsArray, BinaryArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use quiver_plan::expr::col;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Keys from a two-letter alphabet, 0 to 19 bytes long, some NULL: many share their
    /// first 8 bytes or are prefixes of one another, so the whole-key tie-break is exercised.
    fn keys(rng: &mut StdRng, n: usize) -> Vec<Option<Vec<u8>>> {
        (0..n)
            .map(|_| {
                rng.random_bool(0.95).then(|| {
                    (0..rng.random_range(0..20))
                        .map(|_| if rng.random_bool(0.8) { b'a' } else { b'b' })
                        .collect()
                })
            })
            .collect()
    }

    fn sorted(
        order: SortExpr,
        limit: Option<u64>,
        batches: &[Vec<Option<Vec<u8>>>],
    ) -> Vec<Option<Vec<u8>>> {
        sorted_within(order, limit, batches, 1 << 30)
    }

    fn sorted_within(
        order: SortExpr,
        limit: Option<u64>,
        batches: &[Vec<Option<Vec<u8>>>],
        memory: usize,
    ) -> Vec<Option<Vec<u8>>> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Binary, true)]));
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = SortBuffer::new(
            schema.clone(),
            vec![order],
            limit,
            Arc::default(),
            MemoryPool::unchecked(memory).task().reservation(),
            Arc::new(SpillDir::new(dir.path().to_path_buf(), "sort".into())),
        )
        .unwrap();
        for keys in batches {
            let array = BinaryArray::from_iter(keys.iter().map(|k| k.as_deref()));
            buffer
                .push(RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).unwrap())
                .unwrap();
        }
        let mut out = Vec::new();
        for b in buffer.finish(100).unwrap() {
            let b = b.unwrap();
            let a = b.column(0).as_binary::<i32>();
            out.extend((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_vec())));
        }
        out
    }

    #[test]
    fn keys_sharing_their_first_eight_bytes_sort_by_the_whole_key() {
        let mut rng = StdRng::seed_from_u64(3);
        let batches: Vec<_> = (0..5).map(|_| keys(&mut rng, 700)).collect();
        let mut all: Vec<_> = batches.concat();
        // Ascending, nulls last: a plain sort of Options puts None first, so order by hand.
        all.sort_by(|a, b| match (a, b) {
            (Some(x), Some(y)) => x.cmp(y),
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Greater,
            (_, None) => std::cmp::Ordering::Less,
        });
        assert_eq!(sorted(SortExpr::asc(col("k")), None, &batches), all);
        assert_eq!(
            sorted(SortExpr::asc(col("k")), Some(123), &batches),
            all[..123].to_vec()
        );
        let mut descending: Vec<_> = all.iter().filter(|k| k.is_some()).cloned().collect();
        descending.reverse();
        let nulls = all.len() - descending.len();
        let mut expected = vec![None; nulls];
        expected.extend(descending);
        // desc() puts nulls first.
        assert_eq!(sorted(SortExpr::desc(col("k")), None, &batches), expected);
        // A top-k larger than memory spills runs of its own first k rows and merges them.
        assert_eq!(
            sorted_within(SortExpr::asc(col("k")), Some(2000), &batches, 16 << 10),
            all[..2000].to_vec()
        );
        assert_eq!(
            sorted_within(SortExpr::asc(col("k")), Some(u64::MAX), &batches, 16 << 10),
            all
        );
    }

    /// Keys that all share their first 8 row bytes (one group of equal prefixes across
    /// every batch), with repeats, in batches of different sizes: the merge of the presorted
    /// batches falls back to whole keys and still orders every row.
    #[test]
    fn one_group_of_equal_prefixes_across_all_batches_sorts_by_whole_keys() {
        let mut rng = StdRng::seed_from_u64(17);
        let batches: Vec<Vec<Option<Vec<u8>>>> = (0..6)
            .map(|b| {
                (0..50 + 37 * b)
                    .map(|_| {
                        let mut k = b"samesame".to_vec();
                        k.extend((0..rng.random_range(0..3)).map(|_| rng.random_range(b'a'..b'e')));
                        Some(k)
                    })
                    .collect()
            })
            .collect();
        let mut all = batches.concat();
        all.sort();
        assert_eq!(sorted(SortExpr::asc(col("k")), None, &batches), all);
    }

    /// Each batch is put in order as it arrives (so the final gather reads the batches front
    /// to back): whole rows move together, and the rows of every batch come out once, in
    /// key order across batches.
    #[test]
    fn presorted_batches_keep_their_rows_whole() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Binary, true),
            Field::new("id", DataType::UInt32, false),
        ]));
        let mut rng = StdRng::seed_from_u64(11);
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = SortBuffer::new(
            schema.clone(),
            vec![SortExpr::asc(col("k"))],
            None,
            Arc::default(),
            MemoryPool::unchecked(1 << 30).task().reservation(),
            Arc::new(SpillDir::new(dir.path().to_path_buf(), "sort".into())),
        )
        .unwrap();
        let mut expected = Vec::new();
        for b in 0..4u32 {
            let k = keys(&mut rng, 500);
            let ids: Vec<u32> = (0..500).map(|i| b * 1000 + i).collect();
            expected.extend(k.iter().cloned().zip(ids.iter().copied()));
            let columns: Vec<ArrayRef> = vec![
                Arc::new(BinaryArray::from_iter(k.iter().map(|k| k.as_deref()))),
                Arc::new(UInt32Array::from(ids)),
            ];
            buffer
                .push(RecordBatch::try_new(schema.clone(), columns).unwrap())
                .unwrap();
        }
        let mut out = Vec::new();
        for b in buffer.finish(64).unwrap() {
            let b = b.unwrap();
            let (k, id) = (
                b.column(0).as_binary::<i32>(),
                b.column(1).as_primitive::<arrow::datatypes::UInt32Type>(),
            );
            out.extend(
                (0..b.num_rows())
                    .map(|i| (k.is_valid(i).then(|| k.value(i).to_vec()), id.value(i))),
            );
        }
        // Ascending, nulls last, then by id: ties may come out in any order.
        let rank = |(k, id): &(Option<Vec<u8>>, u32)| (k.is_none(), k.clone(), *id);
        let keys_out: Vec<_> = out.iter().map(|(k, _)| (k.is_none(), k.clone())).collect();
        assert!(
            keys_out.windows(2).all(|w| w[0] <= w[1]),
            "keys out of order"
        );
        out.sort_by_key(rank);
        expected.sort_by_key(rank);
        assert_eq!(out, expected);
    }
}
