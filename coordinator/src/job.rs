//! The state of one job: its stages, their tasks, and each task's attempts.

use quiver_plan::{
    FileSplit, JobId, MapOutputLocation, PlanNode, SchemaRef, ShuffleInput, Sink, StageId,
    StageOutput, TaskAttempt, TaskDefinition, WorkerId,
};
use quiver_storage::TaskFile;
use tracing::info;

use crate::adaptive::{JoinAdaptation, StageAdaptation};
use crate::attempt_history::AttemptHistory;
use crate::event::{HeldOutput, Timestamp};
use crate::stage_planner::JoinCandidate;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Submitted, not started (e.g. no worker registered yet).
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Where a task is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskState {
    Pending,
    Running {
        worker: WorkerId,
        attempt: u32,
        since: Timestamp,
    },
    Done {
        worker: WorkerId,
        address: String,
        attempt: u32,
        bucket_bytes: Vec<u64>,
    },
}

/// One partition of one stage.
#[derive(Clone, Debug)]
pub struct Task {
    pub state: TaskState,
    /// Attempts launched so far; the next attempt's number.
    pub attempts: u32,
    /// Failures that count towards `max_task_attempts` (not lost workers or lost inputs).
    pub failures: u32,
    /// Attempts that were running when their worker was lost. A task that keeps losing its
    /// workers may be what kills them (an allocation it asks for, a crash in a user function):
    /// past `max_worker_losses` the job fails instead of taking down one worker after another.
    pub worker_losses: u32,
    /// Attempts that could not fetch their input (its map output is recomputed each time). A
    /// fetch that keeps failing — a refusal, a peer that cannot be reached — fails the job
    /// rather than recomputing forever.
    pub fetch_failures: u32,
    /// Workers this task failed on, avoided for its retries where possible.
    pub failed_on: Vec<WorkerId>,
    pub rows_out: u64,
    pub bytes_out: u64,
    pub spilled_bytes: u64,
    pub elapsed_ms: u64,
    /// A speculative copy of a slow running attempt, on another worker. The first of the
    /// two to succeed wins; the other is cancelled.
    pub backup: Option<BackupAttempt>,
    /// What each attempt did, for status and the dashboard (never for decisions).
    pub history: AttemptHistory,
}

impl Default for Task {
    fn default() -> Self {
        Task::new()
    }
}

/// A speculative attempt running beside the task's primary one.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupAttempt {
    pub worker: WorkerId,
    pub attempt: u32,
    pub since: Timestamp,
}

impl Task {
    /// A pending task, never attempted.
    pub fn new() -> Self {
        Task {
            state: TaskState::Pending,
            attempts: 0,
            failures: 0,
            worker_losses: 0,
            fetch_failures: 0,
            failed_on: vec![],
            rows_out: 0,
            bytes_out: 0,
            spilled_bytes: 0,
            elapsed_ms: 0,
            backup: None,
            history: AttemptHistory::default(),
        }
    }

    /// Every attempt running now, as (worker, attempt number): the primary, then the backup.
    pub fn running_attempts(&self) -> Vec<(WorkerId, u32)> {
        let mut out = Vec::with_capacity(2);
        if let TaskState::Running {
            worker, attempt, ..
        } = &self.state
        {
            out.push((worker.clone(), *attempt));
        }
        if let Some(b) = &self.backup {
            out.push((b.worker.clone(), b.attempt));
        }
        out
    }

    /// Whether `attempt` on `worker` is one the coordinator waits for.
    pub fn is_running_attempt(&self, worker: &WorkerId, attempt: u32) -> bool {
        self.running_attempts()
            .iter()
            .any(|(w, a)| w == worker && *a == attempt)
    }

    /// Ends the attempt `attempt`: if it was the primary and a backup runs, the backup becomes
    /// the primary; otherwise the task is pending again. Returns whether another attempt still
    /// runs.
    pub fn drop_attempt(&mut self, attempt: u32) -> bool {
        if self.backup.as_ref().is_some_and(|b| b.attempt == attempt) {
            self.backup = None;
            return matches!(self.state, TaskState::Running { .. });
        }
        match self.backup.take() {
            Some(b) => {
                self.state = TaskState::Running {
                    worker: b.worker,
                    attempt: b.attempt,
                    since: b.since,
                };
                true
            }
            None => {
                self.state = TaskState::Pending;
                false
            }
        }
    }

    /// Whether the task finished.
    pub fn is_done(&self) -> bool {
        matches!(self.state, TaskState::Done { .. })
    }
}

/// One stage of a job.
#[derive(Clone, Debug)]
pub struct Stage {
    pub id: StageId,
    pub plan: PlanNode,
    pub output: StageOutput,
    pub inputs: Vec<StageId>,
    pub splits: Vec<Vec<FileSplit>>,
    pub tasks: Vec<Task>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// The shuffle buckets each task reads, when adaptive execution coalesced the stage's
    /// partitions; empty: task `p` reads bucket `p`.
    pub read_buckets: Vec<std::ops::Range<u32>>,
    /// For each task of a skewed partition adaptive execution split: the stage whose map
    /// outputs it divides, and the ones this task reads. Empty, or `None`: all of them.
    pub split_reads: Vec<Option<(StageId, std::ops::Range<u32>)>>,
    /// What adaptive execution decided about the stage, once it did.
    pub adaptation: Option<StageAdaptation>,
    /// It reads a repartition into as many partitions as the user asked for: adaptive
    /// execution keeps them.
    pub user_partitions: bool,
    /// A shuffled join in its pipeline that adaptive execution may turn into a broadcast.
    pub join_candidate: Option<JoinCandidate>,
    /// What adaptive execution decided about that join, once it did.
    pub join_adaptation: Option<JoinAdaptation>,
}

impl Stage {
    /// A digest of what the stage computes: its pipeline, output, inputs and splits (xxh3 of
    /// their wire encoding).
    pub fn digest(&self) -> u64 {
        use prost::Message;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&quiver_proto::v1::PlanNode::from(&self.plan).encode_to_vec());
        h.update(&quiver_proto::v1::StageOutput::from(&self.output).encode_to_vec());
        for input in &self.inputs {
            h.update(&input.0.to_le_bytes());
        }
        for task in &self.splits {
            h.update(&(task.len() as u64).to_le_bytes());
            for split in task {
                h.update(&(split.path.len() as u64).to_le_bytes());
                h.update(split.path.as_bytes());
                h.update(&split.start.to_le_bytes());
                h.update(&split.end.to_le_bytes());
                for g in &split.row_groups {
                    h.update(&g.to_le_bytes());
                }
                h.update(&[0xff]);
            }
        }
        h.digest()
    }

    /// Whether what the stage writes depends on the order its rows come in, which a task
    /// reading a shuffle does not keep from one run to the next (local map outputs first):
    /// a sample, a range shuffle (its boundaries come from a sample), rows dealt out without
    /// keys.
    pub fn is_order_sensitive(&self) -> bool {
        fn samples(node: &PlanNode) -> bool {
            matches!(node, PlanNode::Sample { .. }) || node.children().into_iter().any(samples)
        }
        match &self.output {
            StageOutput::RangeShuffle { .. } => true,
            StageOutput::HashShuffle { keys, partitions } if keys.is_empty() && *partitions > 1 => {
                true
            }
            _ => samples(&self.plan),
        }
    }

    /// A stage with every task pending.
    pub fn new(planned: crate::stage_planner::PlannedStage) -> Self {
        Stage {
            id: planned.id,
            tasks: (0..planned.partitions).map(|_| Task::new()).collect(),
            plan: planned.plan,
            output: planned.output,
            inputs: planned.inputs,
            splits: planned.splits,
            started: None,
            finished: None,
            read_buckets: vec![],
            split_reads: vec![],
            adaptation: None,
            user_partitions: planned.user_partitions,
            join_candidate: planned.join_candidate,
            join_adaptation: None,
        }
    }

    /// Whether every task finished.
    pub fn is_complete(&self) -> bool {
        self.tasks.iter().all(Task::is_done)
    }

    /// What a worker needs to run attempt `attempt` of partition `partition`, in batches of
    /// `batch_size` rows (the job's, as admission resolved it).
    pub fn task_definition(
        &self,
        job: &JobId,
        partition: usize,
        attempt: u32,
        inputs: &[ShuffleInput],
        batch_size: u32,
    ) -> TaskDefinition {
        TaskDefinition {
            attempt: TaskAttempt {
                job: job.clone(),
                stage: self.id,
                partition: partition as u32,
                attempt,
            },
            plan: self.plan.clone(),
            output: self.output.clone(),
            splits: self.splits.get(partition).cloned().unwrap_or_default(),
            inputs: match self.split_reads.get(partition) {
                // A split skewed partition's task reads part of one side's map outputs.
                Some(Some((side, maps))) => inputs
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        if i.stage == *side {
                            i.locations.retain(|l| maps.contains(&l.map_partition));
                        }
                        i
                    })
                    .collect(),
                _ => inputs.to_vec(),
            },
            batch_size: batch_size as usize,
            storage_options: Default::default(),
            shuffle_buckets: self.read_buckets.get(partition).cloned(),
        }
    }
}

/// A job's tuning, resolved: what the job set, or the coordinator's default where it set
/// nothing (`Admission::job_options` resolves; [`JobOptions::default`] is the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobOptions {
    /// Partitions of every shuffle; `None`: twice the cluster's total slots when the job
    /// starts (the scheduler resolves it then).
    pub shuffle_partitions: Option<u32>,
    /// Rows per batch, at least 1.
    pub batch_size: u32,
    /// Broadcast a join's right side estimated at most this many bytes; `None`: never.
    pub broadcast_threshold: Option<u64>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            shuffle_partitions: None,
            batch_size: quiver_plan::DEFAULT_BATCH_SIZE as u32,
            broadcast_threshold: Some(crate::stage_planner::DEFAULT_BROADCAST_THRESHOLD),
        }
    }
}

/// The cluster shape a job was cut into stages for. Logged when the job starts, so that a
/// resumed job is cut into the same stages and partitions, and the map outputs that survived a
/// coordinator restart on the workers mean what they meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFor {
    /// The slots that sized its input splits.
    pub total_slots: u32,
    /// The partitions of every shuffle, resolved.
    pub shuffle_partitions: u32,
    /// The tasks of each stage (checked again when a resumed job is planned).
    pub stage_tasks: Vec<u32>,
    /// A digest of each stage — its pipeline, output, inputs and splits — so that a resumed
    /// job planned otherwise (by another build, say) is not taken for the same stages.
    pub stage_digests: Vec<u64>,
    /// The first incarnation that ran this plan: outputs of attempts from then on (and from
    /// before the current incarnation) are adoptable.
    pub since_incarnation: u32,
    /// What adaptive execution decided since about partitions, in the order decided (a
    /// resumed job applies them again before it adopts outputs, after `join_adaptations`).
    pub adaptations: Vec<StageAdaptation>,
    /// What adaptive execution decided since about joins.
    pub join_adaptations: Vec<JoinAdaptation>,
}

impl PlannedFor {
    /// What `stages` were planned for, first run by `incarnation`.
    pub fn of(
        stages: &[Stage],
        total_slots: u32,
        shuffle_partitions: u32,
        incarnation: u32,
    ) -> Self {
        PlannedFor {
            total_slots,
            shuffle_partitions,
            stage_tasks: stages.iter().map(|s| s.tasks.len() as u32).collect(),
            stage_digests: stages.iter().map(Stage::digest).collect(),
            since_incarnation: incarnation,
            adaptations: vec![],
            join_adaptations: vec![],
        }
    }
}

/// Which of `stages` may adopt outputs of an earlier run: those neither order-sensitive
/// ([`Stage::is_order_sensitive`]), nor coalescable without a logged decision
/// ([`crate::adaptive`]), nor downstream of one. Adopting part of such a stage's
/// outputs and recomputing the rest could mix two different cuts of its rows (two sets of
/// sort boundaries, say); recomputed whole, each run's are consistent.
pub fn adoptable_stages(stages: &[Stage]) -> Vec<bool> {
    let mut adoptable: Vec<bool> = Vec::with_capacity(stages.len());
    for stage in stages {
        let inputs_adoptable = stage
            .inputs
            .iter()
            .all(|i| adoptable.get(i.0 as usize).copied().unwrap_or(false));
        // A stage adaptive execution could have cut otherwise, with no decision logged, may
        // hold outputs of a cut nobody knows any more.
        let cut_known = (stage.adaptation.is_some() || !crate::adaptive::may_coalesce(stage))
            && !crate::adaptive::join_undecided(stages, stage.id);
        adoptable.push(inputs_adoptable && !stage.is_order_sensitive() && cut_known);
    }
    adoptable
}

/// What a registering worker listed for a resumed job: an output it holds, or an attempt it
/// runs.
#[derive(Clone, Debug)]
pub enum Listed {
    Output(HeldOutput),
    Running(TaskAttempt),
}

/// Something a worker listed when it registered, kept until its (resumed) job is planned.
#[derive(Clone, Debug)]
pub struct Listing {
    pub worker: WorkerId,
    pub address: String,
    pub listed: Listed,
}

/// One submitted job.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    pub name: String,
    pub state: JobState,
    pub error: Option<String>,
    pub plan: PlanNode,
    pub sink: Sink,
    pub options: JobOptions,
    pub result_schema: SchemaRef,
    /// Empty until the job starts (stages are sized by the cluster at that moment).
    pub stages: Vec<Stage>,
    /// When it was submitted (its wall-clock part is what drivers see).
    pub submitted: Timestamp,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub waiting_reason: Option<String>,
    /// Since when the job has been waiting for a worker, if it is.
    pub waiting_since: Option<Timestamp>,
    /// User functions the job calls; only workers that have them all run its tasks.
    pub required_functions: Vec<String>,
    /// The driver fetched the results of this collect job; workers may delete them.
    pub results_released: bool,
    /// How many times a restarted coordinator resumed this job (0: never). Its attempts are
    /// numbered from `incarnation * ATTEMPTS_PER_INCARNATION`.
    pub incarnation: u32,
    /// A `write_parquet` job whose tasks all finished: the file each partition keeps, while
    /// the output commit runs (the job stays `Running` until it ends).
    pub commit: Option<Vec<TaskFile>>,
    /// Failed tries of that commit (each is retried, up to a limit).
    pub commit_failures: u32,
    /// Settings and credentials for the job's object stores, put in every task and used by
    /// its output commit. Only the settings that locate a store are logged, so a resumed
    /// job's credentials come from the processes' environment.
    pub storage_options: quiver_plan::StorageOptions,
    /// The cluster shape its stages were cut for, once it started (or, for a resumed job, as
    /// the job log kept it).
    pub planned_for: Option<PlannedFor>,
    /// Which stages may adopt outputs of the job's earlier runs (a resumed job cut into the
    /// same stages as they were: see [`adoptable_stages`]); empty: none.
    pub adoptable: Vec<bool>,
    /// A resumed job, not yet planned: what registering workers listed for it.
    pub listings: Vec<Listing>,
    /// A resumed job launches no task before this, so that workers coming back after the
    /// restart can list the outputs they hold first.
    pub resume_grace_until: Option<Timestamp>,
}

/// Attempt numbers each incarnation of a job has to itself: a task's attempts in one run
/// (retries, backups, recomputations) stay far below it.
pub const ATTEMPTS_PER_INCARNATION: u32 = 10_000;

impl Job {
    /// A queued job that has not started: submitted at `submitted`, resumed `incarnation`
    /// times by restarted coordinators. Fails if the plan has no valid schema.
    pub fn queued(
        id: JobId,
        name: String,
        plan: PlanNode,
        sink: Sink,
        options: JobOptions,
        submitted: Timestamp,
        incarnation: u32,
    ) -> Result<Job, quiver_plan::PlanError> {
        Ok(Job {
            result_schema: plan.schema()?,
            required_functions: plan.user_functions(),
            id,
            name,
            state: JobState::Queued,
            error: None,
            plan,
            sink,
            options,
            stages: vec![],
            submitted,
            started: None,
            finished: None,
            waiting_reason: None,
            waiting_since: None,
            results_released: false,
            incarnation,
            commit: None,
            commit_failures: 0,
            storage_options: Default::default(),
            planned_for: None,
            adoptable: vec![],
            listings: vec![],
            resume_grace_until: None,
        })
    }

    /// The first attempt number of this incarnation.
    pub fn first_attempt(&self) -> u32 {
        self.incarnation.saturating_mul(ATTEMPTS_PER_INCARNATION)
    }

    /// Whether a running job's task `stage`/`partition` is done with `attempt`'s output on
    /// `worker` (e.g. an adopted output whose late report comes in).
    pub fn holds_output(
        &self,
        stage: StageId,
        partition: u32,
        worker: &WorkerId,
        attempt: u32,
    ) -> bool {
        self.stages
            .get(stage.0 as usize)
            .and_then(|s| s.tasks.get(partition as usize))
            .is_some_and(|t| matches!(&t.state, TaskState::Done { worker: w, attempt: a, .. } if w == worker && *a == attempt))
    }

    /// The pending task that an attempt of an earlier run of this job may stand in for: only
    /// for a running job that adopts outputs, from an attempt of a run planned the same way, in
    /// an adoptable stage that is not a `write_parquet` one (its files are committed by
    /// attempt, not held by a worker), for a task still pending.
    fn adoptable_task(&mut self, attempt: &TaskAttempt) -> Option<(&mut Stage, usize)> {
        let first = self.first_attempt();
        let since = self
            .planned_for
            .as_ref()
            .map(|p| p.since_incarnation.saturating_mul(ATTEMPTS_PER_INCARNATION));
        let from_earlier_run = since.is_some_and(|since| (since..first).contains(&attempt.attempt));
        let adoptable = self
            .adoptable
            .get(attempt.stage.0 as usize)
            .copied()
            .unwrap_or(false);
        if !adoptable || self.state != JobState::Running || !from_earlier_run {
            return None;
        }
        let stage = self.stages.get_mut(attempt.stage.0 as usize)?;
        if matches!(stage.output, StageOutput::WriteParquet { .. }) {
            return None;
        }
        // Attempts from before the run that decided how the stage is cut may have been cut
        // otherwise (by a decision that never reached the log).
        let decided_in = [
            stage.adaptation.as_ref().map(|a| a.decided_in),
            stage.join_adaptation.as_ref().map(|d| d.decided_in),
        ]
        .into_iter()
        .flatten()
        .max();
        if decided_in.is_some_and(|d| attempt.attempt < d.saturating_mul(ATTEMPTS_PER_INCARNATION))
        {
            return None;
        }
        let partition = attempt.partition as usize;
        let task = stage.tasks.get(partition)?;
        (task.state == TaskState::Pending && task.backup.is_none()).then_some((stage, partition))
    }

    /// Takes `output`, which `worker` (at `address`) holds from an earlier run of this job,
    /// as its task's result, if [`Job::adoptable_task`] allows and it has the stage's bucket
    /// count. Returns whether it was adopted.
    pub fn adopt(
        &mut self,
        worker: &WorkerId,
        address: &str,
        output: &HeldOutput,
        now: Timestamp,
    ) -> bool {
        let Some((stage, partition)) = self.adoptable_task(&output.attempt) else {
            return false;
        };
        if output.bucket_bytes.len() != stage.output.buckets() as usize {
            return false;
        }
        let task = &mut stage.tasks[partition];
        task.state = TaskState::Done {
            worker: worker.clone(),
            address: address.to_string(),
            attempt: output.attempt.attempt,
            bucket_bytes: output.bucket_bytes.clone(),
        };
        task.rows_out = output.rows;
        task.bytes_out = output
            .bucket_bytes
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b));
        stage.started.get_or_insert(now);
        if stage.is_complete() {
            stage.finished = Some(now);
        }
        true
    }

    /// Takes `attempt`, which `worker` runs since before the coordinator's restart, as its
    /// task's running attempt, if [`Job::adoptable_task`] allows: its report is then awaited
    /// like that of any attempt launched now. Returns whether it was adopted.
    pub fn adopt_running(
        &mut self,
        worker: &WorkerId,
        attempt: &TaskAttempt,
        now: Timestamp,
    ) -> bool {
        // Only in a stage that reads files, and one still needed: an attempt that reads a
        // shuffle holds read grants signed by the coordinator before the restart, which the
        // workers no longer accept.
        let s = attempt.stage.0 as usize;
        let reads_files = self.stages.get(s).is_some_and(|st| st.inputs.is_empty());
        if !reads_files || !self.stage_needed(s) {
            return false;
        }
        let Some((stage, partition)) = self.adoptable_task(attempt) else {
            return false;
        };
        stage.started.get_or_insert(now);
        let task = &mut stage.tasks[partition];
        task.state = TaskState::Running {
            worker: worker.clone(),
            attempt: attempt.attempt,
            since: now,
        };
        task.history.started(attempt.attempt, worker, false, now);
        true
    }

    /// Whether every task the job needs is done: its final stage is complete. (A resumed job
    /// whose later stages were adopted never runs the stages before them again.)
    pub fn all_tasks_done(&self) -> bool {
        self.final_stage().is_some_and(Stage::is_complete)
    }

    /// Whether stage `s` must still run: the final stage, or one whose outputs a stage that
    /// has not finished reads.
    pub fn stage_needed(&self, s: usize) -> bool {
        s + 1 == self.stages.len() || self.output_still_needed(s)
    }

    /// A resumed job launches nothing during its grace, while the workers coming back list
    /// what they hold; the grace ends early once workers with as many slots as the job was
    /// planned for are back (`total_slots`).
    pub fn waits_for_listings(&self, total_slots: u32, now: Timestamp) -> bool {
        let slots_back = self
            .planned_for
            .as_ref()
            .is_some_and(|p| total_slots >= p.total_slots);
        !slots_back
            && self
                .resume_grace_until
                .is_some_and(|until| now.is_before(until))
    }

    /// The stage that writes the job's sink.
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// Whether stage `i`'s outputs are still read by a stage that has not finished (or are
    /// the results of a collect job).
    pub fn output_still_needed(&self, i: usize) -> bool {
        let id = self.stages[i].id;
        let is_final = i + 1 == self.stages.len();
        if is_final {
            return self.sink == Sink::Collect;
        }
        self.stages
            .iter()
            .any(|s| s.inputs.contains(&id) && !s.is_complete())
    }

    /// Marks every output `worker` held that this job still needs as gone (its task pending
    /// again), so that it is recomputed: the worker was lost, or a fetch from it failed.
    pub fn forget_outputs_of(&mut self, worker: &WorkerId) {
        let needed: Vec<bool> = (0..self.stages.len())
            .map(|i| self.output_still_needed(i))
            .collect();
        for (stage, needed) in self.stages.iter_mut().zip(needed) {
            for (p, task) in stage.tasks.iter_mut().enumerate() {
                if needed && matches!(&task.state, TaskState::Done { worker: w, .. } if w == worker)
                {
                    info!(job = %self.id, stage = %stage.id, partition = p, worker = %worker, "output lost with its worker; recomputing");
                    task.state = TaskState::Pending;
                    stage.finished = None;
                }
            }
        }
    }

    /// The map output bytes partition `partition` of stage `s` reads — in all, and the part
    /// held by workers other than `reader` — as the map outputs that are done now are
    /// (their sizes as their tasks reported them). Counts what the task's plan reads
    /// ([`PlanNode::stage_reads`], over all its buckets when the stage was coalesced) and,
    /// for a range shuffle, the sample.
    pub fn shuffle_input_bytes(&self, s: usize, partition: usize, reader: &WorkerId) -> (u64, u64) {
        let stage = &self.stages[s];
        let mut reads = match stage.read_buckets.get(partition) {
            // A coalesced task reads several buckets of each shuffle (and a broadcast once).
            Some(buckets) => {
                let mut reads: Vec<(StageId, u32)> = buckets
                    .clone()
                    .flat_map(|b| stage.plan.stage_reads(b))
                    .collect();
                reads.sort_unstable_by_key(|(s, b)| (s.0, *b));
                reads.dedup();
                reads
            }
            None => stage.plan.stage_reads(partition as u32),
        };
        if let StageOutput::RangeShuffle { sample, .. } = &stage.output {
            reads.push((*sample, 0));
        }
        let (mut read, mut fetched) = (0u64, 0u64);
        for (input, bucket) in reads {
            let Some(map_stage) = self.stages.get(input.0 as usize) else {
                continue;
            };
            let maps = match stage.split_reads.get(partition) {
                Some(Some((side, maps))) if *side == input => maps.clone(),
                _ => 0..u32::MAX,
            };
            for (m, task) in map_stage.tasks.iter().enumerate() {
                if !maps.contains(&(m as u32)) {
                    continue;
                }
                if let TaskState::Done {
                    worker,
                    bucket_bytes,
                    ..
                } = &task.state
                {
                    let bytes = bucket_bytes.get(bucket as usize).copied().unwrap_or(0);
                    read = read.saturating_add(bytes);
                    if worker != reader {
                        fetched = fetched.saturating_add(bytes);
                    }
                }
            }
        }
        (read, fetched)
    }

    /// Where every map output that stage `s` reads lives.
    pub fn shuffle_inputs(&self, s: usize) -> Vec<ShuffleInput> {
        self.stages[s]
            .inputs
            .iter()
            .map(|input| ShuffleInput {
                stage: *input,
                locations: self.stages[input.0 as usize]
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
}
