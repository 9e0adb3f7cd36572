//! [`TaskExecutor`]: runs task attempts on the worker's rayon pool, one slot each.
//!
//! The gRPC service hands it decoded tasks; it returns at once and the task runs on a rayon
//! thread. A task's result (with its output location, or its error) goes to the coordinator
//! link through an unbounded channel (at most one message per task, so it cannot grow without
//! bound). A panic inside a task fails that attempt only: it is caught and reported.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use quiver_net::AllowedRoots;
use quiver_plan::{StageOutput, TaskAttempt, TaskDefinition, WorkerId};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::error::{Result, WorkerError};
use crate::functions::FunctionRegistry;
use crate::io::input_storage::InputStorage;
use crate::io::parquet_writer::ParquetFileWriter;
use crate::memory::memory_pool::MemoryPool;
use crate::memory::spill::SpillDir;
use crate::operators::pipeline::{self, PipelineContext};
use crate::shuffle::map_output_store::MapOutputStore;
use crate::shuffle::range_partitioner::RangePartitioner;
use crate::shuffle::shuffle_reader::ShuffleReadContext;
use crate::shuffle::shuffle_writer::{BucketRouting, ShuffleWriter};
use crate::worker_metrics::{AttemptEnd, WorkerMetrics};
use quiver_net::PeerChannels;
use quiver_storage::{ObjectStores, ObjectWriter, OutputCommit};

/// What a successful attempt produced.
#[derive(Debug, Default)]
pub struct TaskOutput {
    pub bucket_bytes: Vec<u64>,
    pub rows_out: u64,
    pub bytes_out: u64,
    /// Bytes the attempt's operators wrote to spill files.
    pub spilled_bytes: u64,
}

/// A finished attempt, on its way to the coordinator.
pub struct TaskReport {
    pub attempt: TaskAttempt,
    pub result: Result<TaskOutput>,
    pub elapsed_ms: u64,
}

/// Runs tasks and knows which are running.
pub struct TaskExecutor {
    worker_id: WorkerId,
    slots: usize,
    pool: rayon::ThreadPool,
    store: Arc<MapOutputStore>,
    peers: Arc<PeerChannels>,
    runtime: tokio::runtime::Handle,
    running: Mutex<HashMap<TaskAttempt, Arc<AtomicBool>>>,
    reports: mpsc::UnboundedSender<TaskReport>,
    functions: Arc<FunctionRegistry>,
    memory: Arc<MemoryPool>,
    spill_root: PathBuf,
    /// Where tasks may read and write (`--allowed-root`; never the work directory).
    roots: AllowedRoots,
    /// Clients of the object stores tasks read from and write to.
    object_stores: Arc<ObjectStores>,
    metrics: Arc<WorkerMetrics>,
}

impl TaskExecutor {
    /// An executor with `slots` rayon threads named `quiver-cpu-N`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        worker_id: WorkerId,
        slots: usize,
        store: Arc<MapOutputStore>,
        runtime: tokio::runtime::Handle,
        reports: mpsc::UnboundedSender<TaskReport>,
        functions: Arc<FunctionRegistry>,
        memory: Arc<MemoryPool>,
        spill_root: PathBuf,
        peers: Arc<PeerChannels>,
        roots: AllowedRoots,
        metrics: Arc<WorkerMetrics>,
    ) -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(slots)
            .thread_name(|i| format!("quiver-cpu-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(TaskExecutor {
            worker_id,
            slots,
            pool,
            store,
            peers,
            runtime,
            running: Mutex::new(HashMap::new()),
            reports,
            functions,
            memory,
            spill_root,
            roots,
            object_stores: Arc::new(ObjectStores::new()),
            metrics,
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<TaskAttempt, Arc<AtomicBool>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of task slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Number of attempts running now.
    pub fn running_count(&self) -> usize {
        self.running().len()
    }

    /// The attempts running now and not cancelled (a worker registering again lists them).
    pub fn running_attempts(&self) -> Vec<TaskAttempt> {
        self.running()
            .iter()
            .filter(|(_, cancelled)| !cancelled.load(Ordering::Relaxed))
            .map(|(attempt, _)| attempt.clone())
            .collect()
    }

    /// Bytes of operator memory tasks hold now.
    pub fn memory_reserved(&self) -> usize {
        self.memory.used()
    }

    /// The memory budget tasks share.
    pub fn memory_limit(&self) -> usize {
        self.memory.limit()
    }

    /// The worker's counters.
    pub fn metrics(&self) -> &Arc<WorkerMetrics> {
        &self.metrics
    }

    /// The map output store tasks write into.
    pub fn store(&self) -> &Arc<MapOutputStore> {
        &self.store
    }

    /// Starts `task` on the pool and returns at once.
    pub fn launch(self: &Arc<Self>, task: TaskDefinition) {
        let cancelled = Arc::new(AtomicBool::new(false));
        self.running()
            .insert(task.attempt.clone(), cancelled.clone());
        let this = self.clone();
        self.pool.spawn(move || {
            let started = Instant::now();
            let attempt = task.attempt.clone();
            debug!(task = %attempt, "task started");
            let result = catch_unwind(AssertUnwindSafe(|| this.run(&task, cancelled)))
                .unwrap_or_else(|panic| Err(WorkerError::Panicked(panic_message(&panic))));
            let end = match &result {
                // Asked for: the job ended or another attempt won. Not a problem.
                Err(WorkerError::Cancelled) => {
                    info!(task = %attempt, "task cancelled");
                    AttemptEnd::Cancelled
                }
                Err(e) => {
                    warn!(task = %attempt, error = %e, "task failed");
                    AttemptEnd::Failed
                }
                Ok(_) => {
                    debug!(task = %attempt, "task finished");
                    AttemptEnd::Succeeded
                }
            };
            this.metrics.attempt_ended(end);
            this.running().remove(&attempt);
            let _ = this.reports.send(TaskReport {
                attempt,
                result,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        });
    }

    /// Asks running attempts to stop; they notice between batches.
    pub fn cancel(&self, attempts: &[TaskAttempt]) {
        let running = self.running();
        for a in attempts {
            if let Some(flag) = running.get(a) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Asks every running attempt to stop.
    pub fn cancel_all(&self) {
        for flag in self.running().values() {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Refuses a task that names a path outside the allowed roots (checked here too, not only
    /// by the coordinator: this worker's roots are its own).
    fn check_paths(&self, task: &TaskDefinition) -> Result<()> {
        for split in &task.splits {
            self.roots.check(&split.path, "input")?;
        }
        if let StageOutput::WriteParquet { directory } = &task.output {
            self.roots.check(directory, "output directory")?;
        }
        Ok(())
    }

    fn run(&self, task: &TaskDefinition, cancelled: Arc<AtomicBool>) -> Result<TaskOutput> {
        self.check_paths(task)?;
        let attempt = &task.attempt;
        let ctx = Arc::new(PipelineContext {
            splits: task.splits.clone(),
            inputs: task.inputs.clone(),
            batch_size: task.batch_size,
            cancelled: cancelled.clone(),
            partition: attempt.partition,
            buckets: task.read_buckets(),
            shuffle: ShuffleReadContext {
                job: attempt.job.clone(),
                this_worker: self.worker_id.clone(),
                store: self.store.clone(),
                peers: self.peers.clone(),
                runtime: self.runtime.clone(),
                metrics: self.metrics.clone(),
            },
            functions: self.functions.clone(),
            memory: self.memory.task(),
            spill: Arc::new(SpillDir::new(
                self.spill_root.clone(),
                format!(
                    "{}-stage-{}-part-{}-attempt-{}",
                    attempt.job.0, attempt.stage, attempt.partition, attempt.attempt
                ),
            )),
            storage: InputStorage {
                stores: self.object_stores.clone(),
                options: task.storage_options.clone(),
            },
        });
        // Whatever the attempt spilled counts when it ends, however it ends.
        let _tally = SpillTally {
            ctx: ctx.clone(),
            metrics: self.metrics.clone(),
        };
        let schema = task.plan.schema()?;
        let batches = pipeline::build(&task.plan, &ctx)?;
        let check = || {
            if cancelled.load(Ordering::Relaxed) {
                Err(WorkerError::Cancelled)
            } else {
                Ok(())
            }
        };
        match &task.output {
            StageOutput::HashShuffle { .. }
            | StageOutput::RangeShuffle { .. }
            | StageOutput::Collect => {
                let buckets = task.output.buckets();
                let routing = match &task.output {
                    StageOutput::HashShuffle { keys, .. } => {
                        BucketRouting::hash(&schema, keys.clone(), buckets, self.functions.clone())?
                    }
                    StageOutput::RangeShuffle { order, sample, .. } => {
                        let sample =
                            pipeline::read_broadcast(*sample, &ctx)?.collect::<Result<Vec<_>>>()?;
                        BucketRouting::Range(RangePartitioner::new(
                            &schema,
                            order.clone(),
                            buckets,
                            &sample,
                            self.functions.clone(),
                        )?)
                    }
                    _ => BucketRouting::hash(&schema, vec![], 1, self.functions.clone())?,
                };
                let mut writer = ShuffleWriter::new(
                    schema,
                    routing,
                    buckets,
                    task.batch_size,
                    ctx.memory.reservation(),
                    ctx.spill.clone(),
                )?;
                for b in batches {
                    check()?;
                    writer.push(b?)?;
                }
                let (data, index) = self.store.paths_for(attempt);
                let output = writer.finish(data, index)?;
                let sizes = output.bucket_sizes();
                let rows = output.rows;
                self.store.register(attempt, output);
                Ok(TaskOutput {
                    bytes_out: sizes.iter().sum(),
                    bucket_bytes: sizes,
                    rows_out: rows,
                    spilled_bytes: ctx.spill.spilled_bytes(),
                })
            }
            StageOutput::WriteParquet { directory } => {
                // The attempt's own file under `_temporary/<job>/`; the job-level commit on
                // the coordinator makes the chosen attempt's file visible (quiver_storage's
                // output_commit module).
                let commit = OutputCommit::new(
                    &self.object_stores,
                    directory,
                    &attempt.job.0,
                    &task.storage_options,
                )?;
                let file = commit.attempt_file(attempt.partition, attempt.attempt)?;
                let mut writer = match file.local_path() {
                    Some(path) => ParquetFileWriter::create(&path, schema)?,
                    None => ParquetFileWriter::create_object(
                        ObjectWriter::create(commit.store().clone(), file.clone()),
                        file.to_string(),
                        schema,
                    )?,
                };
                let mut rows = 0u64;
                for b in batches {
                    check()?;
                    let b = b?;
                    rows += b.num_rows() as u64;
                    writer.write(&b)?;
                }
                // An error above drops the writer: an object upload is aborted, and a local
                // file is left under `_temporary/`, which the job's commit or abort removes.
                let bytes = writer.close()?;
                Ok(TaskOutput {
                    bucket_bytes: vec![bytes],
                    rows_out: rows,
                    bytes_out: bytes,
                    spilled_bytes: ctx.spill.spilled_bytes(),
                })
            }
        }
    }
}

/// Adds an attempt's spilled bytes to the worker's counter when the attempt ends.
struct SpillTally {
    ctx: Arc<PipelineContext>,
    metrics: Arc<WorkerMetrics>,
}

impl Drop for SpillTally {
    fn drop(&mut self) {
        self.metrics.spilled(self.ctx.spill.spilled_bytes());
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
