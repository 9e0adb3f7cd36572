//! [`Scheduler`]: the coordinator's core. It takes events (a job submitted, a worker joined
//! or was lost, a task finished) and returns [`Action`]s (launch this task there, cancel those,
//! remove that job's files). It does no I/O and knows nothing of gRPC, so it is tested with
//! plain function calls.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use quiver_plan::{
    JobId, MapOutputLocation, PlanNode, ShuffleInput, Sink, StageId, TaskAttempt, TaskDefinition,
    WorkerId,
};
use tracing::{info, warn};

use crate::error::{CoordinatorError, Result};
use crate::job::{Job, JobOptions, JobState, Stage, TaskState};
use crate::stage_planner::{PlannerOptions, plan_stages};

/// Fetch failures a task may have per allowed attempt before its job fails (a lost map output
/// is recomputed, which takes a fetch failure or two per lost worker).
const FETCH_FAILURES_PER_ATTEMPT: u32 = 4;

/// Something the scheduler wants done outside itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Launch {
        worker: WorkerId,
        address: String,
        task: Box<TaskDefinition>,
    },
    Cancel {
        worker: WorkerId,
        address: String,
        attempts: Vec<TaskAttempt>,
    },
    /// Delete a job's shuffle files on a worker, except `keep` stages, after `delay`.
    RemoveJobData {
        worker: WorkerId,
        address: String,
        job: JobId,
        keep: Vec<StageId>,
        delay: Duration,
    },
    /// A Parquet sink finished: mark the directory complete.
    CommitOutput { directory: String, job: JobId },
}

/// How a task attempt ended, as reported by its worker.
#[derive(Clone, Debug)]
pub enum TaskOutcome {
    Success {
        bucket_bytes: Vec<u64>,
        rows_out: u64,
        bytes_out: u64,
        elapsed_ms: u64,
        spilled_bytes: u64,
    },
    Failure {
        message: String,
        retryable: bool,
        /// The map output that could not be fetched: (worker, stage, map partition).
        fetch_failure: Option<(WorkerId, StageId, u32)>,
    },
}

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Attempts a task may make (failures that a retry can help) before its job fails.
    pub max_task_attempts: u32,
    /// A job fails when one of its tasks was running on a worker that was lost this many
    /// times: the task is probably what kills them.
    pub max_worker_losses: u32,
    /// Bounds on partitions, tasks and plans (also given to every worker).
    pub limits: quiver_plan::Limits,
    /// How long a collect job's results stay on the workers after it succeeded.
    pub result_retention: Duration,
    /// How long a job waits while no worker is registered before it fails.
    pub worker_wait_timeout: Duration,
    /// Speculative execution: a backup attempt for a task running far longer than the
    /// finished tasks of its stage.
    pub speculation: bool,
    /// A task is slow when it has run this many times the median of its stage's finished
    /// tasks ...
    pub speculation_multiplier: f64,
    /// ... and at least this long ...
    pub speculation_min_runtime: Duration,
    /// ... once this fraction of the stage's tasks has finished.
    pub speculation_quantile: f64,
    /// A worker on which this many task attempts failed (retryable failures) within
    /// `exclusion_window` gets no tasks for `exclusion_period`.
    pub exclude_after_failures: u32,
    /// See `exclude_after_failures`.
    pub exclusion_window: Duration,
    /// See `exclude_after_failures`.
    pub exclusion_period: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_task_attempts: 4,
            max_worker_losses: 2,
            limits: quiver_plan::Limits::default(),
            result_retention: Duration::from_secs(600),
            worker_wait_timeout: Duration::from_secs(300),
            speculation: true,
            speculation_multiplier: 1.5,
            speculation_min_runtime: Duration::from_secs(1),
            speculation_quantile: 0.75,
            exclude_after_failures: 3,
            exclusion_window: Duration::from_secs(60),
            exclusion_period: Duration::from_secs(60),
        }
    }
}

/// A registered worker as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct WorkerSlots {
    pub address: String,
    pub slots: u32,
    /// Shutting down gracefully: it gets no new tasks.
    pub draining: bool,
    /// When recent task attempts failed here.
    pub recent_failures: Vec<Instant>,
    /// Gets no tasks until then: too many of its attempts failed.
    pub excluded_until: Option<Instant>,
    /// The user functions it has.
    pub functions: std::collections::HashSet<String>,
}

/// Jobs, their tasks, and which worker runs what.
#[derive(Default)]
pub struct Scheduler {
    config: SchedulerConfig,
    jobs: HashMap<JobId, Job>,
    /// Submission order: earlier jobs get free slots first.
    order: Vec<JobId>,
    workers: HashMap<WorkerId, WorkerSlots>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            ..Default::default()
        }
    }

    /// A job, by id.
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// Every job, in submission order.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.order.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Tasks running now per worker.
    pub fn running_per_worker(&self) -> HashMap<WorkerId, u32> {
        let mut running: HashMap<WorkerId, u32> = HashMap::new();
        // Only running jobs have running attempts (`finish_job` ends them all), so finished
        // jobs, however many, cost nothing here.
        for job in self.jobs.values().filter(|j| j.state == JobState::Running) {
            for stage in &job.stages {
                for t in &stage.tasks {
                    for (worker, _) in t.running_attempts() {
                        *running.entry(worker).or_default() += 1;
                    }
                }
            }
        }
        running
    }

    fn total_slots(&self) -> u32 {
        self.workers
            .values()
            .fold(0u32, |n, w| n.saturating_add(w.slots))
    }

    /// Accepts a job; it starts when a worker is free.
    pub fn submit(
        &mut self,
        id: JobId,
        name: String,
        plan: PlanNode,
        sink: Sink,
        options: JobOptions,
    ) -> Result<()> {
        let result_schema = plan.schema()?;
        let required_functions = plan.user_functions();
        if !required_functions.is_empty()
            && !self.workers.is_empty()
            && eligible_workers(&self.workers, &required_functions).is_empty()
        {
            let mut available: Vec<String> = self
                .workers
                .values()
                .flat_map(|w| w.functions.iter().cloned())
                .collect();
            available.sort();
            available.dedup();
            return Err(CoordinatorError::MissingFunctions {
                missing: required_functions
                    .into_iter()
                    .filter(|f| !available.contains(f))
                    .collect(),
                available,
            });
        }
        let now = Instant::now();
        self.order.push(id.clone());
        self.jobs.insert(
            id.clone(),
            Job {
                id,
                name,
                state: JobState::Queued,
                error: None,
                plan,
                sink,
                options,
                result_schema,
                stages: vec![],
                submitted_at: SystemTime::now(),
                submitted: now,
                started: None,
                finished: None,
                waiting_reason: None,
                waiting_since: None,
                required_functions,
                results_released: false,
            },
        );
        Ok(())
    }

    /// A worker registered (or registered again).
    pub fn worker_registered(&mut self, id: WorkerId, address: String, slots: u32) {
        self.workers.insert(
            id,
            WorkerSlots {
                address,
                slots,
                draining: false,
                recent_failures: vec![],
                excluded_until: None,
                functions: Default::default(),
            },
        );
    }

    /// Records the user functions a registered worker has.
    pub fn set_worker_functions(&mut self, id: &WorkerId, functions: Vec<String>) {
        if let Some(w) = self.workers.get_mut(id) {
            w.functions = functions.into_iter().collect();
        }
    }

    /// A worker said it is draining: it gets no new tasks. Returns whether it may exit now:
    /// no attempt runs there and no unfinished job needs the outputs it holds.
    pub fn worker_draining(&mut self, id: &WorkerId, draining: bool) -> bool {
        if let Some(w) = self.workers.get_mut(id) {
            w.draining = draining;
        }
        draining && !self.needs_worker(id)
    }

    fn needs_worker(&self, id: &WorkerId) -> bool {
        let retention = self.config.result_retention;
        self.jobs.values().any(|job| {
            let unfetched_results = job.state == JobState::Succeeded
                && job.sink == Sink::Collect
                && !job.results_released
                && job.finished.is_some_and(|f| f.elapsed() < retention)
                && job.final_stage().is_some_and(|s| {
                    s.tasks
                        .iter()
                        .any(|t| matches!(&t.state, TaskState::Done { worker, .. } if worker == id))
                });
            unfetched_results
                || !job.state.is_terminal()
                    && job.stages.iter().enumerate().any(|(i, stage)| {
                        stage.tasks.iter().any(|t| {
                        t.running_attempts().iter().any(|(w, _)| w == id)
                            || (matches!(&t.state, TaskState::Done { worker, .. } if worker == id)
                                && output_still_needed(job, i))
                    })
                    })
        })
    }

    /// A worker stopped heartbeating: its running tasks go back to pending, and its map outputs
    /// that are still needed are recomputed. A task whose attempts were running on lost
    /// workers `max_worker_losses` times fails its job (a poison task).
    pub fn worker_lost(&mut self, lost: &WorkerId) -> Vec<Action> {
        self.workers.remove(lost);
        let max_losses = self.config.max_worker_losses.max(1);
        let mut poisoned = Vec::new();
        for job in self.jobs.values_mut() {
            if job.state != JobState::Running {
                continue;
            }
            for stage in &mut job.stages {
                for (p, task) in stage.tasks.iter_mut().enumerate() {
                    for (worker, attempt) in task.running_attempts() {
                        if worker == *lost {
                            info!(job = %job.id, stage = %stage.id, partition = p, worker = %lost, "attempt dropped: worker lost");
                            task.drop_attempt(attempt);
                            task.worker_losses += 1;
                            if task.worker_losses >= max_losses {
                                poisoned.push((job.id.clone(), stage.id, p, task.worker_losses));
                            }
                        }
                    }
                }
            }
            forget_outputs_of(job, lost);
        }
        let mut actions = Vec::new();
        for (job, stage, partition, losses) in poisoned {
            if self
                .jobs
                .get(&job)
                .is_some_and(|j| j.state == JobState::Running)
            {
                let error = format!(
                    "stage {stage} partition {partition}: worker lost while running it {losses} times; the task is probably what brings its workers down (memory, a crash in a user function), so it is not tried again"
                );
                warn!(job = %job, %error, "failing job");
                actions.extend(self.finish_job(&job, JobState::Failed, Some(error)));
            }
        }
        actions
    }

    /// Whether `attempt` on `worker` is the one the coordinator expects a result from.
    pub fn is_current(&self, attempt: &TaskAttempt, worker: &WorkerId) -> bool {
        self.jobs
            .get(&attempt.job)
            .and_then(|j| j.stages.get(attempt.stage.0 as usize))
            .and_then(|s| s.tasks.get(attempt.partition as usize))
            .is_some_and(|t| t.is_running_attempt(worker, attempt.attempt))
    }

    /// The driver fetched a collect job's results: delete them from the workers now.
    pub fn release_results(&mut self, id: &JobId) -> Result<Vec<Action>> {
        let job = self
            .jobs
            .get_mut(id)
            .ok_or_else(|| CoordinatorError::UnknownJob(id.clone()))?;
        if job.results_released || job.state != JobState::Succeeded {
            return Ok(vec![]);
        }
        job.results_released = true;
        Ok(self
            .workers
            .iter()
            .map(|(worker, w)| Action::RemoveJobData {
                worker: worker.clone(),
                address: w.address.clone(),
                job: id.clone(),
                keep: vec![],
                delay: Duration::ZERO,
            })
            .collect())
    }

    /// Whether `attempt`, running on `worker`, may commit its file output (the first attempt
    /// to ask wins).
    pub fn ask_commit(&mut self, attempt: &TaskAttempt, worker: &WorkerId) -> bool {
        let Some(task) = self
            .jobs
            .get_mut(&attempt.job)
            .filter(|j| j.state == JobState::Running)
            .and_then(|j| j.stages.get_mut(attempt.stage.0 as usize))
            .and_then(|s| s.tasks.get_mut(attempt.partition as usize))
        else {
            return false;
        };
        let current = task.is_running_attempt(worker, attempt.attempt);
        match task.committed {
            Some(a) => a == attempt.attempt,
            None if current => {
                task.committed = Some(attempt.attempt);
                true
            }
            None => false,
        }
    }

    /// A task attempt ended on `worker` (reachable at `address`).
    pub fn task_finished(
        &mut self,
        attempt: &TaskAttempt,
        worker: &WorkerId,
        outcome: TaskOutcome,
    ) -> Vec<Action> {
        let max_attempts = self.config.max_task_attempts;
        let Some(job) = self.jobs.get_mut(&attempt.job) else {
            return vec![];
        };
        if job.state != JobState::Running {
            return vec![];
        }
        let address = self
            .workers
            .get(worker)
            .map(|w| w.address.clone())
            .unwrap_or_default();
        let Some(stage) = job.stages.get_mut(attempt.stage.0 as usize) else {
            return vec![];
        };
        let expected_buckets = stage.output.buckets() as usize;
        let Some(task) = stage.tasks.get_mut(attempt.partition as usize) else {
            return vec![];
        };
        if !task.is_running_attempt(worker, attempt.attempt) {
            info!(task = %attempt, worker = %worker, "ignoring result of a stale attempt");
            return vec![];
        }
        let outcome = match outcome {
            TaskOutcome::Success { bucket_bytes, .. } if bucket_bytes.len() != expected_buckets => {
                TaskOutcome::Failure {
                    message: format!(
                        "worker reported {} output buckets; the stage writes {expected_buckets}",
                        bucket_bytes.len()
                    ),
                    retryable: true,
                    fetch_failure: None,
                }
            }
            other => other,
        };
        match outcome {
            TaskOutcome::Success {
                bucket_bytes,
                rows_out,
                bytes_out,
                elapsed_ms,
                spilled_bytes,
            } => {
                // The other attempt of a speculated task lost the race: stop it.
                let mut actions = Vec::new();
                for (other_worker, other) in task.running_attempts() {
                    if other != attempt.attempt
                        && let Some(w) = self.workers.get(&other_worker)
                    {
                        actions.push(Action::Cancel {
                            worker: other_worker.clone(),
                            address: w.address.clone(),
                            attempts: vec![TaskAttempt {
                                attempt: other,
                                ..attempt.clone()
                            }],
                        });
                    }
                }
                task.backup = None;
                task.state = TaskState::Done {
                    worker: worker.clone(),
                    address,
                    attempt: attempt.attempt,
                    bucket_bytes,
                };
                task.rows_out = rows_out;
                task.bytes_out = bytes_out;
                task.spilled_bytes = spilled_bytes;
                task.elapsed_ms = elapsed_ms;
                let stage = &mut job.stages[attempt.stage.0 as usize];
                if stage.is_complete() {
                    stage.finished = Some(Instant::now());
                }
                if job.stages.iter().all(Stage::is_complete) {
                    actions.extend(self.finish_job(&attempt.job, JobState::Succeeded, None));
                }
                actions
            }
            TaskOutcome::Failure {
                message,
                retryable,
                fetch_failure,
            } => {
                if let Some((lost_worker, stage, map_partition)) = fetch_failure {
                    task.fetch_failures += 1;
                    let limit = max_attempts.saturating_mul(FETCH_FAILURES_PER_ATTEMPT);
                    if task.fetch_failures >= limit {
                        let error = format!(
                            "stage {} partition {} could not fetch its input {} times; last: {message}",
                            attempt.stage, attempt.partition, task.fetch_failures
                        );
                        task.drop_attempt(attempt.attempt);
                        return self.finish_job(&attempt.job, JobState::Failed, Some(error));
                    }
                    // The input is gone, not this task's fault. Whatever else that worker held
                    // is likely gone too (as Spark assumes): recompute all of its outputs this
                    // job still needs now, not one fetch failure at a time.
                    task.drop_attempt(attempt.attempt);
                    warn!(task = %attempt, %message, worker = %lost_worker, stage = %stage, map_partition, "fetch failed; recomputing the map outputs that worker held");
                    forget_outputs_of(job, &lost_worker);
                    return vec![];
                }
                task.failures += 1;
                task.failed_on.push(worker.clone());
                if retryable {
                    note_worker_failure(&mut self.workers, &self.config, worker);
                }
                if retryable && task.failures < max_attempts {
                    warn!(task = %attempt, %message, "task failed; will retry");
                    task.drop_attempt(attempt.attempt);
                    return vec![];
                }
                let error = format!(
                    "stage {} partition {} failed on worker {} (attempt {} of at most {}{}): {}",
                    attempt.stage,
                    attempt.partition,
                    worker.short(),
                    task.failures,
                    max_attempts,
                    if retryable { "" } else { ", not retryable" },
                    message
                );
                task.state = TaskState::Pending;
                self.finish_job(&attempt.job, JobState::Failed, Some(error))
            }
        }
    }

    /// Whether `worker` is excluded from scheduling now.
    pub fn is_excluded(&self, worker: &WorkerId) -> bool {
        self.workers
            .get(worker)
            .and_then(|w| w.excluded_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Cancels a job. Returns false if it had already finished.
    pub fn cancel(&mut self, id: &JobId) -> Result<(bool, Vec<Action>)> {
        let job = self
            .jobs
            .get(id)
            .ok_or_else(|| CoordinatorError::UnknownJob(id.clone()))?;
        if job.state.is_terminal() {
            return Ok((false, vec![]));
        }
        Ok((
            true,
            self.finish_job(id, JobState::Cancelled, Some("cancelled by request".into())),
        ))
    }

    fn finish_job(&mut self, id: &JobId, state: JobState, error: Option<String>) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(id) else {
            return vec![];
        };
        job.state = state;
        job.error = error;
        job.finished = Some(Instant::now());
        info!(job = %id, state = ?state, error = job.error.as_deref().unwrap_or(""), "job finished");
        let mut actions = Vec::new();
        // Stop what still runs.
        let mut running: HashMap<WorkerId, Vec<TaskAttempt>> = HashMap::new();
        for stage in &mut job.stages {
            for (p, t) in stage.tasks.iter_mut().enumerate() {
                for (worker, attempt) in t.running_attempts() {
                    running.entry(worker).or_default().push(TaskAttempt {
                        job: id.clone(),
                        stage: stage.id,
                        partition: p as u32,
                        attempt,
                    });
                }
                if !t.is_done() {
                    t.state = TaskState::Pending;
                    t.backup = None;
                }
            }
        }
        for (worker, attempts) in running {
            if let Some(w) = self.workers.get(&worker) {
                actions.push(Action::Cancel {
                    address: w.address.clone(),
                    worker,
                    attempts,
                });
            }
        }
        // Clean up shuffle files; a collect job's results stay until the driver fetched them.
        let collect_results = (state == JobState::Succeeded && job.sink == Sink::Collect)
            .then(|| job.final_stage().map(|s| s.id))
            .flatten();
        for (worker, w) in &self.workers {
            actions.push(Action::RemoveJobData {
                worker: worker.clone(),
                address: w.address.clone(),
                job: id.clone(),
                keep: collect_results.into_iter().collect(),
                delay: Duration::ZERO,
            });
            if collect_results.is_some() {
                actions.push(Action::RemoveJobData {
                    worker: worker.clone(),
                    address: w.address.clone(),
                    job: id.clone(),
                    keep: vec![],
                    delay: self.config.result_retention,
                });
            }
        }
        if let (JobState::Succeeded, Sink::WriteParquet { directory }) = (state, &job.sink) {
            actions.push(Action::CommitOutput {
                directory: directory.clone(),
                job: id.clone(),
            });
        }
        actions
    }

    /// Places pending tasks of runnable stages onto free slots, oldest job first.
    pub fn schedule(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        // A job waits while no registered worker can run it (none at all, or none with its
        // functions); after `worker_wait_timeout` it fails, saying why.
        let timeout = self.config.worker_wait_timeout;
        let mut expired = Vec::new();
        for job in self.jobs.values_mut() {
            if !matches!(job.state, JobState::Queued | JobState::Running) {
                continue;
            }
            if eligible_workers(&self.workers, &job.required_functions).is_empty() {
                job.waiting_reason = Some(if self.workers.is_empty() {
                    "waiting for a worker to register".into()
                } else {
                    format!(
                        "waiting for a worker with user function(s) {}",
                        job.required_functions.join(", ")
                    )
                });
                let since = *job.waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= timeout {
                    expired.push((
                        job.id.clone(),
                        job.waiting_reason.clone().unwrap_or_default(),
                    ));
                }
            } else {
                job.waiting_since = None;
            }
        }
        for (id, reason) in expired {
            let error = format!(
                "no worker that can run this job registered within {} s ({reason}); start one with `quiver-worker --coordinator <this coordinator's URL>`, or your own worker binary for user functions",
                timeout.as_secs_f64()
            );
            actions.extend(self.finish_job(&id, JobState::Failed, Some(error)));
        }
        if self.workers.is_empty() {
            return actions;
        }
        let running = self.running_per_worker();
        // Excluded workers get nothing, unless every worker is excluded: then waiting would
        // only stall every job, so exclusion is ignored.
        let all_excluded = self.workers.keys().all(|w| self.is_excluded(w));
        let mut free: Vec<(WorkerId, String, u32)> = self
            .workers
            .iter()
            .map(|(id, w)| {
                let used = running.get(id).copied().unwrap_or(0);
                let free = if w.draining || (!all_excluded && self.is_excluded(id)) {
                    0
                } else {
                    w.slots.saturating_sub(used)
                };
                (id.clone(), w.address.clone(), free)
            })
            .collect();
        let total_slots = self.total_slots();
        let order = self.order.clone();
        for id in order {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let eligible = eligible_workers(&self.workers, &job.required_functions);
            if eligible.is_empty() {
                continue;
            }
            if job.state == JobState::Queued {
                let limits = self.config.limits;
                let partitions = job
                    .options
                    .shuffle_partitions
                    .unwrap_or_else(|| total_slots.saturating_mul(2).min(limits.max_partitions));
                let options = PlannerOptions {
                    shuffle_partitions: partitions,
                    total_slots,
                    broadcast_threshold: job.options.broadcast_threshold,
                    max_tasks_per_stage: limits.max_tasks_per_stage,
                    max_tasks_per_job: limits.max_tasks_per_job,
                };
                let batch_size = job.options.batch_size;
                let planned = plan_stages(&job.plan, &job.sink, options).and_then(|planned| {
                    let stages: Vec<Stage> = planned.into_iter().map(Stage::new).collect();
                    // What the planner made must be what every worker accepts.
                    for stage in &stages {
                        limits.check_task(&stage.task_definition(
                            &job.id,
                            0,
                            0,
                            &[],
                            batch_size,
                        ))?;
                    }
                    Ok(stages)
                });
                match planned {
                    Ok(stages) => {
                        job.stages = stages;
                        job.state = JobState::Running;
                        job.started = Some(Instant::now());
                        info!(job = %job.id, stages = job.stages.len(), "job started");
                    }
                    Err(e) => {
                        let err = format!("planning failed: {e}");
                        actions.extend(self.finish_job(&id, JobState::Failed, Some(err)));
                        continue;
                    }
                }
            }
            if job.state != JobState::Running {
                continue;
            }
            job.waiting_reason = None;
            let complete: Vec<bool> = job.stages.iter().map(Stage::is_complete).collect();
            for s in 0..job.stages.len() {
                let runnable = job.stages[s].inputs.iter().all(|i| complete[i.0 as usize]);
                if !runnable || complete[s] {
                    continue;
                }
                let inputs = shuffle_inputs(job, s);
                let stage = &mut job.stages[s];
                let mut placed = Vec::new();
                for (p, task) in stage.tasks.iter_mut().enumerate() {
                    if task.state != TaskState::Pending {
                        continue;
                    }
                    // Most free slots first; a worker this task failed on only as a last resort.
                    let Some(slot) = free
                        .iter_mut()
                        .filter(|(w, _, n)| *n > 0 && eligible.contains(w))
                        .max_by_key(|(w, _, n)| (!task.failed_on.contains(w), *n))
                    else {
                        break;
                    };
                    slot.2 -= 1;
                    let attempt = task.attempts;
                    task.attempts += 1;
                    task.state = TaskState::Running {
                        worker: slot.0.clone(),
                        attempt,
                        since: Instant::now(),
                    };
                    placed.push((p, attempt, slot.0.clone(), slot.1.clone()));
                }
                if !placed.is_empty() {
                    stage.started.get_or_insert_with(Instant::now);
                }
                for (p, attempt, worker, address) in placed {
                    let task =
                        stage.task_definition(&job.id, p, attempt, &inputs, job.options.batch_size);
                    actions.push(Action::Launch {
                        worker,
                        address,
                        task: Box::new(task),
                    });
                }
            }
        }
        if self.config.speculation {
            self.speculate(&mut free, &mut actions);
        }
        actions
    }

    /// Launches backup attempts of slow tasks on the slots left over after pending work.
    fn speculate(&mut self, free: &mut [(WorkerId, String, u32)], actions: &mut Vec<Action>) {
        let config = self.config.clone();
        for id in &self.order {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            if job.state != JobState::Running {
                continue;
            }
            let batch_size = job.options.batch_size;
            let eligible = eligible_workers(&self.workers, &job.required_functions);
            for s in 0..job.stages.len() {
                let stage = &job.stages[s];
                let mut finished: Vec<u64> = stage
                    .tasks
                    .iter()
                    .filter(|t| t.is_done())
                    .map(|t| t.elapsed_ms)
                    .collect();
                let total = stage.tasks.len();
                if finished.is_empty()
                    || finished.len() == total
                    || (finished.len() as f64) < config.speculation_quantile * total as f64
                {
                    continue;
                }
                finished.sort_unstable();
                let median = Duration::from_millis(finished[finished.len() / 2]);
                // Reported run times are a worker's word: no overflow, however large.
                let threshold = Duration::try_from_secs_f64(
                    median.as_secs_f64() * config.speculation_multiplier,
                )
                .unwrap_or(Duration::MAX)
                .max(config.speculation_min_runtime);
                let inputs = shuffle_inputs(job, s);
                let stage = &mut job.stages[s];
                let mut placed = Vec::new();
                for (p, task) in stage.tasks.iter_mut().enumerate() {
                    let TaskState::Running { worker, since, .. } = &task.state else {
                        continue;
                    };
                    // A task that already lost a worker gets no backup: if it is what kills
                    // workers, a backup would kill one more before the loss is noticed.
                    if task.backup.is_some()
                        || task.worker_losses > 0
                        || since.elapsed() <= threshold
                    {
                        continue;
                    }
                    let primary = worker.clone();
                    let Some(slot) = free
                        .iter_mut()
                        .filter(|(w, _, n)| *n > 0 && *w != primary && eligible.contains(w))
                        .max_by_key(|(_, _, n)| *n)
                    else {
                        break;
                    };
                    slot.2 -= 1;
                    let attempt = task.attempts;
                    task.attempts += 1;
                    task.backup = Some(crate::job::BackupAttempt {
                        worker: slot.0.clone(),
                        attempt,
                        since: Instant::now(),
                    });
                    placed.push((p, attempt, slot.0.clone(), slot.1.clone()));
                }
                for (p, attempt, worker, address) in placed {
                    info!(job = %id, stage = %stage.id, partition = p, attempt, "speculating: backup attempt for a slow task");
                    actions.push(Action::Launch {
                        worker,
                        address,
                        task: Box::new(stage.task_definition(id, p, attempt, &inputs, batch_size)),
                    });
                }
            }
        }
    }
}

/// The workers that have every one of `functions`.
fn eligible_workers(
    workers: &HashMap<WorkerId, WorkerSlots>,
    functions: &[String],
) -> std::collections::HashSet<WorkerId> {
    workers
        .iter()
        .filter(|(_, w)| functions.iter().all(|f| w.functions.contains(f)))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Counts a failed attempt against `worker`, excluding it for a while when they pile up.
fn note_worker_failure(
    workers: &mut HashMap<WorkerId, WorkerSlots>,
    config: &SchedulerConfig,
    worker: &WorkerId,
) {
    let Some(w) = workers.get_mut(worker) else {
        return;
    };
    let now = Instant::now();
    w.recent_failures
        .retain(|t| now.duration_since(*t) < config.exclusion_window);
    w.recent_failures.push(now);
    let limit = config.exclude_after_failures as usize;
    if limit > 0 && w.recent_failures.len() >= limit {
        warn!(worker = %worker, period = ?config.exclusion_period, "worker keeps failing tasks; excluding it");
        w.excluded_until = Some(now + config.exclusion_period);
        w.recent_failures.clear();
    }
}

/// Marks every output `worker` held that `job` still needs as gone (its task pending again),
/// so that it is recomputed: the worker was lost, or a fetch from it failed.
fn forget_outputs_of(job: &mut Job, worker: &WorkerId) {
    let needed: Vec<bool> = (0..job.stages.len())
        .map(|i| output_still_needed(job, i))
        .collect();
    for (stage, needed) in job.stages.iter_mut().zip(needed) {
        for (p, task) in stage.tasks.iter_mut().enumerate() {
            if needed && matches!(&task.state, TaskState::Done { worker: w, .. } if w == worker) {
                info!(job = %job.id, stage = %stage.id, partition = p, worker = %worker, "output lost with its worker; recomputing");
                task.state = TaskState::Pending;
                stage.finished = None;
            }
        }
    }
}

/// Whether stage `i`'s outputs are still read by a stage that has not finished (or are the
/// results of a collect job that has not finished).
fn output_still_needed(job: &Job, i: usize) -> bool {
    let id = job.stages[i].id;
    let is_final = i + 1 == job.stages.len();
    if is_final {
        return job.sink == Sink::Collect;
    }
    job.stages
        .iter()
        .any(|s| s.inputs.contains(&id) && !s.is_complete())
}

/// Where every map output that stage `s` reads lives.
fn shuffle_inputs(job: &Job, s: usize) -> Vec<ShuffleInput> {
    job.stages[s]
        .inputs
        .iter()
        .map(|input| ShuffleInput {
            stage: *input,
            locations: job.stages[input.0 as usize]
                .tasks
                .iter()
                .enumerate()
                .filter_map(|(p, t)| match &t.state {
                    TaskState::Done {
                        worker, address, ..
                    } => Some(MapOutputLocation {
                        map_partition: p as u32,
                        worker: worker.clone(),
                        address: address.clone(),
                    }),
                    _ => None,
                })
                .collect(),
            grant: None,
        })
        .collect()
}
