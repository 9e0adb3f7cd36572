//! [`MapOutputStore`]: the map outputs this worker holds, where their files are, and reading
//! a run of their buckets back.
//!
//! Layout under the worker's directory: `<job>/stage-<s>/part-<p>-attempt-<a>.{data,index}`.
//! Removing a job removes its directory.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

use arrow::record_batch::RecordBatch;
use quiver_plan::{JobId, StageId, TaskAttempt};
use quiver_proto::{MAX_HELD_OUTPUT_BUCKETS, MAX_HELD_OUTPUTS};

use crate::error::{Result, WorkerError};

/// One map task's output file and the byte offsets of its buckets.
#[derive(Clone, Debug)]
pub struct MapOutput {
    pub data_path: PathBuf,
    /// `buckets + 1` offsets; bucket `b` is `offsets[b]..offsets[b + 1]`.
    pub offsets: Vec<u64>,
    pub rows: u64,
}

impl MapOutput {
    /// Size in bytes of each bucket.
    pub fn bucket_sizes(&self) -> Vec<u64> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

type OutputKey = (JobId, StageId, u32);

/// One output this worker holds, as it lists it when it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOutput {
    pub attempt: TaskAttempt,
    pub bucket_bytes: Vec<u64>,
    pub rows: u64,
}

/// At most this many bytes of an output's adjacent buckets are read (and decoded, or served)
/// at a time.
pub const READ_RUN_BYTES: u64 = 8 << 20;

/// The runs of buckets [`MapOutputStore::open_runs`] cut, read one at a time from one open
/// file: each item is a run's raw IPC bytes (its buckets' streams back to back).
pub struct BucketRuns {
    path: PathBuf,
    file: Option<File>,
    runs: std::vec::IntoIter<Range<u64>>,
}

impl Iterator for BucketRuns {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        let run = self.runs.next()?;
        let file = self.file.as_mut()?;
        let len = run.end - run.start;
        // Read into spare capacity: zeroing the buffer first cost as much as the read.
        let mut buf = Vec::with_capacity(len as usize);
        let read = file.seek(SeekFrom::Start(run.start)).and_then(|_| {
            let got = file.take(len).read_to_end(&mut buf)?;
            match got as u64 == len {
                true => Ok(buf),
                false => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "bytes {}..{} end {} bytes early",
                        run.start,
                        run.end,
                        len - got as u64
                    ),
                )),
            }
        });
        Some(read.map_err(|e| WorkerError::io(&self.path, e)))
    }
}

/// A map output and the attempt that wrote it.
struct Held {
    attempt: u32,
    output: MapOutput,
}

/// The map outputs on this worker.
pub struct MapOutputStore {
    root: PathBuf,
    // A std mutex: held only to look up or insert an entry, never across I/O or an await.
    outputs: Mutex<HashMap<OutputKey, Held>>,
    /// Jobs whose data was removed entirely (finished or cancelled): an attempt of theirs
    /// that finishes late must not leave files behind.
    removed_jobs: Mutex<HashSet<JobId>>,
}

impl MapOutputStore {
    /// A store whose files live under `root`.
    pub fn new(root: PathBuf) -> Self {
        MapOutputStore {
            root,
            outputs: Mutex::new(HashMap::new()),
            removed_jobs: Mutex::new(HashSet::new()),
        }
    }

    /// Data and index file paths for one attempt.
    pub fn paths_for(&self, t: &TaskAttempt) -> (PathBuf, PathBuf) {
        let dir = self.root.join(&t.job.0).join(format!("stage-{}", t.stage));
        let stem = format!("part-{}-attempt-{}", t.partition, t.attempt);
        (
            dir.join(format!("{stem}.data")),
            dir.join(format!("{stem}.index")),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OutputKey, Held>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts
        // and removes), so a poisoned lock is still safe to use.
        self.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the output `attempt` wrote; replaces an earlier attempt's, never a later one's
    /// (an attempt of a run before a coordinator restart may finish after this run's). The
    /// output of a job that was already removed is deleted instead.
    pub fn register(&self, attempt: &TaskAttempt, output: MapOutput) {
        let job = &attempt.job;
        let removed = self
            .removed_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(job);
        if removed {
            let _ = fs::remove_dir_all(self.root.join(&job.0));
            return;
        }
        let held = Held {
            attempt: attempt.attempt,
            output,
        };
        let key = (job.clone(), attempt.stage, attempt.partition);
        let mut outputs = self.lock();
        if outputs
            .get(&key)
            .is_none_or(|newer| newer.attempt <= attempt.attempt)
        {
            outputs.insert(key, held);
        }
    }

    /// The output of one map task, if this worker has it.
    pub fn get(&self, job: &JobId, stage: StageId, partition: u32) -> Option<MapOutput> {
        self.lock()
            .get(&(job.clone(), stage, partition))
            .map(|h| h.output.clone())
    }

    /// What this worker holds, as it tells a coordinator when it registers: at most
    /// `MAX_HELD_OUTPUTS` outputs with `MAX_HELD_OUTPUT_BUCKETS` buckets in all (the rest,
    /// if any, is recomputed when needed).
    pub fn held(&self) -> Vec<HeldOutput> {
        let outputs = self.lock();
        let mut held = Vec::with_capacity(outputs.len().min(MAX_HELD_OUTPUTS));
        let mut buckets = 0usize;
        for ((job, stage, partition), h) in outputs.iter() {
            let sizes = h.output.bucket_sizes();
            buckets += sizes.len();
            if held.len() == MAX_HELD_OUTPUTS || buckets > MAX_HELD_OUTPUT_BUCKETS {
                break;
            }
            held.push(HeldOutput {
                attempt: TaskAttempt {
                    job: job.clone(),
                    stage: *stage,
                    partition: *partition,
                    attempt: h.attempt,
                },
                bucket_bytes: sizes,
                rows: h.output.rows,
            });
        }
        held
    }

    /// The held output of one map task, with `buckets` checked against its bucket count.
    fn output_for(
        &self,
        job: &JobId,
        stage: StageId,
        partition: u32,
        buckets: &Range<u32>,
    ) -> Result<MapOutput> {
        let output = self
            .get(job, stage, partition)
            .ok_or(WorkerError::MissingMapOutput {
                stage,
                map_partition: partition,
            })?;
        let held = output.offsets.len().saturating_sub(1);
        if buckets.start > buckets.end || buckets.end as usize > held {
            return Err(WorkerError::BucketsOutOfRange {
                stage,
                map_partition: partition,
                first: buckets.start,
                end: buckets.end,
                buckets: held,
            });
        }
        Ok(output)
    }

    /// Buckets `buckets` of one map output, opened for reading in runs of adjacent buckets of
    /// at most `run_bytes` bytes each (a larger bucket is a run of its own). Every run comes
    /// from the attempt held now and the file opened now: a later attempt registered, or this
    /// one's file removed, meanwhile does not mix into what is read.
    pub fn open_runs(
        &self,
        job: &JobId,
        stage: StageId,
        partition: u32,
        buckets: Range<u32>,
        run_bytes: u64,
    ) -> Result<BucketRuns> {
        let output = self.output_for(job, stage, partition, &buckets)?;
        let offsets = &output.offsets[buckets.start as usize..=buckets.end as usize];
        let mut runs = Vec::new();
        let mut start = offsets[0];
        for w in offsets.windows(2) {
            if w[1] - start > run_bytes && w[0] > start {
                runs.push(start..w[0]);
                start = w[0];
            }
        }
        let end = offsets[offsets.len() - 1];
        if end > start {
            runs.push(start..end);
        }
        // An empty run of buckets reads nothing, and needs no file.
        let file = match runs.is_empty() {
            true => None,
            false => Some(
                File::open(&output.data_path).map_err(|e| WorkerError::io(&output.data_path, e))?,
            ),
        };
        Ok(BucketRuns {
            path: output.data_path,
            file,
            runs: runs.into_iter(),
        })
    }

    /// Deletes one attempt's output files, and forgets the output if it is that attempt's
    /// (a newer attempt of the same partition on this worker stays).
    pub fn remove_attempt(&self, attempt: &TaskAttempt) {
        let (data, index) = self.paths_for(attempt);
        let key = (attempt.job.clone(), attempt.stage, attempt.partition);
        let mut outputs = self.lock();
        if outputs
            .get(&key)
            .is_some_and(|h| h.output.data_path == data)
        {
            outputs.remove(&key);
        }
        drop(outputs);
        let _ = fs::remove_file(data);
        let _ = fs::remove_file(index);
    }

    /// Forgets a job's outputs and deletes its files; `keep` stages are left in place.
    pub fn remove_job(&self, job: &JobId, keep: &[StageId]) {
        let mut removed_dirs = Vec::new();
        self.lock().retain(|(j, stage, _), held| {
            let drop = j == job && !keep.contains(stage);
            if drop && let Some(dir) = held.output.data_path.parent() {
                removed_dirs.push(dir.to_path_buf());
            }
            !drop
        });
        removed_dirs.sort();
        removed_dirs.dedup();
        for dir in removed_dirs {
            let _ = fs::remove_dir_all(dir);
        }
        if keep.is_empty() {
            self.removed_jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(job.clone());
            let _ = fs::remove_dir_all(self.root.join(&job.0));
        }
    }
}

impl MapOutputStore {
    /// The jobs that have a directory in this store (blocking I/O). Other entries, such as
    /// the spill directory, are not jobs and are left out.
    pub fn jobs_on_disk(&self) -> Vec<JobId> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| JobId::parse(n).ok()))
            .collect()
    }
}

/// Decodes IPC streams held in memory, back to back: a bucket is one or more (more when its
/// task spilled), a run of buckets one after the other.
///
/// Each batch gets buffers of its own (a copy of its message body), not slices of `bytes`:
/// a batch over a slice of the whole bucket reports the bucket's size as its own
/// (`get_buffer_memory_size`), which misleads every consumer that sizes by it (memory
/// accounting, and the Flight encoder, which cut such batches into dozens of small ones).
pub fn decode_ipc_stream(bytes: Vec<u8>) -> Result<Vec<RecordBatch>> {
    let len = bytes.len() as u64;
    let mut cursor = std::io::Cursor::new(bytes);
    let mut batches = Vec::new();
    while cursor.position() < len {
        let reader = arrow::ipc::reader::StreamReader::try_new(&mut cursor, None)?;
        for b in reader {
            batches.push(b?);
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A bucket of two streams (as a task that spilled writes it) decodes to the batches of
    /// each stream in turn, each batch with buffers of its own; a bucket cut short inside a
    /// message is an error, not fewer rows.
    #[test]
    fn a_bucket_of_several_streams_decodes_to_batches_of_their_own() {
        use arrow::array::{ArrayRef, BinaryArray, Int64Array};
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::ipc::writer::StreamWriter;
        use std::sync::Arc;

        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Binary, true),
        ]));
        let batch = |first: i64, rows: i64| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(first..first + rows)),
                Arc::new(BinaryArray::from_iter(
                    (first..first + rows).map(|i| (i % 3 != 0).then(|| i.to_string().repeat(3))),
                )),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        let streams = [vec![batch(0, 5), batch(5, 100)], vec![batch(105, 7)]];
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for stream in &streams {
            let mut writer = StreamWriter::try_new(&mut bytes, &schema).unwrap();
            for b in stream {
                writer.write(b).unwrap();
            }
            writer.finish().unwrap();
        }
        let mut cursor = std::io::Cursor::new(&bytes);
        for _ in &streams {
            let reader = arrow::ipc::reader::StreamReader::try_new(&mut cursor, None).unwrap();
            expected.extend(reader.map(|b| b.unwrap()));
        }
        assert_eq!(cursor.position() as usize, bytes.len());
        assert_eq!(expected.len(), 3);
        let decoded = decode_ipc_stream(bytes.clone()).unwrap();
        assert_eq!(decoded, expected);
        // The 5-row batch's columns report their own message's size, not the bucket's (see
        // decode_ipc_stream).
        for c in decoded[0].columns() {
            let reported = c.get_buffer_memory_size();
            assert!(
                reported < 1024 && bytes.len() > 2048,
                "{reported} of {}",
                bytes.len()
            );
        }
        assert!(decode_ipc_stream(bytes[..bytes.len() - 3].to_vec()).is_err());
        assert!(decode_ipc_stream(Vec::new()).unwrap().is_empty());
    }

    /// An attempt of a run before a coordinator restart may finish after this run's attempt
    /// of the same partition: the later attempt's output stays the one served and listed.
    #[test]
    fn an_earlier_attempt_finishing_late_does_not_replace_a_later_ones_output() {
        let dir = tempfile::tempdir().unwrap();
        let store = MapOutputStore::new(dir.path().to_path_buf());
        let job = JobId::random();
        let attempt = |attempt| TaskAttempt {
            job: job.clone(),
            stage: StageId(0),
            partition: 3,
            attempt,
        };
        let output = |a: &TaskAttempt, rows| MapOutput {
            data_path: store.paths_for(a).0,
            offsets: vec![0, 10],
            rows,
        };
        let (old, new) = (attempt(2), attempt(10_000));
        store.register(&new, output(&new, 7));
        store.register(&old, output(&old, 5));
        let held = store.held();
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].attempt.attempt, held[0].rows), (10_000, 7));
        // Dropping the earlier attempt keeps the later one's output.
        store.remove_attempt(&old);
        assert_eq!(store.get(&job, StageId(0), 3).unwrap().rows, 7);
        // A later attempt still replaces an earlier one.
        let newer = attempt(10_001);
        store.register(&newer, output(&newer, 9));
        assert_eq!(store.held()[0].attempt.attempt, 10_001);
    }
}
