//! [`HashJoin`]: an equality join of one task's left rows with its right rows.
//!
//! The right side is the build side: all of its rows are gathered into one batch and their
//! keys (cast to the join's common key types; one Int64 key as is, anything else in Arrow's
//! row format) go into a hash table that maps each distinct key to a chain of build rows (Int64
//! keys within a narrow range: an array indexed by key, no hashing; within a wider one: a
//! bitmap of the keys present, ranked, indexing a compact array of chains). The left side
//! streams through:
//! [`HashJoin::next_batch`] walks each left row's chain and emits at most `batch_size`
//! output rows at a time, so a key with many matches never builds one huge batch.
//!
//! A row with a NULL in any key column matches nothing. Which rows are kept and which
//! columns are output follows [`quiver_plan::join`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array, new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{concat_batches, filter_record_batch, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows, SortField};
use quiver_plan::join::{JoinLayout, coerced_keys, join_key_types, join_layout};
use quiver_plan::{Expr, JoinType};

use super::group_keys::ByteInterner;
use crate::error::Result;
use crate::expr::expr_eval::evaluate;
use crate::functions::FunctionRegistry;
use crate::memory::memory_pool::{MemoryReservation, batch_bytes};
use crate::memory::spill::{SpillDir, SpillRun, SpillWriter};
use crate::shuffle::hash_partitioner::HashPartitioner;

/// End of a chain of build rows.
const NO_ROW: u32 = u32::MAX;

/// The key columns of a batch, as the hash table looks them up.
enum KeyColumns {
    /// One Int64 key (the common case: ids).
    Int64(Int64Array),
    /// Any other keys, in row format.
    Rows(Rows),
}

/// Build keys in `min ..= min + heads.len() - 1` at most this many slots per build row
/// (plus a little) go into a [`KeyTable::Dense`] array rather than a hash map: no more
/// memory than the map (about 16 bytes a row) and one memory access per lookup, not two.
const DENSE_SLOTS_PER_ROW: usize = 4;

/// Build keys spread wider than [`DENSE_SLOTS_PER_ROW`] but within this many slots per build
/// row (plus a little) go into a [`KeyTable::Ranked`] bitmap: a hash partition of ids (every
/// other order key of a range, say) still costs a bit per slot and 4 bytes per key, against
/// about 20 for the hash map, and a lookup touches the small bitmap and one head.
const RANKED_SLOTS_PER_ROW: usize = 64;

/// 64 slots of a [`KeyTable::Ranked`] bitmap: which keys are present, and how many are
/// present in the blocks before (the index of this block's first key in `heads`).
#[derive(Clone, Copy, Default)]
struct RankedBlock {
    bits: u64,
    rank: u32,
}

/// Distinct build keys, each with the first build row of its chain.
enum KeyTable {
    Int64(hashbrown::HashMap<i64, u32>),
    /// Int64 keys within a wider range: key `k` is present when bit `k - min` of `blocks` is
    /// set, and its head is `heads[number of keys present below it]`.
    Ranked {
        min: i64,
        blocks: Vec<RankedBlock>,
        heads: Vec<u32>,
    },
    /// Int64 keys within a narrow range (ids, the common case): the head of key `k` is
    /// `heads[k - min]`, [`NO_ROW`] for none. No hashing, no compare, one cache miss.
    Dense {
        min: i64,
        heads: Vec<u32>,
    },
    Rows {
        keys: ByteInterner,
        heads: Vec<u32>,
    },
}

impl KeyTable {
    /// The first build row holding the key of each row of `columns` ([`NO_ROW`] for none, and
    /// for a row with a NULL key). One tight loop of independent lookups, so the CPU overlaps
    /// their cache misses: on a build side larger than the cache this is most of a probe.
    fn heads(&self, columns: &KeyColumns, nulls: Option<&NullBuffer>, out: &mut Vec<u32>) {
        out.clear();
        match (self, columns) {
            (KeyTable::Int64(map), KeyColumns::Int64(a)) => out.extend(
                a.values()
                    .iter()
                    .map(|k| map.get(k).copied().unwrap_or(NO_ROW)),
            ),
            (KeyTable::Dense { min, heads }, KeyColumns::Int64(a)) => {
                out.extend(a.values().iter().map(|&k| {
                    // Keys below `min` wrap around to huge offsets: out of range too.
                    let slot = k.wrapping_sub(*min) as u64;
                    heads.get(slot as usize).copied().unwrap_or(NO_ROW)
                }))
            }
            (KeyTable::Ranked { min, blocks, heads }, KeyColumns::Int64(a)) => out.extend(
                a.values()
                    .iter()
                    .map(|&k| ranked_index(*min, blocks, k).map_or(NO_ROW, |i| heads[i])),
            ),
            (KeyTable::Rows { keys, heads }, KeyColumns::Rows(rows)) => {
                out.extend(rows.iter().map(|row| {
                    keys.find(row.as_ref())
                        .map_or(NO_ROW, |g| heads[g as usize])
                }))
            }
            _ => {}
        }
        // A NULL key matches nothing (a NULL slot of an Int64 key holds an arbitrary value).
        if let Some(nulls) = nulls.filter(|n| n.null_count() > 0) {
            for (head, valid) in out.iter_mut().zip(nulls.iter()) {
                if !valid {
                    *head = NO_ROW;
                }
            }
        }
    }

    /// Makes row `r` the head of its key's chain; returns the previous head.
    fn push_front(&mut self, columns: &KeyColumns, r: usize) -> Option<u32> {
        match (self, columns) {
            (KeyTable::Int64(map), KeyColumns::Int64(a)) => map.insert(a.value(r), r as u32),
            (KeyTable::Dense { min, heads }, KeyColumns::Int64(a)) => {
                let slot = &mut heads[a.value(r).wrapping_sub(*min) as u64 as usize];
                let previous = std::mem::replace(slot, r as u32);
                (previous != NO_ROW).then_some(previous)
            }
            (KeyTable::Ranked { min, blocks, heads }, KeyColumns::Int64(a)) => {
                // Every build key's bit was set when the table was made.
                let i = ranked_index(*min, blocks, a.value(r))?;
                let previous = std::mem::replace(&mut heads[i], r as u32);
                (previous != NO_ROW).then_some(previous)
            }
            (KeyTable::Rows { keys, heads }, KeyColumns::Rows(rows)) => {
                let g = keys.intern(rows.row(r).as_ref()) as usize;
                if g == heads.len() {
                    heads.push(r as u32);
                    None
                } else {
                    Some(std::mem::replace(&mut heads[g], r as u32))
                }
            }
            _ => None,
        }
    }

    fn allocated_bytes(&self) -> usize {
        match self {
            KeyTable::Int64(map) => map.capacity() * 16,
            KeyTable::Dense { heads, .. } => heads.capacity() * 4,
            KeyTable::Ranked { blocks, heads, .. } => {
                blocks.capacity() * std::mem::size_of::<RankedBlock>() + heads.capacity() * 4
            }
            KeyTable::Rows { keys, heads } => keys.allocated_bytes() + heads.capacity() * 4,
        }
    }
}

/// The build side: its rows and a table from key to the chain of rows holding it.
struct BuildSide {
    batch: RecordBatch,
    keys: KeyTable,
    /// Next build row with the same key, or [`NO_ROW`].
    next: Vec<u32>,
    /// Whether any key has more than one row; without, `next` is never read (a primary key
    /// build side, the usual case, saves a cache miss per match).
    chained: bool,
    /// Right and full joins: which build rows found a match.
    matched: Vec<bool>,
}

/// The left batch being probed and where the probe is in it.
struct ProbeCursor {
    batch: RecordBatch,
    /// The first build row of each left row's chain, [`NO_ROW`] for none.
    heads: Vec<u32>,
    /// The left row being probed.
    row: usize,
    /// The next build row of that row's chain.
    chain: u32,
    /// Whether `chain` was set for this row (a row may have no match).
    looked_up: bool,
    matched: bool,
}

/// Join state of one task.
pub struct HashJoin {
    join_type: JoinType,
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    layout: JoinLayout,
    /// For each output right column, the left column holding the same values in every output
    /// row, if any: an inner join's right key equals its left key (same type, no cast, not a
    /// float). Such a column is the left one's copy, not a random gather from the build side.
    right_as_left: Vec<Option<usize>>,
    converter: RowConverter,
    functions: Arc<FunctionRegistry>,
    batch_size: usize,
    build: Option<BuildSide>,
    probe: Option<ProbeCursor>,
    unmatched_right_done: bool,
}

impl HashJoin {
    /// The join `spec` describes, hashing the keys as `keys` says.
    pub fn new(spec: &JoinSpec, keys: &JoinKeys) -> Result<Self> {
        let layout = join_layout(
            &spec.left_schema,
            &spec.right_schema,
            &spec.left_keys,
            &spec.right_keys,
            spec.join_type,
        )?;
        let converter = RowConverter::new(
            keys.types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )?;
        Ok(HashJoin {
            join_type: spec.join_type,
            left_keys: keys.left.clone(),
            right_keys: keys.right.clone(),
            right_as_left: right_keys_as_left(spec, keys, &layout),
            layout,
            converter,
            functions: spec.functions.clone(),
            batch_size: spec.batch_size.max(1),
            build: None,
            probe: None,
            unmatched_right_done: false,
        })
    }

    /// Key columns of `batch` and which rows have a NULL key.
    fn key_rows(
        &self,
        batch: &RecordBatch,
        keys: &[Expr],
    ) -> Result<(KeyColumns, Option<NullBuffer>)> {
        let arrays = keys
            .iter()
            .map(|k| evaluate(k, batch, &self.functions))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let nulls = arrays.iter().fold(None, |acc: Option<NullBuffer>, a| {
            NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
        });
        if let [single] = arrays.as_slice()
            && let Some(ints) = single.as_any().downcast_ref::<Int64Array>()
        {
            return Ok((KeyColumns::Int64(ints.clone()), nulls));
        }
        Ok((
            KeyColumns::Rows(self.converter.convert_columns(&arrays)?),
            nulls,
        ))
    }

    /// Takes the whole build (right) side.
    pub fn build(&mut self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        let batch = concat_batches(schema, batches)?;
        let (rows, nulls) = self.key_rows(&batch, &self.right_keys.clone())?;
        let n = batch.num_rows();
        let mut keys = match &rows {
            KeyColumns::Int64(a) => match key_range(a, nulls.as_ref()) {
                Some((min, slots)) if fits(slots, n, DENSE_SLOTS_PER_ROW) => KeyTable::Dense {
                    min,
                    heads: vec![NO_ROW; slots as usize],
                },
                Some((min, slots)) if fits(slots, n, RANKED_SLOTS_PER_ROW) => {
                    ranked_table(a, nulls.as_ref(), min, slots)
                }
                _ => KeyTable::Int64(hashbrown::HashMap::with_capacity(n)),
            },
            KeyColumns::Rows(_) => KeyTable::Rows {
                keys: ByteInterner::new(),
                heads: Vec::new(),
            },
        };
        let mut next = vec![NO_ROW; n];
        let mut chained = false;
        // Inserted back to front so that each chain lists its rows in input order.
        for r in (0..n).rev() {
            if nulls.as_ref().is_some_and(|nb| nb.is_null(r)) {
                continue;
            }
            if let Some(previous) = keys.push_front(&rows, r) {
                next[r] = previous;
                chained = true;
            }
        }
        let matched = if self.join_type.keeps_unmatched_right() {
            vec![false; n]
        } else {
            vec![]
        };
        self.build = Some(BuildSide {
            batch,
            keys,
            next,
            chained,
            matched,
        });
        Ok(())
    }

    /// Starts probing one left batch; call [`HashJoin::next_batch`] until it returns `None`.
    pub fn probe(&mut self, batch: RecordBatch) -> Result<()> {
        let (rows, nulls) = self.key_rows(&batch, &self.left_keys.clone())?;
        let mut heads = Vec::with_capacity(batch.num_rows());
        if let Some(build) = &self.build {
            build.keys.heads(&rows, nulls.as_ref(), &mut heads);
        }
        self.probe = Some(ProbeCursor {
            batch,
            heads,
            row: 0,
            chain: NO_ROW,
            looked_up: false,
            matched: false,
        });
        Ok(())
    }

    /// The next output batch of the left batch being probed, or `None` when it is done.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let (Some(build), Some(cursor)) = (self.build.as_mut(), self.probe.as_mut()) else {
            return Ok(None);
        };
        let limit = self.batch_size;
        let join_type = self.join_type;
        let mut left_idx: Vec<u32> = Vec::with_capacity(limit.min(cursor.batch.num_rows() * 2));
        // NO_ROW for a left row without a match (outer joins).
        let mut right_idx: Vec<u32> = Vec::with_capacity(left_idx.capacity());
        let rows = cursor.batch.num_rows();
        while cursor.row < rows && left_idx.len() < limit {
            let i = cursor.row;
            if !cursor.looked_up {
                cursor.looked_up = true;
                cursor.matched = false;
                cursor.chain = cursor.heads.get(i).copied().unwrap_or(NO_ROW);
            }
            match join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => {
                    let found = cursor.chain != NO_ROW;
                    if found == (join_type == JoinType::LeftSemi) {
                        left_idx.push(i as u32);
                    }
                    cursor.chain = NO_ROW;
                }
                _ => {
                    while cursor.chain != NO_ROW && left_idx.len() < limit {
                        let r = cursor.chain;
                        left_idx.push(i as u32);
                        right_idx.push(r);
                        if !build.matched.is_empty() {
                            build.matched[r as usize] = true;
                        }
                        cursor.matched = true;
                        cursor.chain = if build.chained {
                            build.next[r as usize]
                        } else {
                            NO_ROW
                        };
                    }
                    if cursor.chain != NO_ROW {
                        break; // the batch is full in the middle of a chain
                    }
                    if !cursor.matched && join_type.keeps_unmatched_left() {
                        left_idx.push(i as u32);
                        right_idx.push(NO_ROW);
                    }
                }
            }
            cursor.row += 1;
            cursor.looked_up = false;
        }
        // The loop stops early only with a full batch, so an empty one means the end.
        let batch = cursor.batch.clone();
        if cursor.row >= rows {
            self.probe = None;
        }
        if left_idx.is_empty() {
            return Ok(None);
        }
        self.assemble(&batch, left_idx, right_idx).map(Some)
    }

    /// Output rows from left rows `left_idx` and (unless semi/anti) build rows `right_idx`.
    fn assemble(
        &self,
        left: &RecordBatch,
        left_idx: Vec<u32>,
        right_idx: Vec<u32>,
    ) -> Result<RecordBatch> {
        let n = left_idx.len();
        let left_idx = UInt32Array::from(left_idx);
        let mut columns = left
            .columns()
            .iter()
            .map(|c| Ok(take(c.as_ref(), &left_idx, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        if self.join_type.outputs_right() {
            let nulls = right_idx
                .contains(&NO_ROW)
                .then(|| NullBuffer::from_iter(right_idx.iter().map(|&r| r != NO_ROW)));
            let right_idx = UInt32Array::new(right_idx.into(), nulls);
            let build = &self.build.as_ref().expect("probing after build").batch;
            for (&c, same) in self.layout.right_columns.iter().zip(&self.right_as_left) {
                columns.push(match same {
                    Some(l) => columns[*l].clone(),
                    None => take(build.column(c).as_ref(), &right_idx, None)?,
                });
            }
        }
        Ok(RecordBatch::try_new_with_options(
            self.layout.schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    /// Right and full joins, after every left batch: the build rows that found no match,
    /// with NULL left columns. `None` for other joins, or when called again.
    pub fn unmatched_right(&mut self) -> Result<Option<RecordBatch>> {
        if !self.join_type.keeps_unmatched_right() || self.unmatched_right_done {
            return Ok(None);
        }
        self.unmatched_right_done = true;
        let Some(build) = &self.build else {
            return Ok(None);
        };
        let keep = BooleanArray::from(build.matched.iter().map(|m| !m).collect::<Vec<_>>());
        let rows = filter_record_batch(&build.batch, &keep)?;
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        let left_fields = self.layout.schema.fields().len() - self.layout.right_columns.len();
        let mut columns: Vec<ArrayRef> = self.layout.schema.fields()[..left_fields]
            .iter()
            .map(|f| new_null_array(f.data_type(), rows.num_rows()))
            .collect();
        for &c in &self.layout.right_columns {
            columns.push(rows.column(c).clone());
        }
        Ok(Some(RecordBatch::try_new(
            self.layout.schema.clone(),
            columns,
        )?))
    }

    /// Bytes held by the build side, for memory accounting.
    pub fn build_bytes(&self) -> usize {
        self.build.as_ref().map_or(0, |b| {
            batch_bytes(&b.batch)
                + b.keys.allocated_bytes()
                + b.next.capacity() * 4
                + b.matched.capacity()
        })
    }
}

/// [`HashJoin::right_as_left`] for this join.
fn right_keys_as_left(spec: &JoinSpec, keys: &JoinKeys, layout: &JoinLayout) -> Vec<Option<usize>> {
    let same = |c: usize| -> Option<usize> {
        if spec.join_type != JoinType::Inner {
            return None;
        }
        let right = spec.right_schema.field(c);
        keys.right
            .iter()
            .zip(&keys.left)
            .find_map(|(r, l)| match (r, l) {
                (Expr::Column(r), Expr::Column(l)) if r == right.name() => {
                    let (i, left) = spec.left_schema.column_with_name(l)?;
                    let t = left.data_type();
                    (t == right.data_type() && !t.is_floating()).then_some(i)
                }
                _ => None,
            })
    };
    layout.right_columns.iter().map(|&c| same(c)).collect()
}

/// The smallest non-NULL key of `keys` and the number of slots from it to the largest (as
/// an i128: the span of two i64 keys may not fit an i64). `None` when all are NULL.
fn key_range(keys: &Int64Array, nulls: Option<&NullBuffer>) -> Option<(i64, i128)> {
    let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    let mut any = false;
    for (i, &k) in keys.values().iter().enumerate() {
        if valid(i) {
            min = min.min(k);
            max = max.max(k);
            any = true;
        }
    }
    any.then(|| (min, i128::from(max) - i128::from(min) + 1))
}

/// Whether `slots` are at most `per_row` per build row (plus 1024).
fn fits(slots: i128, rows: usize, per_row: usize) -> bool {
    super::int64_keys::slots_fit(slots, rows, per_row, 1024)
}

/// A [`KeyTable::Ranked`] holding the non-NULL `keys`, in `min ..` over `slots` slots, with
/// no chain heads yet.
fn ranked_table(keys: &Int64Array, nulls: Option<&NullBuffer>, min: i64, slots: i128) -> KeyTable {
    let mut blocks = vec![RankedBlock::default(); (slots as usize).div_ceil(64)];
    for (i, &k) in keys.values().iter().enumerate() {
        if nulls.is_none_or(|n| n.is_valid(i)) {
            let slot = k.wrapping_sub(min) as u64;
            blocks[(slot / 64) as usize].bits |= 1 << (slot % 64);
        }
    }
    let mut rank = 0u32;
    for block in &mut blocks {
        block.rank = rank;
        rank += block.bits.count_ones();
    }
    KeyTable::Ranked {
        min,
        blocks,
        heads: vec![NO_ROW; rank as usize],
    }
}

/// The index in a [`KeyTable::Ranked`]'s heads of key `k`, if present.
#[inline]
fn ranked_index(min: i64, blocks: &[RankedBlock], k: i64) -> Option<usize> {
    // Keys below `min` wrap around to huge offsets: out of range too.
    let slot = k.wrapping_sub(min) as u64;
    let block = blocks.get((slot / 64) as usize)?;
    let bit = 1u64 << (slot % 64);
    (block.bits & bit != 0)
        .then(|| block.rank as usize + (block.bits & (bit - 1)).count_ones() as usize)
}

/// How many partitions a join whose build side is over budget splits both sides into.
const GRACE_PARTITIONS: u32 = 16;
/// Remixes the key hash for the join's spill partitions (any constant other than 0).
const GRACE_SEED: u64 = 0x2F_5A_94_C3_11_D8_7E_01;

/// What a join needs besides its inputs.
#[derive(Clone)]
pub struct JoinSpec {
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    pub left_keys: Vec<Expr>,
    pub right_keys: Vec<Expr>,
    pub join_type: JoinType,
    pub functions: Arc<FunctionRegistry>,
    pub batch_size: usize,
    pub cancelled: Arc<std::sync::atomic::AtomicBool>,
}

impl JoinSpec {
    fn check_cancelled(&self) -> Result<()> {
        super::batch_stream::check_cancelled(&self.cancelled)
    }

    /// The common key types and each side's keys cast to them.
    fn hashed_keys(&self) -> Result<JoinKeys> {
        let types = join_key_types(
            &self.left_schema,
            &self.right_schema,
            &self.left_keys,
            &self.right_keys,
        )?;
        Ok(JoinKeys {
            left: coerced_keys(&self.left_keys, &self.left_schema, &types)?,
            right: coerced_keys(&self.right_keys, &self.right_schema, &types)?,
            types,
        })
    }
}

/// A join's keys as both sides hash them: their common types, and each side's key
/// expressions cast to those types. Worked out once per join.
pub struct JoinKeys {
    types: Vec<arrow::datatypes::DataType>,
    left: Vec<Expr>,
    right: Vec<Expr>,
}

impl JoinKeys {
    /// The key columns of a `left` (or right) batch.
    fn arrays(
        &self,
        batch: &RecordBatch,
        left: bool,
        functions: &FunctionRegistry,
    ) -> Result<Vec<ArrayRef>> {
        let keys = if left { &self.left } else { &self.right };
        keys.iter().map(|k| evaluate(k, batch, functions)).collect()
    }
}

/// Batches of one side split into spill files by a hash of their keys.
struct PartitionedSide {
    writers: Vec<SpillWriter>,
    partitioner: HashPartitioner,
    scratch: Vec<u32>,
}

impl PartitionedSide {
    fn new(spec: &JoinSpec, keys: &JoinKeys, spill: &SpillDir, left: bool) -> Result<Self> {
        let schema = if left {
            &spec.left_schema
        } else {
            &spec.right_schema
        };
        Ok(PartitionedSide {
            writers: (0..GRACE_PARTITIONS)
                .map(|_| spill.create(schema))
                .collect::<Result<_>>()?,
            partitioner: HashPartitioner::new(GRACE_PARTITIONS, &keys.types)?.with_seed(GRACE_SEED),
            scratch: Vec::new(),
        })
    }

    fn write(
        &mut self,
        spec: &JoinSpec,
        keys: &JoinKeys,
        batch: &RecordBatch,
        left: bool,
    ) -> Result<()> {
        let keys = keys.arrays(batch, left, &spec.functions)?;
        self.partitioner
            .partition(&keys, batch.num_rows(), &mut self.scratch)?;
        for (p, writer) in self.writers.iter_mut().enumerate() {
            let mask = BooleanArray::from(
                self.scratch
                    .iter()
                    .map(|&b| b as usize == p)
                    .collect::<Vec<_>>(),
            );
            writer.write(&filter_record_batch(batch, &mask)?)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<SpillRun>> {
        self.writers.into_iter().map(|w| w.finish()).collect()
    }
}

/// Batches flowing into or out of a join.
pub type JoinInput = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// A join of two inputs as a stream of output batches: builds a hash table of the right
/// input, then probes it with the left. When the right side is over the task's memory
/// budget, both sides are split by key hash into spill partitions (a "grace" hash join),
/// and each pair of partitions is joined in turn.
pub struct HashJoinStream {
    spec: JoinSpec,
    keys: Arc<JoinKeys>,
    memory: Option<MemoryReservation>,
    spill: Arc<SpillDir>,
    build_source: Option<JoinInput>,
    probe_source: Option<JoinInput>,
    join: Option<HashJoin>,
    probing: bool,
    /// Grace mode: the partitions still to join, and the one being joined.
    partitions: std::collections::VecDeque<(SpillRun, SpillRun)>,
    current: Option<Box<HashJoinStream>>,
    done: bool,
}

impl HashJoinStream {
    /// A join of `left` (probe) with `right` (build). Without `memory` the build side is
    /// held whatever its size.
    pub fn new(
        spec: JoinSpec,
        left: JoinInput,
        right: JoinInput,
        memory: Option<MemoryReservation>,
        spill: Arc<SpillDir>,
    ) -> Result<Self> {
        let keys = Arc::new(spec.hashed_keys()?);
        Ok(Self::with_keys(spec, keys, left, right, memory, spill))
    }

    fn with_keys(
        spec: JoinSpec,
        keys: Arc<JoinKeys>,
        left: JoinInput,
        right: JoinInput,
        memory: Option<MemoryReservation>,
        spill: Arc<SpillDir>,
    ) -> Self {
        HashJoinStream {
            spec,
            keys,
            memory,
            spill,
            build_source: Some(right),
            probe_source: Some(left),
            join: None,
            probing: false,
            partitions: Default::default(),
            current: None,
            done: false,
        }
    }

    /// Reads the build side; returns false if it went over budget and was partitioned.
    fn build(&mut self) -> Result<bool> {
        let Some(mut source) = self.build_source.take() else {
            return Ok(true);
        };
        let mut batches = Vec::new();
        let mut bytes = 0;
        while let Some(b) = source.next() {
            self.spec.check_cancelled()?;
            let b = b?;
            bytes += batch_bytes(&b);
            batches.push(b);
            let fits = self.memory.as_mut().is_none_or(|m| m.try_resize(bytes));
            if !fits {
                self.partition_both(batches, source)?;
                return Ok(false);
            }
        }
        let mut join = HashJoin::new(&self.spec, &self.keys)?;
        join.build(&self.spec.right_schema, &batches)?;
        if let Some(m) = self.memory.as_mut() {
            m.resize(join.build_bytes());
        }
        self.join = Some(join);
        Ok(true)
    }

    /// Grace mode: writes both whole sides into key-hash partitions.
    fn partition_both(&mut self, held: Vec<RecordBatch>, rest: JoinInput) -> Result<()> {
        let mut right = PartitionedSide::new(&self.spec, &self.keys, &self.spill, false)?;
        for b in held {
            right.write(&self.spec, &self.keys, &b, false)?;
        }
        if let Some(m) = self.memory.as_mut() {
            m.resize(0);
        }
        for b in rest {
            self.spec.check_cancelled()?;
            right.write(&self.spec, &self.keys, &b?, false)?;
        }
        let mut left = PartitionedSide::new(&self.spec, &self.keys, &self.spill, true)?;
        for b in self.probe_source.take().into_iter().flatten() {
            self.spec.check_cancelled()?;
            left.write(&self.spec, &self.keys, &b?, true)?;
        }
        self.partitions = left.finish()?.into_iter().zip(right.finish()?).collect();
        Ok(())
    }

    fn step(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(current) = self.current.as_mut() {
                match current.next() {
                    Some(b) => return b.map(Some),
                    None => self.current = None,
                }
            }
            if let Some((left, right)) = self.partitions.pop_front() {
                // One partition's build side is a sixteenth of the whole: held in memory.
                // (The files may go once open: their open handles keep the data readable.)
                let left_input: JoinInput = Box::new(left.read()?);
                let right_input: JoinInput = Box::new(right.read()?);
                drop((left, right));
                self.current = Some(Box::new(HashJoinStream::with_keys(
                    self.spec.clone(),
                    self.keys.clone(),
                    left_input,
                    right_input,
                    None,
                    self.spill.clone(),
                )));
                continue;
            }
            if self.done {
                return Ok(None);
            }
            if self.join.is_none() && !self.build()? {
                self.done = true;
                continue;
            }
            let Some(join) = self.join.as_mut() else {
                return Ok(None);
            };
            if self.probing {
                if let Some(out) = join.next_batch()? {
                    return Ok(Some(out));
                }
                self.probing = false;
            }
            match self.probe_source.as_mut().and_then(Iterator::next) {
                Some(b) => {
                    self.spec.check_cancelled()?;
                    join.probe(b?)?;
                    self.probing = true;
                }
                None => {
                    self.done = true;
                    let unmatched = join.unmatched_right()?;
                    self.join = None;
                    return Ok(unmatched);
                }
            }
        }
    }
}

impl Iterator for HashJoinStream {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use quiver_plan::expr::col;

    fn side(key: &str, id: &str, keys: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(key, DataType::Int64, true),
            Field::new(id, DataType::Int64, false),
        ]));
        let ids = Int64Array::from_iter_values(0..keys.len() as i64);
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(keys.to_vec())), Arc::new(ids)],
        )
        .unwrap()
    }

    /// Inner join of `left` with `right` on their keys: which table the build side went into
    /// (`dense`, `ranked` or `map`), and the (left row, right row) pairs out, sorted.
    fn join(
        left_keys: &[Option<i64>],
        right_keys: &[Option<i64>],
    ) -> (&'static str, Vec<(i64, i64)>) {
        let (left, right) = (side("lk", "lid", left_keys), side("rk", "rid", right_keys));
        let spec = JoinSpec {
            left_schema: left.schema(),
            right_schema: right.schema(),
            left_keys: vec![col("lk")],
            right_keys: vec![col("rk")],
            join_type: JoinType::Inner,
            functions: Default::default(),
            batch_size: 7,
            cancelled: Default::default(),
        };
        let mut join = HashJoin::new(&spec, &spec.hashed_keys().unwrap()).unwrap();
        join.build(&right.schema(), &[right]).unwrap();
        let table = match join.build.as_ref().unwrap().keys {
            KeyTable::Dense { .. } => "dense",
            KeyTable::Ranked { .. } => "ranked",
            _ => "map",
        };
        join.probe(left).unwrap();
        let mut pairs = Vec::new();
        while let Some(b) = join.next_batch().unwrap() {
            let id = |name| b.column_by_name(name).unwrap().as_primitive::<Int64Type>();
            pairs.extend(
                id("lid")
                    .values()
                    .iter()
                    .copied()
                    .zip(id("rid").values().iter().copied()),
            );
            // The right key column (the left side's equal key, in an inner join) holds each
            // right row's own key.
            let rk = b.column_by_name("rk").unwrap().as_primitive::<Int64Type>();
            for (r, k) in id("rid").values().iter().zip(rk.values()) {
                assert_eq!(right_keys[*r as usize], Some(*k));
            }
        }
        pairs.sort_unstable();
        (table, pairs)
    }

    /// Every (left, right) pair of equal non-NULL keys: the reference.
    fn nested_loop(left: &[Option<i64>], right: &[Option<i64>]) -> Vec<(i64, i64)> {
        let mut pairs = Vec::new();
        for (l, lk) in left.iter().enumerate() {
            for (r, rk) in right.iter().enumerate() {
                if lk.is_some() && lk == rk {
                    pairs.push((l as i64, r as i64));
                }
            }
        }
        pairs
    }

    /// Narrow build keys go into the dense array, wider ones into the ranked bitmap, wide ones
    /// into the hash map, and all find exactly the reference's matches: duplicates, NULLs,
    /// probe keys on either side of the build range and in the bitmap's last block, keys at
    /// the ends of i64 (where `k - min` would overflow).
    #[test]
    fn dense_ranked_and_hashed_build_sides_find_the_same_matches() {
        let right: Vec<Option<i64>> = (0..300)
            .map(|i| (i % 17 != 0).then_some(100 + (i * 7) % 200))
            .collect();
        let left: Vec<Option<i64>> = (0..500)
            .map(|i| (i % 23 != 0).then_some(50 + (i * 11) % 320))
            .collect();
        let spread = |keys: &[Option<i64>], by: i64| -> Vec<Option<i64>> {
            keys.iter().map(|k| k.map(|k| k * by)).collect()
        };
        let cases = [
            (left.clone(), right.clone(), "dense"),
            (spread(&left, 40), spread(&right, 40), "ranked"),
            (spread(&left, 1_000_003), spread(&right, 1_000_003), "map"),
            (
                vec![
                    Some(i64::MAX),
                    Some(i64::MIN),
                    Some(i64::MIN + 3),
                    None,
                    Some(0),
                ],
                vec![Some(i64::MIN), Some(i64::MIN + 3), Some(i64::MIN), None],
                "dense",
            ),
            (
                vec![
                    Some(i64::MAX),
                    Some(i64::MIN),
                    Some(i64::MAX - 1100),
                    Some(i64::MAX - 1),
                    Some(i64::MAX - 64),
                    None,
                    Some(i64::MIN + 5),
                    Some(i64::MAX - 1101),
                ],
                vec![
                    Some(i64::MAX - 1100),
                    Some(i64::MAX),
                    Some(i64::MAX - 64),
                    None,
                    Some(i64::MAX),
                ],
                "ranked",
            ),
            (
                vec![Some(i64::MAX), Some(i64::MIN), Some(-1)],
                vec![Some(i64::MIN), Some(i64::MAX), Some(i64::MAX)],
                "map",
            ),
        ];
        for (i, (left, right, table)) in cases.iter().enumerate() {
            let want = nested_loop(left, right);
            assert!(!want.is_empty(), "case {i} has no matches to find");
            assert_eq!(join(left, right), (*table, want), "case {i}");
        }
    }
}
