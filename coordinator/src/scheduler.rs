//! [`Scheduler`]: the coordinator's core state machine. Events in ([`Scheduler::handle`] with
//! an [`Event`] and the time it happened), [`Action`]s and a [`Reply`] out.
//!
//! It owns: the jobs (life cycle, stages, tasks and their attempts), the workers (through the
//! [`WorkerRegistry`]: liveness, heartbeats, draining, exclusions), the decisions made on them
//! — who is lost, which stage is runnable, which task runs where ([`crate::placement`]), which
//! straggler gets a backup ([`crate::speculation`]) — and the call into stage planning.
//!
//! It must not touch: I/O of any kind (files, network, gRPC/tonic types), clocks (time comes in
//! with each event: no `Instant::now()` or `SystemTime::now()` here or in the modules it owns),
//! randomness (ids come in with events), threads or locks. Whatever should happen outside is
//! an [`Action`], carried out by `coordinator_state`. So it is tested with plain calls and a
//! virtual clock, and the same events in give the same state and actions out.
//!
//! How a reported task end changes the job lives in the child module `task_reports`; how a job
//! resumed after a coordinator restart adopts the outputs that survived, in `adoption`; how a
//! queued job is cut into stages and started (fresh, or resumed as the job log kept it), in
//! `job_start`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use quiver_plan::{
    JobId, PlanNode, Sink, StageId, StageOutput, TaskAttempt, TaskDefinition, WorkerId, WriteMode,
};
use quiver_storage::{StorageOptions, TaskFile};
use tracing::{info, warn};

use crate::adaptive;
use crate::attempt_history::AttemptOutcome;
use crate::error::{CoordinatorError, Result};
pub use crate::event::{
    Event, FetchFailure, HeldOutput, JobRecord, Outcome, Reply, TaskOutcome, Timestamp,
};
use crate::job::{Job, JobOptions, JobState, PlannedFor, Stage, TaskState, adoptable_stages};
use crate::placement::{Constraints, FreeSlots};
pub use crate::scheduler_config::SchedulerConfig;
use crate::scheduler_metrics::{CancelReason, FailureReason, SchedulerMetrics};
use crate::speculation::speculate;
use crate::stage_planner::{PlannerOptions, plan_stages};
use crate::worker_registry::{Registration, WorkerRegistry};

mod adoption;
mod job_start;
mod task_reports;

pub use job_start::plan_job;
use job_start::start_job;

/// How many times an output commit is tried before its job fails.
const COMMIT_TRIES: u32 = 3;
/// The wait before the first retry of a failed output commit (then twice that, ...).
const COMMIT_RETRY_DELAY: Duration = Duration::from_secs(2);

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
    /// Every task of a `write_parquet` job finished: make exactly `files` visible and mark
    /// the output complete, then report [`Event::OutputCommitted`]. Carried out only once
    /// the job log holds the job's [`JobRecord::CommitStarted`]. `resumed`: a coordinator
    /// before a restart began this commit.
    CommitOutput {
        job: JobId,
        directory: String,
        mode: WriteMode,
        files: Vec<TaskFile>,
        resumed: bool,
        /// The job's object store settings.
        storage: StorageOptions,
        /// Wait this long first (a retry after a failed commit).
        retry_after: Duration,
    },
    /// A `write_parquet` job failed or was cancelled: delete its temporary files after
    /// `delay` (once now, and once more after attempts that were still running stopped).
    AbortOutput {
        job: JobId,
        directory: String,
        delay: Duration,
        storage: StorageOptions,
    },
}

/// Jobs, their tasks, the workers, and which worker runs what.
#[derive(Default)]
pub struct Scheduler {
    config: SchedulerConfig,
    jobs: HashMap<JobId, Job>,
    /// Every job kept, in submission order (for listing).
    order: Vec<JobId>,
    /// Unfinished jobs, in submission order: earlier jobs get free slots first. Scheduling
    /// looks at these only, so finished jobs cost it nothing.
    active: Vec<JobId>,
    /// Finished jobs, oldest first; at most `job_history`.
    finished: VecDeque<JobId>,
    /// What the job log should record of the event being handled.
    records: Vec<JobRecord>,
    workers: WorkerRegistry,
    /// When the last [`Event::Tick`] came: a long gap since then means this coordinator was
    /// not running (see [`Scheduler::forgive_own_pause`]).
    last_tick: Option<Timestamp>,
    /// What it has done, for `/metrics`.
    metrics: SchedulerMetrics,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            ..Default::default()
        }
    }

    /// Applies `event`, which happened at `now`, then places what can run. The one way the
    /// scheduler's state changes.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Outcome {
        let mut actions = Vec::new();
        let mut schedule = true;
        let reply = match event {
            Event::WorkerRegistered {
                worker,
                address,
                slots,
                hostname,
                functions,
                held_outputs,
                running_attempts,
            } => {
                let registration = Registration {
                    id: worker.clone(),
                    address: address.clone(),
                    slots,
                    hostname,
                    functions,
                };
                let registered = self.workers.register(registration, now);
                match &registered {
                    Ok(()) => {
                        info!(%worker, %address, slots, held_outputs = held_outputs.len(), "worker registered");
                        actions = self.take_listings(
                            &worker,
                            &address,
                            held_outputs,
                            running_attempts,
                            now,
                        );
                    }
                    Err(_) => schedule = false,
                }
                Reply::Registered(registered)
            }
            Event::Heartbeat {
                worker,
                running_tasks,
                load,
                draining,
            } => {
                let registered =
                    self.workers
                        .heartbeat(&worker, running_tasks, load, draining, now);
                // Only a draining worker is asked about (it must also stop getting tasks).
                schedule = registered && draining;
                let release = schedule && !self.needs_worker(&worker, now);
                if release && self.workers.mark_left(&worker, now) {
                    info!(%worker, "worker drained and released; it leaves");
                }
                Reply::Heartbeat {
                    registered,
                    release,
                }
            }
            Event::WorkerUnreachable { worker } => {
                if self.workers.mark_lost(&worker, now) {
                    actions = self.worker_lost(&worker, now);
                }
                Reply::None
            }
            Event::JobSubmitted {
                job,
                name,
                plan,
                sink,
                options,
                storage_options,
            } => Reply::Submitted(
                Job::queued(job, name, plan, sink, options, now, 0)
                    .map_err(Into::into)
                    .and_then(|mut job| {
                        job.storage_options = storage_options;
                        self.submit(job)
                    }),
            ),
            Event::JobRecovered {
                job,
                name,
                plan,
                sink,
                options,
                submitted_at_ms,
                incarnation,
                commit,
                storage_locations,
                planned_for,
            } => {
                let submitted = Timestamp {
                    monotonic: now.monotonic,
                    wall_ms: submitted_at_ms,
                };
                Reply::Recovered(
                    Job::queued(job, name, plan, sink, options, submitted, incarnation)
                        .map_err(Into::into)
                        .map(|mut job| {
                            job.storage_options = storage_locations;
                            if planned_for.is_some() {
                                job.resume_grace_until = Some(now + self.config.resume_grace);
                            }
                            job.planned_for = planned_for;
                            actions = self.recover(job, commit)
                        }),
                )
            }
            Event::JobCancelled { job } => {
                Reply::Cancelled(self.cancel(&job, now).map(|(c, a)| {
                    actions = a;
                    c
                }))
            }
            Event::ResultsReleased { job } => {
                Reply::Released(self.release_results(&job).map(|a| actions = a))
            }
            Event::TaskFinished {
                worker,
                attempt,
                outcome,
            } => {
                let current = self.is_current(&attempt, &worker);
                if current && matches!(outcome, TaskOutcome::Success { .. }) {
                    self.workers.task_completed(&worker);
                }
                // The late report of an attempt from before a coordinator restart: its output
                // may be adopted (or already was, from the worker's registration).
                let adopted = !current && self.adopt_late_report(&attempt, &worker, &outcome, now);
                let expected = current || adopted;
                if current {
                    actions = self.task_finished(&attempt, &worker, outcome, now);
                } else if adopted {
                    actions = self.complete_if_done(&attempt.job, now);
                } else {
                    info!(task = %attempt, worker = %worker, "ignoring result of a stale attempt");
                }
                Reply::TaskReported { expected }
            }
            Event::OutputCommitted { job, error } => {
                actions = self.output_committed(&job, error, now);
                Reply::None
            }
            Event::Tick => {
                let timeout = self.config.heartbeat_timeout;
                self.forgive_own_pause(now);
                for worker in self.workers.expire(timeout, now) {
                    warn!(%worker, timeout_s = timeout.as_secs_f64(), "worker missed its heartbeats; declaring it lost");
                    actions.extend(self.worker_lost(&worker, now));
                }
                self.workers
                    .forget_departed(self.config.departed_worker_retention, now);
                Reply::None
            }
        };
        if schedule {
            actions.extend(self.schedule(now));
        }
        Outcome {
            actions,
            reply,
            changed: schedule,
            records: std::mem::take(&mut self.records),
        }
    }

    /// Ticks come a few times per heartbeat timeout. A gap of more than half a timeout since
    /// the previous tick means this coordinator itself was not running — stopped (SIGSTOP),
    /// swapped out or stalled — and the heartbeats it did not take in are its own fault, not
    /// the workers': every alive worker gets a full timeout from now before it can be
    /// declared lost. (A worker that really died meanwhile is found one timeout later.)
    fn forgive_own_pause(&mut self, now: Timestamp) {
        let gap = self.last_tick.map(|t| now.since(t));
        self.last_tick = Some(now);
        if let Some(gap) = gap
            && gap > self.config.heartbeat_timeout / 2
        {
            warn!(
                paused_s = gap.as_secs_f64(),
                "this coordinator was not running for a while; every worker gets a full heartbeat timeout before it can be declared lost"
            );
            self.workers.heard_from_all(now);
        }
    }

    /// The scheduler's settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// A job, by id.
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// Every job kept (unfinished, and the newest `job_history` finished), in submission order.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.order.iter().filter_map(|id| self.jobs.get(id))
    }

    /// The jobs whose data workers must keep: unfinished ones, and succeeded collect jobs whose
    /// results the driver has not released. A registering worker deletes every other job's.
    pub fn live_jobs(&self) -> Vec<JobId> {
        self.jobs()
            .filter(|j| {
                !j.state.is_terminal()
                    || (j.state == JobState::Succeeded
                        && j.sink == Sink::Collect
                        && !j.results_released)
            })
            .map(|j| j.id.clone())
            .collect()
    }

    /// What it has done since this coordinator started (for `/metrics`).
    pub fn metrics(&self) -> &SchedulerMetrics {
        &self.metrics
    }

    /// Every worker that registered, alive or lost.
    pub fn workers(&self) -> &WorkerRegistry {
        &self.workers
    }

    /// Tasks running now per worker.
    pub fn running_per_worker(&self) -> HashMap<WorkerId, u32> {
        let mut running: HashMap<WorkerId, u32> = HashMap::new();
        // Only running jobs have running attempts (`finish_job` ends them all), so finished
        // jobs, however many, cost nothing here.
        for job in self.active_jobs().filter(|j| j.state == JobState::Running) {
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

    /// How many finished jobs are kept.
    pub fn finished_jobs(&self) -> usize {
        self.finished.len()
    }

    fn active_jobs(&self) -> impl Iterator<Item = &Job> {
        self.active.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Whether `attempt` on `worker` is the one the coordinator expects a result from.
    pub fn is_current(&self, attempt: &TaskAttempt, worker: &WorkerId) -> bool {
        self.jobs
            .get(&attempt.job)
            .and_then(|j| j.stages.get(attempt.stage.0 as usize))
            .and_then(|s| s.tasks.get(attempt.partition as usize))
            .is_some_and(|t| t.is_running_attempt(worker, attempt.attempt))
    }

    /// Whether `worker` is excluded from scheduling at `now`.
    #[cfg(any(test, feature = "internals"))]
    pub fn is_excluded(&self, worker: &WorkerId, now: Timestamp) -> bool {
        self.workers.get(worker).is_some_and(|w| w.is_excluded(now))
    }

    /// Accepts a job; it starts when a worker is free.
    fn submit(&mut self, job: Job) -> Result<()> {
        let required_functions = &job.required_functions;
        if !required_functions.is_empty()
            && !self.workers.none_alive()
            && self.workers.eligible(required_functions).is_empty()
        {
            let available = self.workers.available_functions();
            return Err(CoordinatorError::MissingFunctions {
                missing: required_functions
                    .iter()
                    .filter(|f| !available.contains(f))
                    .cloned()
                    .collect(),
                available,
            });
        }
        info!(job = %job.id, name = %job.name, "job submitted");
        self.insert_job(job);
        Ok(())
    }

    /// A new unfinished job, logged as accepted.
    fn insert_job(&mut self, job: Job) {
        let id = job.id.clone();
        self.order.push(id.clone());
        self.active.push(id.clone());
        self.jobs.insert(id.clone(), job);
        self.records.push(JobRecord::Submitted(id));
    }

    /// Resumes a job the log holds as unfinished: it is queued again under its id, to run
    /// from the start — or, when its output commit had begun (`commit`), it finishes that
    /// commit with the logged files (re-running it would write other attempts' files).
    fn recover(&mut self, mut job: Job, commit: Option<Vec<TaskFile>>) -> Vec<Action> {
        if self.jobs.contains_key(&job.id) {
            return vec![];
        }
        let id = job.id.clone();
        info!(job = %id, name = %job.name, incarnation = job.incarnation, committing = commit.is_some(), "job resumed after a coordinator restart");
        let Some(files) = commit else {
            self.insert_job(job);
            return vec![];
        };
        let Sink::WriteParquet { directory, mode } = job.sink.clone() else {
            // Only a parquet sink commits; a log that says otherwise is not trusted.
            self.insert_job(job);
            return vec![];
        };
        job.state = JobState::Running;
        job.commit = Some(files.clone());
        self.insert_job(job);
        let storage = self
            .jobs
            .get(&id)
            .map(|j| j.storage_options.clone())
            .unwrap_or_default();
        vec![Action::CommitOutput {
            job: id,
            directory,
            mode,
            files,
            resumed: true,
            storage,
            retry_after: Duration::ZERO,
        }]
    }

    /// Every task of job `id` finished. A `write_parquet` job now commits its output (and
    /// succeeds when that is done); any other job succeeds.
    fn tasks_complete(&mut self, id: &JobId, now: Timestamp) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(id) else {
            return vec![];
        };
        let Sink::WriteParquet { directory, mode } = job.sink.clone() else {
            return self.finish_job(id, JobState::Succeeded, None, now);
        };
        let files: Vec<TaskFile> = job
            .final_stage()
            .map(|stage| {
                stage
                    .tasks
                    .iter()
                    .enumerate()
                    .filter_map(|(p, t)| match t.state {
                        TaskState::Done { attempt, .. } => Some(TaskFile {
                            partition: p as u32,
                            attempt,
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        info!(job = %id, files = files.len(), directory = %directory, "every task finished; committing the output");
        job.commit = Some(files.clone());
        self.records.push(JobRecord::CommitStarted(id.clone()));
        vec![Action::CommitOutput {
            job: id.clone(),
            directory,
            mode,
            files,
            resumed: false,
            storage: job.storage_options.clone(),
            retry_after: Duration::ZERO,
        }]
    }

    /// A job's output commit ended: the job succeeds, or fails with the commit's error.
    fn output_committed(
        &mut self,
        id: &JobId,
        error: Option<String>,
        now: Timestamp,
    ) -> Vec<Action> {
        let committing = self
            .jobs
            .get(id)
            .is_some_and(|j| j.state == JobState::Running && j.commit.is_some());
        if !committing {
            return vec![];
        }
        let Some(e) = error else {
            return self.finish_job(id, JobState::Succeeded, None, now);
        };
        let Some(job) = self.jobs.get_mut(id) else {
            return vec![];
        };
        job.commit_failures += 1;
        let (Some(files), Sink::WriteParquet { directory, mode }) = (&job.commit, &job.sink) else {
            return vec![];
        };
        if job.commit_failures < COMMIT_TRIES {
            // Every step of the commit can be repeated: try again (as if resumed).
            let retry_after = COMMIT_RETRY_DELAY * job.commit_failures;
            warn!(job = %id, error = %e, retry_s = retry_after.as_secs_f64(), "output commit failed; trying again");
            return vec![Action::CommitOutput {
                job: id.clone(),
                directory: directory.clone(),
                mode: *mode,
                files: files.clone(),
                resumed: true,
                storage: job.storage_options.clone(),
                retry_after,
            }];
        }
        // Its temporary files are kept: some partitions may exist nowhere else.
        let error = format!(
            "the output commit failed {COMMIT_TRIES} times, last: {e}; some of the job's files may already be visible in {directory}, the others are kept under its _temporary/{id}/; resubmit with mode Overwrite"
        );
        warn!(job = %id, %error, "failing job");
        self.finish_job(id, JobState::Failed, Some(error), now)
    }

    /// Whether a draining worker must stay: an attempt runs there, or an unfinished job needs
    /// the outputs it holds, or a collect job's unfetched results are there.
    fn needs_worker(&self, id: &WorkerId, now: Timestamp) -> bool {
        let retention = self.config.result_retention;
        let done_here = |t: &crate::job::Task| matches!(&t.state, TaskState::Done { worker, .. } if worker == id);
        self.jobs.values().any(|job| {
            let unfetched_results = job.state == JobState::Succeeded
                && job.sink == Sink::Collect
                && !job.results_released
                && job.finished.is_some_and(|f| now.since(f) < retention)
                && job
                    .final_stage()
                    .is_some_and(|s| s.tasks.iter().any(done_here));
            unfetched_results
                || !job.state.is_terminal()
                    && job.stages.iter().enumerate().any(|(i, stage)| {
                        stage.tasks.iter().any(|t| {
                            t.running_attempts().iter().any(|(w, _)| w == id)
                                || (done_here(t) && job.output_still_needed(i))
                        })
                    })
        })
    }

    /// A worker was declared lost: its running tasks go back to pending, and its map outputs
    /// that are still needed are recomputed. A task whose attempts were running on lost
    /// workers `max_worker_losses` times fails its job (a poison task).
    fn worker_lost(&mut self, lost: &WorkerId, now: Timestamp) -> Vec<Action> {
        let max_losses = self.config.max_worker_losses.max(1);
        let mut poisoned = Vec::new();
        for id in &self.active {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            if job.state != JobState::Running {
                continue;
            }
            for stage in &mut job.stages {
                for (p, task) in stage.tasks.iter_mut().enumerate() {
                    for (worker, attempt) in task.running_attempts() {
                        if worker == *lost {
                            info!(job = %job.id, stage = %stage.id, partition = p, worker = %lost, "attempt dropped: worker lost");
                            task.drop_attempt(attempt);
                            task.history.ended(attempt, AttemptOutcome::Lost, now);
                            task.worker_losses += 1;
                            self.metrics
                                .failed(FailureReason::WorkerLost, task.worker_losses < max_losses);
                            if task.worker_losses >= max_losses {
                                poisoned.push((job.id.clone(), stage.id, p, task.worker_losses));
                            }
                        }
                    }
                }
            }
            job.forget_outputs_of(lost);
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
                actions.extend(self.finish_job(&job, JobState::Failed, Some(error), now));
            }
        }
        actions
    }

    /// The driver fetched a collect job's results: delete them from the workers now.
    fn release_results(&mut self, id: &JobId) -> Result<Vec<Action>> {
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
            .alive()
            .map(|(worker, w)| Action::RemoveJobData {
                worker: worker.clone(),
                address: w.address.clone(),
                job: id.clone(),
                keep: vec![],
                delay: Duration::ZERO,
            })
            .collect())
    }

    /// Cancels a job. Returns false if it had already finished; refused once its output
    /// commit began.
    fn cancel(&mut self, id: &JobId, now: Timestamp) -> Result<(bool, Vec<Action>)> {
        let job = self
            .jobs
            .get(id)
            .ok_or_else(|| CoordinatorError::UnknownJob(id.clone()))?;
        if job.state.is_terminal() {
            return Ok((false, vec![]));
        }
        if job.commit.is_some() {
            // Its output is being made visible: too late to take it back.
            info!(job = %id, "not cancelled: its output commit has begun");
            return Err(CoordinatorError::Committing(id.clone()));
        }
        Ok((
            true,
            self.finish_job(
                id,
                JobState::Cancelled,
                Some("cancelled by request".into()),
                now,
            ),
        ))
    }

    fn finish_job(
        &mut self,
        id: &JobId,
        state: JobState,
        error: Option<String>,
        now: Timestamp,
    ) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(id) else {
            return vec![];
        };
        if !job.state.is_terminal() {
            self.metrics.job_finished(state, now.since(job.submitted));
            self.active.retain(|a| a != id);
            self.finished.push_back(id.clone());
            self.records.push(JobRecord::Finished(id.clone()));
        }
        job.state = state;
        job.error = error;
        job.finished = Some(now);
        job.listings = vec![];
        match (state, job.error.as_deref()) {
            (JobState::Failed, error) => {
                warn!(job = %id, name = %job.name, error = error.unwrap_or("unknown"), "job failed")
            }
            (JobState::Cancelled, _) => info!(job = %id, name = %job.name, "job cancelled"),
            _ => info!(job = %id, name = %job.name, "job succeeded"),
        }
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
                t.history.end_all_running(AttemptOutcome::Cancelled, now);
                if !t.is_done() {
                    t.state = TaskState::Pending;
                    t.backup = None;
                }
            }
        }
        self.metrics
            .cancelled(CancelReason::JobEnded, running.values().map(Vec::len).sum());
        for (worker, attempts) in running {
            if let Some(address) = self.workers.alive_address(&worker) {
                actions.push(Action::Cancel {
                    address: address.to_string(),
                    worker,
                    attempts,
                });
            }
        }
        // Clean up shuffle files; a collect job's results stay until the driver fetched them.
        let collect_results = (state == JobState::Succeeded && job.sink == Sink::Collect)
            .then(|| job.final_stage().map(|s| s.id))
            .flatten();
        for (worker, w) in self.workers.alive() {
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
        // A failed or cancelled job's files never become visible: its temporaries go now, and
        // again once attempts that were still running have surely stopped.
        // (Not once its commit began: files not yet moved exist only there.)
        if let (false, None, Sink::WriteParquet { directory, .. }) =
            (state == JobState::Succeeded, &job.commit, &job.sink)
        {
            for delay in [Duration::ZERO, self.config.heartbeat_timeout] {
                actions.push(Action::AbortOutput {
                    job: id.clone(),
                    directory: directory.clone(),
                    delay,
                    storage: job.storage_options.clone(),
                });
            }
        }
        self.forget_oldest_finished();
        actions
    }

    /// Forgets the oldest finished jobs beyond `job_history`. Their collect results are
    /// removed from the workers when their retention ends, as for any job (the removal was
    /// sent when they finished).
    fn forget_oldest_finished(&mut self) {
        while self.finished.len() > self.config.job_history.max(1) {
            let Some(oldest) = self.finished.pop_front() else {
                break;
            };
            self.jobs.remove(&oldest);
            self.order.retain(|id| *id != oldest);
        }
    }

    /// Places pending tasks of runnable stages onto free slots, oldest job first, then backups
    /// of stragglers on what is left.
    fn schedule(&mut self, now: Timestamp) -> Vec<Action> {
        let mut actions = self.expire_waiting_jobs(now);
        if self.workers.none_alive() {
            return actions;
        }
        let mut free = FreeSlots::of(&self.workers, &self.running_per_worker(), now);
        let total_slots = self.workers.total_slots();
        let limits = self.config.limits;
        let coalesce_target = self.config.coalesce_target_bytes;
        let order = self.active.clone();
        for id in &order {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            let eligible = self.workers.eligible(&job.required_functions);
            if eligible.is_empty() {
                continue;
            }
            if job.state == JobState::Queued {
                if let Err(e) = start_job(job, total_slots, limits, now) {
                    let err = format!("planning failed: {e}");
                    actions.extend(self.finish_job(id, JobState::Failed, Some(err), now));
                    continue;
                }
                self.records.push(JobRecord::Started(id.clone()));
                // What workers listed for it before it was planned.
                actions.extend(self.adopt_listings(id, now));
            }
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            if job.state != JobState::Running {
                continue;
            }
            job.waiting_reason = None;
            if job.waits_for_listings(total_slots, now) {
                job.waiting_reason =
                    Some("resumed: waiting for workers to list the outputs they hold".into());
                continue;
            }
            let joins = adaptive::adapt_joins(job);
            if !joins.is_empty() {
                self.records.push(JobRecord::Started(id.clone()));
            }
            joins
                .into_iter()
                .for_each(|d| self.metrics.adaptive_decided(d));
            let complete: Vec<bool> = job.stages.iter().map(Stage::is_complete).collect();
            for s in 0..job.stages.len() {
                let runnable = job.stages[s].inputs.iter().all(|i| complete[i.0 as usize]);
                if !runnable || complete[s] || !job.stage_needed(s) || adaptive::holds_back(job, s)
                {
                    continue;
                }
                if let Some(decision) = adaptive::adapt(
                    job,
                    s,
                    coalesce_target,
                    total_slots,
                    limits.max_tasks_per_stage,
                ) {
                    self.records.push(JobRecord::Started(id.clone()));
                    self.metrics.adaptive_decided(decision);
                }
                let inputs = job.shuffle_inputs(s);
                let stage = &mut job.stages[s];
                let mut placed = Vec::new();
                for (p, task) in stage.tasks.iter_mut().enumerate() {
                    if task.state != TaskState::Pending {
                        continue;
                    }
                    // A worker this task failed on only as a last resort.
                    let Some(slot) = free.take(Constraints {
                        eligible: &eligible,
                        avoid: &task.failed_on,
                        not_on: None,
                    }) else {
                        break;
                    };
                    let attempt = task.attempts;
                    task.attempts += 1;
                    task.state = TaskState::Running {
                        worker: slot.worker.clone(),
                        attempt,
                        since: now,
                    };
                    task.history.started(attempt, &slot.worker, false, now);
                    placed.push((p, attempt, slot));
                }
                if !placed.is_empty() {
                    stage.started.get_or_insert(now);
                }
                for (p, attempt, slot) in placed {
                    let mut task =
                        stage.task_definition(&job.id, p, attempt, &inputs, job.options.batch_size);
                    task.storage_options = job.storage_options.clone();
                    actions.push(Action::Launch {
                        worker: slot.worker,
                        address: slot.address,
                        task: Box::new(task),
                    });
                }
            }
        }
        if self.config.speculation {
            let policy = self.config.speculation_policy();
            for id in &order {
                if let Some(job) = self.jobs.get_mut(id) {
                    let eligible = self.workers.eligible(&job.required_functions);
                    let backups = speculate(job, &eligible, &mut free, &policy, now);
                    self.metrics.speculative_launched(
                        backups
                            .iter()
                            .filter(|a| matches!(a, Action::Launch { .. }))
                            .count(),
                    );
                    actions.extend(backups);
                }
            }
        }
        actions
    }

    /// A job waits while no registered worker can run it (none at all, or none with its
    /// functions); after `worker_wait_timeout` it fails, saying why.
    fn expire_waiting_jobs(&mut self, now: Timestamp) -> Vec<Action> {
        let timeout = self.config.worker_wait_timeout;
        let mut expired = Vec::new();
        for id in &self.active {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            // A committing job needs no worker (the coordinator moves its files).
            if !matches!(job.state, JobState::Queued | JobState::Running) || job.commit.is_some() {
                continue;
            }
            if self.workers.eligible(&job.required_functions).is_empty() {
                let reason = if self.workers.none_alive() {
                    "waiting for a worker to register".into()
                } else {
                    format!(
                        "waiting for a worker with user function(s) {}",
                        job.required_functions.join(", ")
                    )
                };
                job.waiting_reason = Some(reason.clone());
                let since = *job.waiting_since.get_or_insert(now);
                if now.since(since) >= timeout {
                    expired.push((job.id.clone(), reason));
                }
            } else {
                job.waiting_since = None;
            }
        }
        let mut actions = Vec::new();
        for (id, reason) in expired {
            let error = format!(
                "no worker that can run this job registered within {} s ({reason}); start one with `quiver-worker --coordinator <this coordinator's URL>`, or your own worker binary for user functions",
                timeout.as_secs_f64()
            );
            actions.extend(self.finish_job(&id, JobState::Failed, Some(error), now));
        }
        actions
    }
}
