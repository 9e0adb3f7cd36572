//! The job log: what a coordinator started with `--state-dir DIR` keeps on disk, so that a
//! restarted coordinator resumes unfinished jobs and lists finished ones.
//!
//! It owns: the files in the state directory (`jobs.log`, its compaction's temporary file, and
//! `lock`, held with an exclusive lock while the coordinator runs so that two coordinators never
//! share a directory), the record format, reading back (dropping a torn or corrupt tail), and
//! compaction. [`LogWriter`] runs it on a thread of its own: nothing here blocks a tokio thread.
//!
//! It must not touch: scheduler state (it is told what to write, as records, and gives back
//! what it read; the scheduler takes recovered jobs as events), the network, or clocks.
//!
//! # Format
//! `jobs.log` starts with the 8 bytes `QVJLOG1\n`; then records back to back, each a
//! little-endian `u32` length, a little-endian `u64` xxh3 checksum of the payload, and the
//! payload: a protobuf `JobLogRecord` (`proto/proto/quiver.proto`). A job is logged when it is
//! accepted (`LoggedJobSubmitted`: plan, sink, options; fsynced before the submit is answered)
//! when it is cut into stages (`LoggedJobStarted`: the cluster shape it was planned for, so that
//! a resumed job is planned the same way and adopts the map outputs workers still hold), and
//! when it ends (`LoggedJobFinished`: its last `JobStatus`, stages and error included). Task
//! progress is not logged: which outputs survived, the workers say when they register again.
//!
//! Reading stops at the first record that is cut short, fails its checksum or does not decode:
//! a warning names the file and offset, and the file is truncated there. Compaction rewrites
//! the file (temporary file, fsync, rename) with only the unfinished jobs and the newest
//! `job_history` finished ones, once it holds more than twice that many records.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use quiver_plan::proto_conversion::{storage_options_from_proto, storage_options_to_proto};
use quiver_plan::{JobId, PlanNode, Sink};
use quiver_proto::v1 as pb;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::adaptive::{JoinAdaptation, StageAdaptation};
use crate::error::{CoordinatorError, Result};
use crate::event::Event;
use crate::job::{Job, JobOptions, PlannedFor};
use quiver_storage::TaskFile;

/// The log's file name inside the state directory.
pub const LOG_FILE: &str = "jobs.log";
const LOCK_FILE: &str = "lock";
const MAGIC: &[u8; 8] = b"QVJLOG1\n";
/// Length and checksum in front of every record.
const FRAME_HEADER: usize = 12;
/// Compaction waits for at least this many records in the file.
const MIN_RECORDS_TO_COMPACT: usize = 64;

/// What the log held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Jobs accepted and not finished, in submission order.
    pub unfinished: Vec<pb::LoggedJobSubmitted>,
    /// The newest finished jobs (at most `job_history`), oldest first.
    pub finished: Vec<pb::JobStatus>,
    /// Whether a torn or corrupt tail was dropped.
    pub dropped_tail: bool,
}

/// The open job log of one state directory.
pub struct JobLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Held (exclusively locked) for as long as the log is open.
    _lock: File,
    job_history: usize,
    records_in_file: usize,
    unfinished: Vec<pb::LoggedJobSubmitted>,
    finished: VecDeque<pb::JobStatus>,
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> CoordinatorError {
    move |source| CoordinatorError::Io { what, source }
}

impl JobLog {
    /// Opens (creating) the log in `dir`, keeping at most `job_history` finished jobs. Refused
    /// when the directory cannot be created or another coordinator holds it.
    pub fn open(dir: &Path, job_history: usize) -> Result<(JobLog, Recovered)> {
        let shown = dir.display();
        std::fs::create_dir_all(dir).map_err(io_error(format!(
            "state directory {shown}: cannot create it (use --state-dir DIR, or none)"
        )))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(format!("state directory {shown}: lock file")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CoordinatorError::Refused(format!(
                    "state directory {shown} is in use by another running coordinator (its lock {} is held); stop it or use another --state-dir",
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error(format!("state directory {shown}: locking it"))(e));
            }
        }
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_error(format!("job log {}", path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_error(format!("job log {}: reading", path.display())))?;
        let (records, valid_len) = read_records(&bytes, &path);
        let dropped_tail = valid_len < bytes.len();
        if dropped_tail || bytes.len() < MAGIC.len() {
            file.set_len(0)
                .and_then(|()| {
                    if valid_len >= MAGIC.len() {
                        file.write_all(&bytes[..valid_len])
                    } else {
                        file.write_all(MAGIC)
                    }
                })
                .and_then(|()| file.sync_all())
                .map_err(io_error(format!(
                    "job log {}: truncating its corrupt tail",
                    path.display()
                )))?;
        }
        let mut log = JobLog {
            dir: dir.to_path_buf(),
            path,
            file,
            _lock: lock,
            job_history: job_history.max(1),
            records_in_file: records.len(),
            unfinished: vec![],
            finished: VecDeque::new(),
        };
        for record in records {
            log.apply(record);
        }
        log.maybe_compact().map_err(io_error(format!(
            "job log {}: compacting",
            log.path.display()
        )))?;
        let recovered = Recovered {
            unfinished: log.unfinished.clone(),
            finished: log.finished.iter().cloned().collect(),
            dropped_tail,
        };
        info!(
            log = %log.path.display(),
            unfinished = recovered.unfinished.len(),
            finished = recovered.finished.len(),
            "job log opened"
        );
        Ok((log, recovered))
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` and fsyncs them. When that fails (a full disk), the file is cut back
    /// to where it was, so that a torn record never sits in front of later ones.
    pub fn append(&mut self, records: &[pb::JobLogRecord]) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        for r in records {
            frame(r, &mut buffer);
        }
        let before = self.file.metadata()?.len();
        if let Err(e) = self
            .file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data())
        {
            let _ = self.file.set_len(before);
            return Err(e);
        }
        self.records_in_file += records.len();
        for r in records {
            self.apply(r.clone());
        }
        self.maybe_compact()
    }

    /// Keeps the in-memory picture of the live records up to date.
    fn apply(&mut self, record: pb::JobLogRecord) {
        match record.record {
            Some(pb::job_log_record::Record::Submitted(s)) => {
                match self.unfinished.iter_mut().find(|u| u.job_id == s.job_id) {
                    Some(u) => *u = s,
                    None => self.unfinished.push(s),
                }
            }
            Some(pb::job_log_record::Record::Finished(f)) => {
                let Some(status) = f.status else { return };
                self.unfinished.retain(|u| u.job_id != status.job_id);
                self.finished.retain(|s| s.job_id != status.job_id);
                self.finished.push_back(status);
                while self.finished.len() > self.job_history {
                    self.finished.pop_front();
                }
            }
            Some(pb::job_log_record::Record::CommitStarted(c)) => {
                if let Some(u) = self.unfinished.iter_mut().find(|u| u.job_id == c.job_id) {
                    u.commit = Some(c);
                }
            }
            Some(pb::job_log_record::Record::Started(started)) => {
                if let Some(u) = self
                    .unfinished
                    .iter_mut()
                    .find(|u| u.job_id == started.job_id)
                {
                    u.started = Some(started);
                }
            }
            None => {}
        }
    }

    fn live_records(&self) -> usize {
        self.unfinished.len() + self.finished.len()
    }

    fn maybe_compact(&mut self) -> std::io::Result<()> {
        if self.records_in_file < MIN_RECORDS_TO_COMPACT
            || self.records_in_file <= 2 * self.live_records()
        {
            return Ok(());
        }
        self.compact()
    }

    /// Rewrites the file with the live records only: a temporary file, fsynced, renamed over
    /// the log, the directory fsynced.
    fn compact(&mut self) -> std::io::Result<()> {
        let mut buffer = MAGIC.to_vec();
        for status in &self.finished {
            frame(
                &pb::JobLogRecord {
                    record: Some(pb::job_log_record::Record::Finished(
                        pb::LoggedJobFinished {
                            status: Some(status.clone()),
                        },
                    )),
                },
                &mut buffer,
            );
        }
        for submitted in &self.unfinished {
            frame(
                &pb::JobLogRecord {
                    record: Some(pb::job_log_record::Record::Submitted(submitted.clone())),
                },
                &mut buffer,
            );
        }
        let temporary = self.dir.join(format!("{LOG_FILE}.compacting"));
        {
            let mut t = File::create(&temporary)?;
            t.write_all(&buffer)?;
            t.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        File::open(&self.dir)?.sync_all()?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        let before = self.records_in_file;
        self.records_in_file = self.live_records();
        info!(log = %self.path.display(), before, after = self.records_in_file, "job log compacted");
        Ok(())
    }
}

/// Appends `record`, framed, to `out`.
fn frame(record: &pb::JobLogRecord, out: &mut Vec<u8>) {
    let payload = record.encode_to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The records in `bytes` up to the first torn or corrupt one, and how many bytes they take
/// (the header included); warns, naming `path` and the offset, when something is dropped.
fn read_records(bytes: &[u8], path: &Path) -> (Vec<pb::JobLogRecord>, usize) {
    let drop_from = |offset: usize, why: &str| {
        warn!(
            log = %path.display(),
            offset,
            dropped_bytes = bytes.len() - offset,
            "job log: {why}; dropping the log from this offset on (a torn write, or a corrupt file)"
        );
    };
    if bytes.is_empty() {
        return (vec![], 0);
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        drop_from(0, "not a Quiver job log (its header is wrong)");
        return (vec![], 0);
    }
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + FRAME_HEADER) else {
            drop_from(at, "a record's header is cut short");
            break;
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[..4]);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&header[4..]);
        let len = u32::from_le_bytes(len) as usize;
        let start = at + FRAME_HEADER;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            drop_from(at, "a record is cut short");
            break;
        };
        if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(sum) {
            drop_from(at, "a record fails its checksum");
            break;
        }
        match pb::JobLogRecord::decode(payload) {
            Ok(r) if r.record.is_some() => records.push(r),
            Ok(_) => {
                drop_from(at, "a record is empty");
                break;
            }
            Err(e) => {
                drop_from(at, &format!("a record does not decode ({e})"));
                break;
            }
        }
        at = start + len;
    }
    (records, at.min(bytes.len()))
}

/// The record of `job`'s acceptance.
pub fn submitted_record(job: &Job) -> pb::JobLogRecord {
    let o = job.options;
    pb::JobLogRecord {
        record: Some(pb::job_log_record::Record::Submitted(
            pb::LoggedJobSubmitted {
                job_id: job.id.0.clone(),
                name: job.name.clone(),
                plan: Some((&job.plan).into()),
                sink: Some((&job.sink).into()),
                options: Some(pb::JobOptions {
                    shuffle_partitions: o.shuffle_partitions,
                    batch_size: Some(o.batch_size),
                    broadcast_threshold: Some(o.broadcast_threshold.unwrap_or(0)),
                }),
                submitted_at_ms: job.submitted.wall_ms,
                incarnation: job.incarnation,
                commit: job.commit.as_ref().map(|files| logged_commit(job, files)),
                storage_locations: storage_options_to_proto(&job.storage_options.locating_only()),
                started: job.planned_for.as_ref().map(|p| logged_start(job, p)),
            },
        )),
    }
}

fn logged_start(job: &Job, planned: &PlannedFor) -> pb::LoggedJobStarted {
    pb::LoggedJobStarted {
        job_id: job.id.0.clone(),
        total_slots: planned.total_slots,
        shuffle_partitions: planned.shuffle_partitions,
        stage_tasks: planned.stage_tasks.clone(),
        stage_digests: planned.stage_digests.clone(),
        since_incarnation: planned.since_incarnation,
        adaptations: planned
            .adaptations
            .iter()
            .map(|a| pb::StageAdaptation {
                stage_id: a.stage.0,
                task_starts: a.task_starts.clone(),
                task_map_starts: a.task_map_starts.clone(),
                split_side: a.split_side.map(|s| s.0),
                planned_partitions: a.planned_partitions,
                measured_bytes: a.measured_bytes,
                decided_in: a.decided_in,
            })
            .collect(),
        join_adaptations: planned
            .join_adaptations
            .iter()
            .map(|d| pb::JoinAdaptation {
                join_stage: d.join.0,
                left_stage: d.left.0,
                right_stage: d.right.0,
                broadcast: d.broadcast,
                right_bytes: d.right_bytes,
                decided_in: d.decided_in,
            })
            .collect(),
    }
}

/// The record that `job` was cut into stages, with the shape they were cut for (none: the job
/// has not started).
pub fn started_record(job: &Job) -> Option<pb::JobLogRecord> {
    let planned = job.planned_for.as_ref()?;
    Some(pb::JobLogRecord {
        record: Some(pb::job_log_record::Record::Started(logged_start(
            job, planned,
        ))),
    })
}

fn logged_commit(job: &Job, files: &[TaskFile]) -> pb::LoggedCommitStarted {
    pb::LoggedCommitStarted {
        job_id: job.id.0.clone(),
        files: files
            .iter()
            .map(|f| pb::CommittedFile {
                partition: f.partition,
                attempt: f.attempt,
            })
            .collect(),
    }
}

/// The record that `job`'s output commit began, with the files it keeps (none: the job is
/// not committing).
pub fn commit_started_record(job: &Job) -> Option<pb::JobLogRecord> {
    let files = job.commit.as_ref()?;
    Some(pb::JobLogRecord {
        record: Some(pb::job_log_record::Record::CommitStarted(logged_commit(
            job, files,
        ))),
    })
}

/// The record of a job's end: its last status (without result locations). It is read by a
/// later coordinator only, which cannot say where a collect job's results are.
pub fn finished_record(mut status: pb::JobStatus, sink: &Sink) -> pb::JobLogRecord {
    status.results_unavailable =
        *sink == Sink::Collect && status.state == pb::JobState::Succeeded as i32;
    pb::JobLogRecord {
        record: Some(pb::job_log_record::Record::Finished(
            pb::LoggedJobFinished {
                status: Some(status),
            },
        )),
    }
}

/// The event that resumes a logged, unfinished job (one incarnation later).
pub fn recovered_event(r: &pb::LoggedJobSubmitted) -> std::result::Result<Event, String> {
    let job = JobId::parse(&r.job_id).map_err(|e| e.to_string())?;
    let plan = r
        .plan
        .as_ref()
        .ok_or("its plan is missing")
        .map_err(str::to_string)
        .and_then(|p| PlanNode::try_from(p).map_err(|e| format!("its plan: {e}")))?;
    let sink = r
        .sink
        .as_ref()
        .ok_or("its sink is missing")
        .map_err(str::to_string)
        .and_then(|s| Sink::try_from(s).map_err(|e| format!("its sink: {e}")))?;
    let defaults = JobOptions::default();
    let options = match &r.options {
        None => defaults,
        Some(o) => JobOptions {
            shuffle_partitions: o.shuffle_partitions,
            batch_size: o.batch_size.unwrap_or(defaults.batch_size).max(1),
            broadcast_threshold: match o.broadcast_threshold {
                None => defaults.broadcast_threshold,
                Some(0) => None,
                Some(t) => Some(t),
            },
        },
    };
    // Only locating settings are ever logged; anything else found here is dropped.
    let storage_locations = storage_options_from_proto(r.storage_locations.as_ref())
        .map_err(|e| format!("its storage options: {e}"))?
        .locating_only();
    Ok(Event::JobRecovered {
        job,
        storage_locations,
        name: r.name.clone(),
        plan,
        sink,
        options,
        submitted_at_ms: r.submitted_at_ms,
        incarnation: r.incarnation.saturating_add(1),
        planned_for: r.started.as_ref().map(|p| PlannedFor {
            total_slots: p.total_slots.max(1),
            shuffle_partitions: p.shuffle_partitions.max(1),
            stage_tasks: p.stage_tasks.clone(),
            stage_digests: p.stage_digests.clone(),
            since_incarnation: p.since_incarnation,
            // Checked against the stages when they are applied (`StageAdaptation::fits`).
            adaptations: p
                .adaptations
                .iter()
                .map(|a| StageAdaptation {
                    stage: quiver_plan::StageId(a.stage_id),
                    task_starts: a.task_starts.clone(),
                    task_map_starts: a.task_map_starts.clone(),
                    split_side: a.split_side.map(quiver_plan::StageId),
                    planned_partitions: a.planned_partitions,
                    measured_bytes: a.measured_bytes,
                    decided_in: a.decided_in,
                })
                .collect(),
            // Checked against the stages' join candidates when applied.
            join_adaptations: p
                .join_adaptations
                .iter()
                .map(|d| JoinAdaptation {
                    join: quiver_plan::StageId(d.join_stage),
                    left: quiver_plan::StageId(d.left_stage),
                    right: quiver_plan::StageId(d.right_stage),
                    broadcast: d.broadcast,
                    right_bytes: d.right_bytes,
                    decided_in: d.decided_in,
                })
                .collect(),
        }),
        commit: r.commit.as_ref().map(|c| {
            c.files
                .iter()
                .map(|f| TaskFile {
                    partition: f.partition,
                    attempt: f.attempt,
                })
                .collect()
        }),
    })
}

/// A batch of records to write, and who waits for them to be on disk.
type Batch = (
    Vec<pb::JobLogRecord>,
    Option<oneshot::Sender<std::result::Result<(), String>>>,
);

/// The job log on a thread of its own: records are written in the order they are sent, and
/// whatever queued up while a write ran goes to disk with one fsync (group commit).
pub struct LogWriter {
    tx: std::sync::mpsc::Sender<Batch>,
}

impl LogWriter {
    /// Starts the writer thread; it stops when the writer is dropped.
    pub fn spawn(mut log: JobLog) -> Result<LogWriter> {
        let (tx, rx) = std::sync::mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("quiver-job-log".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batches = vec![first];
                    batches.extend(rx.try_iter());
                    let records: Vec<pb::JobLogRecord> = batches
                        .iter()
                        .flat_map(|(r, _)| r.iter().cloned())
                        .collect();
                    let result = log.append(&records).map_err(|e| {
                        let message = format!("job log {}: {e}", log.path().display());
                        warn!(%message, "could not write the job log");
                        message
                    });
                    for (_, ack) in batches {
                        if let Some(ack) = ack {
                            let _ = ack.send(result.clone());
                        }
                    }
                }
            })
            .map_err(io_error("job log writer thread".into()))?;
        Ok(LogWriter { tx })
    }

    /// Queues `records`; the receiver answers once they are on disk (or could not be written).
    pub fn write(
        &self,
        records: Vec<pb::JobLogRecord>,
    ) -> oneshot::Receiver<std::result::Result<(), String>> {
        let (ack, done) = oneshot::channel();
        if let Err(std::sync::mpsc::SendError((_, Some(ack)))) = self.tx.send((records, Some(ack)))
        {
            let _ = ack.send(Err("the job log writer stopped".into()));
        }
        done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn finished(id: u32) -> pb::JobLogRecord {
        finished_record(
            pb::JobStatus {
                job_id: format!("00000000-0000-4000-8000-{id:012}"),
                name: format!("job {id}"),
                state: pb::JobState::Succeeded as i32,
                ..Default::default()
            },
            &Sink::Collect,
        )
    }

    /// A queued collect job reading nothing.
    fn queued_job() -> Job {
        let plan = PlanNode::Scan(quiver_plan::ScanNode {
            format: quiver_plan::SourceFormat::Text,
            files: vec![],
            schema: quiver_plan::ScanNode::text_schema(),
            csv: Default::default(),
        });
        Job::queued(
            JobId::random(),
            "wc".into(),
            plan,
            Sink::Collect,
            JobOptions::default(),
            crate::event::Timestamp::default(),
            0,
        )
        .unwrap()
    }

    fn names(r: &Recovered) -> Vec<String> {
        r.finished.iter().map(|s| s.name.clone()).collect()
    }

    /// A log with jobs 1 to `n` finished, closed again; its path.
    fn log_with(dir: &Path, n: u32) -> PathBuf {
        let (mut log, _) = JobLog::open(dir, 1000).unwrap();
        let records: Vec<_> = (1..=n).map(finished).collect();
        log.append(&records).unwrap();
        log.path().to_path_buf()
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        log_with(dir.path(), 3);
        let (_, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&r), ["job 1", "job 2", "job 3"]);
        assert!(!r.dropped_tail);
        assert!(r.finished.iter().all(|s| s.results_unavailable));
    }

    #[test]
    fn an_empty_file_is_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), b"").unwrap();
        let (mut log, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert!(r.finished.is_empty() && r.unfinished.is_empty() && !r.dropped_tail);
        log.append(&[finished(1)]).unwrap();
        drop(log);
        let (_, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&r), ["job 1"]);
    }

    #[test]
    fn a_truncated_tail_is_dropped_and_the_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        let (mut log, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&r), ["job 1", "job 2"]);
        assert!(r.dropped_tail);
        log.append(&[finished(4)]).unwrap();
        drop(log);
        let (_, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&r), ["job 1", "job 2", "job 4"]);
        assert!(!r.dropped_tail);
    }

    #[test]
    fn a_flipped_byte_drops_its_record_and_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let mut bytes = std::fs::read(&path).unwrap();
        // Inside the second record's payload.
        let first = FRAME_HEADER + finished(1).encode_to_vec().len();
        let at = MAGIC.len() + first + FRAME_HEADER + 3;
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&r), ["job 1"]);
        assert!(r.dropped_tail);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            MAGIC.len() + first
        );
    }

    #[test]
    fn garbage_is_dropped_with_a_warning_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        std::fs::write(&path, b"\xff\xff\xff\xffthis is not a job log at all").unwrap();
        let (_, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert!(r.dropped_tail && r.finished.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
        // Garbage after valid records, including a huge length.
        let path = log_with(dir.path(), 2);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xff; 40]).unwrap();
        drop(f);
        let (_, r) = JobLog::open(dir.path(), 1000).unwrap();
        assert_eq!(names(&r), ["job 1", "job 2"]);
        assert!(r.dropped_tail);
    }

    #[test]
    fn a_logged_job_keeps_where_its_stores_are_but_never_their_credentials() {
        let mut job = queued_job();
        job.storage_options = quiver_plan::StorageOptions::from_pairs([
            ("aws_endpoint", "http://10.0.0.7:9000"),
            ("aws_secret_access_key", "s3cret"),
        ])
        .unwrap();
        let record = submitted_record(&job);
        assert!(!format!("{record:?}").contains("s3cret"));
        let Some(pb::job_log_record::Record::Submitted(logged)) = record.record else {
            panic!("not a submit record");
        };
        let Event::JobRecovered {
            storage_locations, ..
        } = recovered_event(&logged).unwrap()
        else {
            panic!("not a recovered job");
        };
        let kept: Vec<(&str, &str)> = storage_locations.iter().collect();
        assert_eq!(kept, [("aws_endpoint", "http://10.0.0.7:9000")]);
    }

    #[test]
    fn a_second_opener_is_refused_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, _) = JobLog::open(dir.path(), 1000).unwrap();
        let err = JobLog::open(dir.path(), 1000).err().unwrap().to_string();
        assert!(
            err.contains("in use by another running coordinator")
                && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn compaction_keeps_unfinished_jobs_and_the_newest_finished_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = JobLog::open(dir.path(), 10).unwrap();
        let unfinished = pb::JobLogRecord {
            record: Some(pb::job_log_record::Record::Submitted(
                pb::LoggedJobSubmitted {
                    job_id: "00000000-0000-4000-8000-999999999999".into(),
                    name: "still running".into(),
                    ..Default::default()
                },
            )),
        };
        log.append(std::slice::from_ref(&unfinished)).unwrap();
        for i in 1..=200 {
            log.append(&[finished(i)]).unwrap();
        }
        assert!(
            log.records_in_file <= MIN_RECORDS_TO_COMPACT,
            "{}",
            log.records_in_file
        );
        drop(log);
        let (_, r) = JobLog::open(dir.path(), 10).unwrap();
        assert_eq!(r.finished.len(), 10);
        assert_eq!(r.finished[0].name, "job 191");
        assert_eq!(r.finished[9].name, "job 200");
        assert_eq!(r.unfinished.len(), 1);
        assert_eq!(r.unfinished[0].name, "still running");
    }

    /// The shape a job was planned for is kept with it, through compaction, and comes back as
    /// the resumed job's (one incarnation later, first run by the logged one).
    #[test]
    fn a_started_job_keeps_the_shape_it_was_planned_for() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = JobLog::open(dir.path(), 2).unwrap();
        let mut job = queued_job();
        assert!(started_record(&job).is_none(), "not started");
        log.append(&[submitted_record(&job)]).unwrap();
        let planned = PlannedFor {
            total_slots: 6,
            shuffle_partitions: 12,
            stage_tasks: vec![9, 12],
            stage_digests: vec![7, u64::MAX],
            since_incarnation: 0,
            adaptations: vec![StageAdaptation {
                stage: quiver_plan::StageId(1),
                task_starts: vec![0, 5, 5, 6],
                task_map_starts: vec![0, 0, 3, 0],
                split_side: Some(quiver_plan::StageId(0)),
                planned_partitions: 12,
                measured_bytes: 3 << 20,
                decided_in: 0,
            }],
            join_adaptations: vec![JoinAdaptation {
                join: quiver_plan::StageId(2),
                left: quiver_plan::StageId(0),
                right: quiver_plan::StageId(1),
                broadcast: true,
                right_bytes: 1 << 20,
                decided_in: 0,
            }],
        };
        job.planned_for = Some(planned.clone());
        log.append(&[started_record(&job).unwrap()]).unwrap();
        // Enough finished jobs to compact the file more than once.
        for i in 1..=200 {
            log.append(&[finished(i)]).unwrap();
        }
        drop(log);
        let (_, r) = JobLog::open(dir.path(), 2).unwrap();
        assert_eq!(r.unfinished.len(), 1);
        let Event::JobRecovered {
            planned_for,
            incarnation,
            ..
        } = recovered_event(&r.unfinished[0]).unwrap()
        else {
            panic!("not a recovered job");
        };
        assert_eq!(planned_for, Some(planned));
        assert_eq!(incarnation, 1);
    }
}
