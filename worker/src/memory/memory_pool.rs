//! [`MemoryPool`]: how many bytes of operator state a worker may hold, split evenly among its
//! task slots, and [`MemoryReservation`]: what one operator of one task holds now.
//!
//! A reservation grows only if both the task's share and the whole pool allow it; an operator
//! whose growth is refused spills and shrinks its reservation. The accounting counts the
//! Arrow buffers and hash tables that operators report, not every allocation, so a worker's
//! resident memory is its limit plus a fixed overhead (code, I/O buffers, batches in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The smallest share a task slot may get: below this a task cannot hold the few batches it
/// needs to make progress.
pub const MIN_TASK_MEMORY: usize = 8 << 20;

/// A worker's memory budget.
#[derive(Debug)]
pub struct MemoryPool {
    limit: usize,
    per_task: usize,
    used: AtomicUsize,
}

/// Why a memory limit cannot work.
#[derive(Debug, thiserror::Error)]
#[error(
    "--memory-limit {limit} bytes gives each of {slots} task slots {per_task} bytes; each slot \
     needs at least {MIN_TASK_MEMORY} bytes (8 MiB) to make progress"
)]
pub struct MemoryLimitTooSmall {
    pub limit: usize,
    pub slots: usize,
    pub per_task: usize,
}

impl MemoryPool {
    /// A pool of `limit` bytes for `slots` concurrent tasks.
    pub fn new(limit: usize, slots: usize) -> Result<Arc<Self>, MemoryLimitTooSmall> {
        let slots = slots.max(1);
        let per_task = limit / slots;
        if per_task < MIN_TASK_MEMORY {
            return Err(MemoryLimitTooSmall {
                limit,
                slots,
                per_task,
            });
        }
        Ok(Arc::new(MemoryPool {
            limit,
            per_task,
            used: AtomicUsize::new(0),
        }))
    }

    /// A pool of `limit` bytes for one task, without the minimum share: for tests that need
    /// operators to spill on small data.
    #[cfg(any(test, feature = "internals"))]
    pub fn unchecked(limit: usize) -> Arc<Self> {
        Arc::new(MemoryPool {
            limit,
            per_task: limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now, over all tasks.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A budget for one task.
    pub fn task(self: &Arc<Self>) -> TaskMemory {
        TaskMemory {
            pool: self.clone(),
            used: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// One task's share of the pool; operators of the task take reservations from it.
#[derive(Clone, Debug)]
pub struct TaskMemory {
    pool: Arc<MemoryPool>,
    used: Arc<AtomicUsize>,
}

impl TaskMemory {
    /// An empty reservation.
    pub fn reservation(&self) -> MemoryReservation {
        MemoryReservation {
            task: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes one operator holds; released when dropped.
#[derive(Debug)]
pub struct MemoryReservation {
    task: TaskMemory,
    bytes: usize,
}

impl MemoryReservation {
    /// The task this reservation counts against.
    pub fn task(&self) -> &TaskMemory {
        &self.task
    }

    /// Bytes reserved.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Sets the reservation to `bytes` if the task's share and the pool allow it; otherwise
    /// leaves it unchanged and returns false (the caller should spill).
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            self.resize(bytes);
            return true;
        }
        let grow = bytes - self.bytes;
        let task_used = self.task.used.load(Ordering::Relaxed);
        if task_used + grow > self.task.pool.per_task {
            return false;
        }
        let pool = &self.task.pool;
        let granted = pool
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + grow <= pool.limit).then_some(used + grow)
            })
            .is_ok();
        if granted {
            self.task.used.fetch_add(grow, Ordering::Relaxed);
            self.bytes = bytes;
        }
        granted
    }

    /// Sets the reservation to `bytes` whatever the budget says (after a spill, what is left
    /// must still be counted).
    pub fn resize(&mut self, bytes: usize) {
        if bytes >= self.bytes {
            let grow = bytes - self.bytes;
            self.task.pool.used.fetch_add(grow, Ordering::Relaxed);
            self.task.used.fetch_add(grow, Ordering::Relaxed);
        } else {
            let shrink = self.bytes - bytes;
            self.task.pool.used.fetch_sub(shrink, Ordering::Relaxed);
            self.task.used.fetch_sub(shrink, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.resize(0);
    }
}

/// The bytes `batch`'s rows occupy: the used part of each buffer. Unlike
/// `RecordBatch::get_array_memory_size`, a buffer shared by several columns or slices (as
/// in every batch decoded from Arrow IPC, whose columns are slices of one message body) is
/// not counted once per column at its whole capacity: that overstated a decoded shuffle
/// bucket several times over and made sorts and joins spill what fitted.
pub fn batch_bytes(batch: &arrow::array::RecordBatch) -> usize {
    use arrow::array::Array;
    batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            data.get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// The bytes of the allocations `batch`'s columns keep alive, each allocation counted once:
/// more than [`batch_bytes`] when columns are slices of something larger (a projection of a
/// decoded shuffle batch keeps the whole message body it was decoded from).
pub fn pinned_bytes(batch: &arrow::array::RecordBatch) -> usize {
    use arrow::array::{Array, ArrayData};
    use arrow::buffer::Buffer;
    fn walk(data: &ArrayData, seen: &mut std::collections::HashSet<usize>, total: &mut usize) {
        let mut add = |b: &Buffer| {
            if seen.insert(b.data_ptr().as_ptr() as usize) {
                *total += b.capacity();
            }
        };
        data.buffers().iter().for_each(&mut add);
        if let Some(nulls) = data.nulls() {
            add(nulls.buffer());
        }
        for child in data.child_data() {
            walk(child, seen, total);
        }
    }
    let (mut seen, mut total) = (std::collections::HashSet::new(), 0);
    for c in batch.columns() {
        walk(&c.to_data(), &mut seen, &mut total);
    }
    total
}

/// Parses a byte count: a plain number, or one with a binary suffix `K`, `M`, `G`, `T`
/// (optionally followed by `iB` or `B`), e.g. `512M`, `2GiB`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits_end);
    let number: usize = number
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count (try 4294967296 or 4G)"))?;
    let shift = match suffix
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (use K, M, G or T)"
            ));
        }
    };
    number
        .checked_mul(1usize << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Half of this machine's physical memory (4 GiB where it cannot be read): the default
/// budget of a worker.
pub fn default_memory_limit() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map(|kb| kb * 1024);
    total.map_or(4 << 30, |t| t / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column projected out of a decoded IPC batch keeps the whole message body alive:
    /// `pinned_bytes` says so, once however many columns share it; `batch_bytes` counts the
    /// column's own rows.
    #[test]
    fn pinned_bytes_counts_each_shared_allocation_once() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::record_batch::RecordBatch;

        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("blob", DataType::Utf8, false),
        ]));
        let rows = 1000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("{i:04}").repeat(256)),
                )),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &schema).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        let decoded = crate::shuffle::map_output_store::decode_ipc_stream(bytes)
            .unwrap()
            .remove(0);
        let keys_only = decoded.project(&[0]).unwrap();
        let (own, pinned) = (batch_bytes(&keys_only), pinned_bytes(&keys_only));
        assert_eq!(own, rows as usize * 8);
        assert!(pinned > 1_000_000, "the 1 MB body stays pinned: {pinned}");
        // Both columns share the body: counted once, not twice.
        assert!(
            pinned_bytes(&decoded) < pinned + 4096,
            "{}",
            pinned_bytes(&decoded)
        );
        // A batch built column by column pins what it holds.
        assert!(pinned_bytes(&batch) < batch_bytes(&batch) + 64 * 1024);
    }

    #[test]
    fn reservations_stay_within_the_task_share_and_the_pool() {
        let pool = MemoryPool::new(32 << 20, 2).unwrap();
        let (a, b) = (pool.task(), pool.task());
        let mut a1 = a.reservation();
        let mut a2 = a.reservation();
        assert!(a1.try_resize(10 << 20));
        assert!(!a2.try_resize(7 << 20), "past the task's 16 MiB share");
        assert!(a2.try_resize(6 << 20));
        let mut b1 = b.reservation();
        assert!(b1.try_resize(16 << 20));
        assert_eq!(pool.used(), 32 << 20);
        drop(a1);
        assert_eq!(pool.used(), 22 << 20);
        a2.resize(0);
        assert_eq!(pool.used(), 16 << 20);
    }

    #[test]
    fn a_limit_too_small_for_the_slots_is_refused_with_the_numbers() {
        let err = MemoryPool::new(10 << 20, 2).unwrap_err().to_string();
        assert!(
            err.contains("2 task slots") && err.contains("8 MiB"),
            "{err}"
        );
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("12X").unwrap_err().contains("unknown unit"));
    }
}
