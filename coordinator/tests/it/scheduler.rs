//! The scheduler driven by events on a virtual clock: workers are plain ids that "run" tasks
//! when the test reports their outcomes, and time passes only when a test advances it.

use std::time::Duration;

use quiver_coordinator::event::{Event, FetchFailure, TaskOutcome, Timestamp};
use quiver_coordinator::job::JobState;
use quiver_coordinator::scheduler::{Action, Outcome, Reply, Scheduler, SchedulerConfig};
use quiver_coordinator::scheduler_metrics::{CancelReason, FailureReason};
use quiver_coordinator::worker_registry::{AddressTaken, Liveness};
use quiver_plan::{JobId, PlanNode, Sink, StageId, TaskAttempt, TaskDefinition, WorkerId};

use crate::stage_planner::word_count_plan;

/// A scheduler and a virtual clock.
pub(crate) struct Sim {
    pub(crate) s: Scheduler,
    pub(crate) now: Timestamp,
}

impl Sim {
    pub(crate) fn new(config: SchedulerConfig) -> Self {
        Sim {
            s: Scheduler::new(config),
            now: Timestamp::from_millis(1_000),
        }
    }

    pub(crate) fn send(&mut self, event: Event) -> Outcome {
        self.s.handle(event, self.now)
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
    }

    pub(crate) fn register(&mut self, worker: &WorkerId, slots: u32) -> Vec<Action> {
        let outcome = self.send(Event::WorkerRegistered {
            held_outputs: vec![],
            running_attempts: vec![],
            worker: worker.clone(),
            address: format!("http://{}", worker.0),
            slots,
            hostname: "host".into(),
            functions: vec![],
        });
        assert!(matches!(outcome.reply, Reply::Registered(Ok(()))));
        outcome.actions
    }

    pub(crate) fn submit(&mut self, job: &JobId, plan: PlanNode) -> Vec<Action> {
        self.submit_to(job, plan, Sink::Collect)
    }

    pub(crate) fn submit_to(&mut self, job: &JobId, plan: PlanNode, sink: Sink) -> Vec<Action> {
        let outcome = self.send(Event::JobSubmitted {
            job: job.clone(),
            name: "wc".into(),
            plan,
            sink,
            options: Default::default(),
            storage_options: Default::default(),
        });
        assert!(matches!(outcome.reply, Reply::Submitted(Ok(()))));
        outcome.actions
    }

    pub(crate) fn finish(
        &mut self,
        worker: &WorkerId,
        task: &TaskDefinition,
        outcome: TaskOutcome,
    ) -> Vec<Action> {
        self.report(worker, &task.attempt, outcome).0
    }

    /// Reports an attempt's outcome; the actions, and whether the attempt was expected.
    pub(crate) fn report(
        &mut self,
        worker: &WorkerId,
        attempt: &TaskAttempt,
        outcome: TaskOutcome,
    ) -> (Vec<Action>, bool) {
        let out = self.send(Event::TaskFinished {
            worker: worker.clone(),
            attempt: attempt.clone(),
            outcome,
        });
        match out.reply {
            Reply::TaskReported { expected } => (out.actions, expected),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// A heartbeat: (registered, release).
    pub(crate) fn heartbeat(&mut self, worker: &WorkerId, draining: bool) -> (bool, bool) {
        match self
            .send(Event::Heartbeat {
                worker: worker.clone(),
                running_tasks: 0,
                load: Default::default(),
                draining,
            })
            .reply
        {
            Reply::Heartbeat {
                registered,
                release,
            } => (registered, release),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    pub(crate) fn tick(&mut self) -> Vec<Action> {
        self.send(Event::Tick).actions
    }

    /// Lets `d` pass as it does on a running coordinator: a tick every second (the heartbeat
    /// monitor ticks every quarter of the 5 s timeout). Returns the actions of every tick.
    pub(crate) fn pass(&mut self, d: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut left = d;
        while !left.is_zero() {
            let step = left.min(Duration::from_secs(1));
            self.advance(step);
            actions.extend(self.tick());
            left -= step;
        }
        actions
    }

    pub(crate) fn state(&self, job: &JobId) -> JobState {
        self.s.job(job).unwrap().state
    }

    pub(crate) fn liveness(&self, worker: &WorkerId) -> Liveness {
        self.s.workers().get(worker).unwrap().liveness
    }
}

pub(crate) fn launches(actions: &[Action]) -> Vec<(WorkerId, TaskDefinition)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { worker, task, .. } => Some((worker.clone(), (**task).clone())),
            _ => None,
        })
        .collect()
}

pub(crate) fn map_launches(actions: &[Action]) -> Vec<(WorkerId, TaskDefinition)> {
    launches(actions)
        .into_iter()
        .filter(|(_, t)| t.attempt.stage.0 == 0)
        .collect()
}

/// A successful result of `task`, with one size per bucket its stage writes.
pub(crate) fn success(task: &TaskDefinition) -> TaskOutcome {
    success_in(task, 1)
}

pub(crate) fn success_in(task: &TaskDefinition, elapsed_ms: u64) -> TaskOutcome {
    TaskOutcome::Success {
        bucket_bytes: vec![1; task.output.buckets() as usize],
        rows_out: 3,
        bytes_out: 3,
        elapsed_ms,
        spilled_bytes: 0,
    }
}

pub(crate) fn failure(retryable: bool) -> TaskOutcome {
    TaskOutcome::Failure {
        message: "boom at row 7".into(),
        retryable,
        fetch_failure: None,
    }
}

pub(crate) fn worker_ids(n: usize) -> Vec<WorkerId> {
    (0..n).map(|i| WorkerId(format!("w{i}"))).collect()
}

/// `workers` workers of `slots` slots, and a word count over three files submitted: the
/// launches that submitting it gave.
pub(crate) fn setup(
    workers: usize,
    slots: u32,
) -> (Sim, JobId, Vec<WorkerId>, Vec<(WorkerId, TaskDefinition)>) {
    setup_with(no_coalescing(), workers, slots, &[10, 10, 10])
}

/// The default configuration without adaptive coalescing: most tests here count the reduce
/// tasks as planned (the virtual map outputs are a few bytes, which coalescing would make
/// one task); `adaptive_execution.rs` tests coalescing itself.
pub(crate) fn no_coalescing() -> SchedulerConfig {
    SchedulerConfig {
        coalesce_target_bytes: 0,
        ..SchedulerConfig::default()
    }
}

pub(crate) fn setup_with(
    config: SchedulerConfig,
    workers: usize,
    slots: u32,
    files: &[u64],
) -> (Sim, JobId, Vec<WorkerId>, Vec<(WorkerId, TaskDefinition)>) {
    let mut sim = Sim::new(config);
    let ids = worker_ids(workers);
    for w in &ids {
        assert!(sim.register(w, slots).is_empty(), "nothing to run yet");
    }
    let job = JobId("j".into());
    let first = launches(&sim.submit(&job, word_count_plan(files)));
    (sim, job, ids, first)
}

/// Reports success for every launched attempt, and for those it launches, until none is left.
pub(crate) fn run_to_completion(sim: &mut Sim, mut pending: Vec<(WorkerId, TaskDefinition)>) {
    let mut rounds = 0;
    while let Some((w, t)) = pending.pop() {
        let actions = sim.finish(&w, &t, success(&t));
        pending.extend(launches(&actions));
        rounds += 1;
        assert!(rounds < 1000);
    }
}

#[test]
fn a_job_runs_its_stages_in_order_within_the_slots() {
    let (mut sim, job, _, first) = setup(2, 1);
    // Two slots: two of the three map tasks start; no reduce task yet.
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|(_, t)| t.attempt.stage.0 == 0));
    assert_ne!(first[0].0, first[1].0, "spread over both workers");
    run_to_completion(&mut sim, first);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

#[test]
fn reduce_tasks_get_every_map_output_location() {
    let (mut sim, job, _, maps) = setup(1, 8);
    assert_eq!(maps.len(), 3);
    let mut reduces = vec![];
    for (w, t) in &maps {
        reduces.extend(launches(&sim.finish(w, t, success(t))));
    }
    // 8 slots: 2 x 8 = 16 reduce partitions, 8 of which start at once.
    assert_eq!(reduces.len(), 8);
    for (_, r) in &reduces {
        assert_eq!(r.inputs.len(), 1);
        let mut parts: Vec<u32> = r.inputs[0]
            .locations
            .iter()
            .map(|l| l.map_partition)
            .collect();
        parts.sort();
        assert_eq!(parts, vec![0, 1, 2]);
    }
    assert_eq!(sim.state(&job), JobState::Running);
}

#[test]
fn a_worker_silent_past_the_heartbeat_timeout_is_lost_and_its_tasks_run_elsewhere() {
    let (mut sim, job, ids, first) = setup(2, 4);
    assert_eq!(first.len(), 3);
    // Both heartbeat for 4 s; then only w1 does. The timeout is 5 s.
    for _ in 0..4 {
        sim.advance(Duration::from_secs(1));
        assert_eq!(sim.heartbeat(&ids[0], false), (true, false));
        assert_eq!(sim.heartbeat(&ids[1], false), (true, false));
        assert!(sim.tick().is_empty());
    }
    for _ in 0..5 {
        sim.advance(Duration::from_secs(1));
        sim.heartbeat(&ids[1], false);
        assert!(
            launches(&sim.tick()).is_empty(),
            "w0 is silent for 5 s: not yet lost"
        );
    }
    assert_eq!(sim.liveness(&ids[0]), Liveness::Alive);
    sim.advance(Duration::from_millis(1));
    let again = launches(&sim.tick());
    assert_eq!(sim.liveness(&ids[0]), Liveness::Lost);
    assert_eq!(sim.liveness(&ids[1]), Liveness::Alive);
    let lost_count = first.iter().filter(|(w, _)| *w == ids[0]).count();
    assert!(lost_count > 0);
    assert_eq!(again.len(), lost_count);
    assert!(
        again
            .iter()
            .all(|(w, t)| *w == ids[1] && t.attempt.attempt == 1)
    );
    // A late result from the lost worker's attempt is ignored, and so are its heartbeats: it
    // must register again.
    let (w, t) = first.iter().find(|(w, _)| *w == ids[0]).unwrap();
    let (actions, expected) = sim.report(w, &t.attempt, success(t));
    assert!(actions.is_empty() && !expected);
    assert_eq!(sim.heartbeat(&ids[0], false), (false, false));
    let survivors: Vec<_> = first
        .into_iter()
        .filter(|(w, _)| *w == ids[1])
        .chain(again)
        .collect();
    run_to_completion(&mut sim, survivors);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

#[test]
fn a_lost_worker_that_registers_again_gets_tasks_and_keeps_its_count() {
    let (mut sim, _, ids, first) = setup(1, 8);
    let (w, t) = &first[0];
    let (_, expected) = sim.report(w, &t.attempt, success(t));
    assert!(expected);
    assert_eq!(sim.s.workers().get(w).unwrap().tasks_completed, 1);
    assert!(
        sim.pass(Duration::from_secs(6)).is_empty(),
        "no worker left to run anything"
    );
    assert_eq!(sim.liveness(&ids[0]), Liveness::Lost);
    // Its finished map output is gone with it; every map task runs again once it is back.
    let again = launches(&sim.register(&ids[0], 8));
    assert_eq!(sim.liveness(&ids[0]), Liveness::Alive);
    assert_eq!(again.len(), 3);
    assert!(
        again
            .iter()
            .all(|(w, t)| *w == ids[0] && t.attempt.stage.0 == 0)
    );
    assert_eq!(sim.s.workers().get(w).unwrap().tasks_completed, 1);
}

#[test]
fn a_registration_may_not_take_a_live_workers_address() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let ids = worker_ids(2);
    sim.register(&ids[0], 1);
    let taken = |sim: &mut Sim| {
        sim.send(Event::WorkerRegistered {
            held_outputs: vec![],
            running_attempts: vec![],
            worker: ids[1].clone(),
            address: "http://w0".into(),
            slots: 1,
            hostname: "h".into(),
            functions: vec![],
        })
        .reply
    };
    match taken(&mut sim) {
        Reply::Registered(Err(AddressTaken { holder })) => assert_eq!(holder, ids[0]),
        other => panic!("{other:?}"),
    }
    assert!(sim.s.workers().get(&ids[1]).is_none());
    // Once the holder is lost, the address is free.
    sim.pass(Duration::from_secs(6));
    assert!(matches!(taken(&mut sim), Reply::Registered(Ok(()))));
    assert_eq!(sim.s.workers().get(&ids[1]).unwrap().address, "http://w0");
}

#[test]
fn a_heartbeat_from_an_unknown_worker_asks_it_to_register() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let outcome = sim.send(Event::Heartbeat {
        worker: WorkerId("nobody".into()),
        running_tasks: 2,
        load: Default::default(),
        draining: false,
    });
    assert!(matches!(
        outcome.reply,
        Reply::Heartbeat {
            registered: false,
            release: false
        }
    ));
    assert!(sim.s.workers().get(&WorkerId("nobody".into())).is_none());
}

#[test]
fn a_heartbeat_records_what_the_worker_reports() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let w = WorkerId("w".into());
    sim.register(&w, 4);
    sim.advance(Duration::from_millis(1500));
    sim.send(Event::Heartbeat {
        worker: w.clone(),
        running_tasks: 3,
        load: Default::default(),
        draining: false,
    });
    let entry = sim.s.workers().get(&w).unwrap();
    assert_eq!(entry.running_tasks, 3);
    assert_eq!(entry.last_heartbeat, sim.now);
    assert!(!entry.draining);
}

#[test]
fn an_unreachable_worker_is_lost_at_once() {
    let (mut sim, _, ids, first) = setup(2, 4);
    let on_w0 = first.iter().filter(|(w, _)| *w == ids[0]).count();
    let again = launches(
        &sim.send(Event::WorkerUnreachable {
            worker: ids[0].clone(),
        })
        .actions,
    );
    assert_eq!(sim.liveness(&ids[0]), Liveness::Lost);
    assert_eq!(again.len(), on_w0);
    assert!(again.iter().all(|(w, _)| *w == ids[1]));
}

#[test]
fn a_task_whose_workers_keep_dying_fails_its_job_instead_of_killing_more() {
    let (mut sim, job, _, first) = setup(3, 1);
    let (victim_worker, victim) = first[0].clone();
    // The first loss is forgiven: the task runs again, elsewhere.
    let lost = sim.send(Event::WorkerUnreachable {
        worker: victim_worker.clone(),
    });
    assert!(launches(&lost.actions).is_empty(), "no free slot yet");
    let again = launches(&sim.register(&WorkerId("w3".into()), 1));
    let (second_worker, retry) = again
        .iter()
        .find(|(_, t)| t.attempt.partition == victim.attempt.partition)
        .cloned()
        .expect("the task runs again");
    assert_ne!(second_worker, victim_worker);
    // Its second worker dies too: the job fails, naming the task, and nothing relaunches it.
    let actions = sim
        .send(Event::WorkerUnreachable {
            worker: second_worker,
        })
        .actions;
    assert!(launches(&actions).is_empty());
    let j = sim.s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Failed);
    let error = j.error.clone().unwrap();
    assert!(
        error.contains(&format!(
            "stage {} partition {}: worker lost while running it 2 times",
            retry.attempt.stage, retry.attempt.partition
        )),
        "{error}"
    );
    assert!(launches(&sim.tick()).is_empty());
    // Counted: two attempts lost with their workers, the first of them retried.
    let m = sim.s.metrics();
    assert_eq!(m.failures(FailureReason::WorkerLost), 2);
    assert_eq!(m.retries(FailureReason::WorkerLost), 1);
    assert_eq!(m.jobs_ended(JobState::Failed), 1);
}

#[test]
fn a_fetch_that_keeps_failing_fails_the_job_instead_of_recomputing_forever() {
    let (mut sim, job, _, maps) = setup(1, 8);
    let mut pending = vec![];
    for (w, t) in &maps {
        pending.extend(launches(&sim.finish(w, t, success(t))));
    }
    let partition = pending[0].1.attempt.partition;
    let mut rounds = 0;
    while sim.state(&job) == JobState::Running {
        rounds += 1;
        assert!(rounds < 100, "the fetch failures never end the job");
        // The reducer says map partition 0 cannot be fetched; the map task is recomputed (it
        // succeeds) and the reducer tried again, which fails the same way. Other reducers
        // never finish.
        let (w, t) = pending.remove(0);
        let outcome = if t.attempt.stage.0 == 0 {
            success(&t)
        } else if t.attempt.partition == partition {
            TaskOutcome::Failure {
                message: "refused".into(),
                retryable: true,
                fetch_failure: Some(FetchFailure {
                    worker: w.clone(),
                    stage: StageId(0),
                    map_partition: 0,
                }),
            }
        } else {
            continue;
        };
        pending.extend(launches(&sim.finish(&w, &t, outcome)));
    }
    let j = sim.s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Failed);
    let error = j.error.clone().unwrap();
    assert!(
        error.contains("could not fetch its input 16 times") && error.contains("refused"),
        "{error}"
    );
    // Counted: 16 fetch failures, all but the last retried; no other reason.
    let m = sim.s.metrics();
    assert_eq!(m.failures(FailureReason::FetchFailed), 16);
    assert_eq!(m.retries(FailureReason::FetchFailed), 15);
    assert_eq!(m.failures(FailureReason::TaskError), 0);
}

#[test]
fn a_success_with_the_wrong_number_of_buckets_is_a_failure() {
    let (mut sim, job, _, first) = setup(1, 1);
    let (w, t) = &first[0];
    let bogus = TaskOutcome::Success {
        bucket_bytes: vec![1; 1_000],
        rows_out: 1,
        bytes_out: 1,
        elapsed_ms: 1,
        spilled_bytes: 0,
    };
    sim.finish(w, t, bogus);
    let task = &sim.s.job(&job).unwrap().stages[0].tasks[t.attempt.partition as usize];
    assert!(!task.is_done());
    assert_eq!(task.failures, 1);
}

#[test]
fn retryable_failures_retry_on_another_worker_then_fail_the_job() {
    let (mut sim, job, _, first) = setup(2, 4);
    let (w, t) = first[0].clone();
    let retry = launches(&sim.finish(&w, &t, failure(true)));
    assert_eq!(retry.len(), 1);
    assert_ne!(retry[0].0, w, "retried on the other worker");
    let mut current = retry[0].clone();
    for _ in 0..2 {
        current = launches(&sim.finish(&current.0, &current.1, failure(true)))[0].clone();
    }
    let actions = sim.finish(&current.0, &current.1, failure(true));
    let status = sim.s.job(&job).unwrap();
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.clone().unwrap();
    assert!(
        error.contains("boom at row 7") && error.contains("stage 0") && error.contains("attempt 4"),
        "{error}"
    );
    // The other running tasks are cancelled.
    assert!(actions.iter().any(|a| matches!(a, Action::Cancel { .. })));
    // Counted: four failures of the task's own, the first three retried.
    let m = sim.s.metrics();
    assert_eq!(m.failures(FailureReason::TaskError), 4);
    assert_eq!(m.retries(FailureReason::TaskError), 3);
}

#[test]
fn a_non_retryable_failure_fails_at_once() {
    let (mut sim, job, _, first) = setup(1, 4);
    sim.finish(&first[0].0, &first[0].1, failure(false));
    assert_eq!(sim.state(&job), JobState::Failed);
    let m = sim.s.metrics();
    assert_eq!(m.failures(FailureReason::NotRetryable), 1);
    assert_eq!(m.retries(FailureReason::NotRetryable), 0);
}

#[test]
fn a_job_without_workers_waits_with_a_reason() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let job = JobId("j".into());
    assert!(sim.submit(&job, word_count_plan(&[10])).is_empty());
    let j = sim.s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert!(j.waiting_reason.as_deref().unwrap().contains("worker"));
    assert_eq!(launches(&sim.register(&WorkerId("w".into()), 2)).len(), 1);
    assert_eq!(sim.state(&job), JobState::Running);
}

#[test]
fn a_job_waits_for_a_worker_until_the_worker_wait_timeout() {
    let mut sim = Sim::new(SchedulerConfig {
        worker_wait_timeout: Duration::from_secs(300),
        ..SchedulerConfig::default()
    });
    let job = JobId("j".into());
    sim.submit(&job, word_count_plan(&[10]));
    sim.advance(Duration::from_secs(299));
    sim.tick();
    assert_eq!(sim.state(&job), JobState::Queued);
    sim.advance(Duration::from_secs(1));
    sim.tick();
    let j = sim.s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Failed);
    let error = j.error.clone().unwrap();
    assert!(
        error.contains("no worker that can run this job registered within 300 s"),
        "{error}"
    );
}

#[test]
fn a_draining_worker_gets_no_new_tasks() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let ids = worker_ids(2);
    sim.register(&ids[0], 4);
    sim.register(&ids[1], 4);
    assert_eq!(
        sim.heartbeat(&ids[0], true),
        (true, true),
        "nothing needs it"
    );
    assert!(sim.s.workers().get(&ids[0]).unwrap().draining);
    let first = launches(&sim.submit(&JobId("j".into()), word_count_plan(&[10, 10, 10])));
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|(w, _)| *w == ids[1]));
}

#[test]
fn a_draining_worker_stays_while_its_tasks_run_or_its_results_are_unfetched() {
    let (mut sim, _, ids, _) = setup(1, 8);
    assert_eq!(sim.heartbeat(&ids[0], true), (true, false), "its tasks run");
    let (mut sim, job, ids, first) = setup(1, 8);
    run_to_completion(&mut sim, first);
    assert_eq!(sim.state(&job), JobState::Succeeded);
    assert_eq!(
        sim.heartbeat(&ids[0], true),
        (true, false),
        "it holds the unfetched results"
    );
    let released = sim.send(Event::ResultsReleased { job: job.clone() });
    assert!(matches!(released.reply, Reply::Released(Ok(()))));
    assert!(released.actions.iter().any(|a| matches!(a,
        Action::RemoveJobData { worker, keep, delay, .. }
            if *worker == ids[0] && keep.is_empty() && delay.is_zero())));
    assert_eq!(sim.heartbeat(&ids[0], true), (true, true));
    // Released, it left: not lost when its heartbeats stop, and forgotten after the
    // retention; a late heartbeat does not bring it back.
    assert_eq!(sim.liveness(&ids[0]), Liveness::Left);
    assert_eq!(sim.heartbeat(&ids[0], true), (false, false));
    let retention = SchedulerConfig::default().departed_worker_retention;
    sim.pass(Duration::from_secs(30));
    assert_eq!(sim.liveness(&ids[0]), Liveness::Left);
    sim.pass(retention);
    assert!(sim.s.workers().get(&ids[0]).is_none(), "forgotten");
}

#[test]
fn a_lost_worker_is_forgotten_after_the_retention_unless_it_returns() {
    let (mut sim, _, ids, _) = setup(2, 1);
    let retention = SchedulerConfig::default().departed_worker_retention;
    // w0 falls silent; w1 keeps heartbeating.
    for _ in 0..(retention.as_secs() + 10) {
        sim.advance(Duration::from_secs(1));
        sim.heartbeat(&ids[1], false);
        sim.tick();
    }
    assert!(sim.s.workers().get(&ids[0]).is_none(), "forgotten");
    assert_eq!(sim.liveness(&ids[1]), Liveness::Alive);
    // It comes back: registered afresh.
    sim.register(&ids[0], 1);
    assert_eq!(sim.liveness(&ids[0]), Liveness::Alive);
}

#[test]
fn unfetched_results_keep_a_draining_worker_only_for_the_result_retention() {
    let config = SchedulerConfig {
        result_retention: Duration::from_secs(60),
        ..SchedulerConfig::default()
    };
    let (mut sim, job, ids, first) = setup_with(config, 1, 8, &[10, 10, 10]);
    let mut pending = first;
    let mut last = vec![];
    while let Some((w, t)) = pending.pop() {
        last = sim.finish(&w, &t, success(&t));
        pending.extend(launches(&last));
    }
    assert_eq!(sim.state(&job), JobState::Succeeded);
    // Intermediate files go at once; the results after the retention.
    let final_stage = sim.s.job(&job).unwrap().final_stage().unwrap().id;
    assert!(last.iter().any(|a| matches!(a,
        Action::RemoveJobData { keep, delay, .. } if *keep == vec![final_stage] && delay.is_zero())));
    assert!(last.iter().any(|a| matches!(a,
        Action::RemoveJobData { keep, delay, .. }
            if keep.is_empty() && *delay == Duration::from_secs(60))));
    for _ in 0..59 {
        sim.advance(Duration::from_secs(1));
        assert_eq!(sim.heartbeat(&ids[0], true), (true, false));
        sim.tick();
    }
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.heartbeat(&ids[0], true), (true, true));
}

#[test]
fn cancelling_a_job_stops_its_attempts_and_removes_its_files() {
    let (mut sim, job, ids, first) = setup(2, 4);
    let outcome = sim.send(Event::JobCancelled { job: job.clone() });
    assert!(matches!(outcome.reply, Reply::Cancelled(Ok(true))));
    assert_eq!(sim.state(&job), JobState::Cancelled);
    let mut cancelled: Vec<TaskAttempt> = outcome
        .actions
        .iter()
        .flat_map(|a| match a {
            Action::Cancel { attempts, .. } => attempts.clone(),
            _ => vec![],
        })
        .collect();
    cancelled.sort_by_key(|a| a.partition);
    let mut launched: Vec<TaskAttempt> = first.iter().map(|(_, t)| t.attempt.clone()).collect();
    launched.sort_by_key(|a| a.partition);
    assert_eq!(cancelled, launched);
    let m = sim.s.metrics();
    assert_eq!(
        m.cancellations(CancelReason::JobEnded),
        launched.len() as u64
    );
    assert_eq!(m.jobs_ended(JobState::Cancelled), 1);
    for w in &ids {
        assert!(outcome.actions.iter().any(|a| matches!(a,
            Action::RemoveJobData { worker, .. } if worker == w)));
    }
    // Cancelling again: it had already finished. An unknown job: an error.
    assert!(matches!(
        sim.send(Event::JobCancelled { job: job.clone() }).reply,
        Reply::Cancelled(Ok(false))
    ));
    assert!(matches!(
        sim.send(Event::JobCancelled {
            job: JobId("other".into())
        })
        .reply,
        Reply::Cancelled(Err(_))
    ));
    assert!(matches!(
        sim.send(Event::ResultsReleased {
            job: JobId("other".into())
        })
        .reply,
        Reply::Released(Err(_))
    ));
}

#[test]
fn an_invalid_plan_is_refused_at_submission() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let plan = PlanNode::Filter {
        input: Box::new(word_count_plan(&[10])),
        predicate: quiver_plan::Expr::Column("no such column".into()),
    };
    let outcome = sim.send(Event::JobSubmitted {
        job: JobId("j".into()),
        name: "bad".into(),
        plan,
        sink: Sink::Collect,
        options: Default::default(),
        storage_options: Default::default(),
    });
    assert!(matches!(outcome.reply, Reply::Submitted(Err(_))));
    assert!(sim.s.job(&JobId("j".into())).is_none());
}

#[test]
fn only_expected_successes_count_as_completed_tasks() {
    let (mut sim, _, ids, first) = setup(1, 8);
    let (w, t) = &first[0];
    let stale = TaskAttempt {
        attempt: 7,
        ..t.attempt.clone()
    };
    let (_, expected) = sim.report(w, &stale, success(t));
    assert!(!expected);
    assert_eq!(sim.s.workers().get(&ids[0]).unwrap().tasks_completed, 0);
    let (_, expected) = sim.report(w, &t.attempt, success(t));
    assert!(expected);
    assert_eq!(sim.s.workers().get(&ids[0]).unwrap().tasks_completed, 1);
}

/// What a registering worker is told to keep: unfinished jobs, and succeeded collect jobs until
/// their results are released.
#[test]
fn live_jobs_are_the_unfinished_ones_and_unfetched_results() {
    let (mut sim, job, _, first) = setup(1, 8);
    assert_eq!(sim.s.live_jobs(), vec![job.clone()], "running");
    run_to_completion(&mut sim, first);
    assert_eq!(sim.state(&job), JobState::Succeeded);
    assert_eq!(sim.s.live_jobs(), vec![job.clone()], "unfetched results");
    sim.send(Event::ResultsReleased { job: job.clone() });
    assert!(sim.s.live_jobs().is_empty(), "released");
}

#[test]
fn attempt_histories_record_lost_failed_and_cancelled_attempts_with_their_times() {
    use quiver_coordinator::attempt_history::AttemptOutcome;
    let (mut sim, job, ids, first) = setup(2, 4);
    let started = sim.now;
    // w1 fails one of its attempts (retried); w0 falls silent and is lost.
    let (fw, ft) = first.iter().find(|(w, _)| *w == ids[1]).unwrap().clone();
    sim.advance(Duration::from_millis(500));
    let failed_at = sim.now;
    let retried = launches(&sim.finish(&fw, &ft, failure(true)));
    let mut lost_at = None;
    for _ in 0..6 {
        sim.advance(Duration::from_secs(1));
        sim.heartbeat(&ids[1], false);
        sim.tick();
        if lost_at.is_none() && sim.liveness(&ids[0]) == Liveness::Lost {
            lost_at = Some(sim.now);
        }
    }
    let lost_at = lost_at.expect("w0 is lost after 5 s of silence");
    sim.advance(Duration::from_secs(1));
    let cancelled_at = sim.now;
    sim.send(Event::JobCancelled { job: job.clone() });

    let stage = &sim.s.job(&job).unwrap().stages[0];
    for (w, t) in &first {
        let history = stage.tasks[t.attempt.partition as usize].history.records();
        let first_record = &history[0];
        assert_eq!(
            (
                &first_record.worker,
                first_record.attempt,
                first_record.started
            ),
            (w, t.attempt.attempt, started)
        );
        let (outcome, ended) = if *w == ids[0] {
            (AttemptOutcome::Lost, lost_at)
        } else if t.attempt == ft.attempt {
            (AttemptOutcome::Failed("boom at row 7".into()), failed_at)
        } else {
            (AttemptOutcome::Cancelled, cancelled_at)
        };
        assert_eq!(first_record.outcome, outcome, "{history:?}");
        assert!(
            first_record
                .finished
                .is_some_and(|f| f.since(ended).is_zero() && ended.since(f).is_zero())
        );
        // Each retry started when the attempt before it ended, and ended lost with w0 (where
        // the failed task was retried, away from the worker it failed on) or cancelled with
        // the job on w1.
        for pair in history.windows(2) {
            let (before, later) = (&pair[0], &pair[1]);
            assert_eq!(Some(later.started), before.finished, "{history:?}");
            let (outcome, ended) = if later.worker == ids[0] {
                (AttemptOutcome::Lost, lost_at)
            } else {
                (AttemptOutcome::Cancelled, cancelled_at)
            };
            assert_eq!(later.outcome, outcome, "{history:?}");
            assert_eq!(later.finished, Some(ended), "{history:?}");
        }
        assert_eq!(history.last().unwrap().worker, ids[1], "{history:?}");
    }
    assert!(!retried.is_empty());
}
