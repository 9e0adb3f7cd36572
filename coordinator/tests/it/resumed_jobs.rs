//! Jobs resumed after a coordinator restart, on a virtual clock: cut into the same stages as
//! before (the job log keeps the shape they were planned for), they adopt the map outputs the
//! workers list when they register again and recompute only the rest.
//!
//! The run before the restart is a real scheduler run; the "restart" is a second, empty
//! scheduler given what a job log would hold (the job, the shape it started with).

use std::collections::HashMap;
use std::time::Duration;

use quiver_coordinator::event::TaskOutcome;
use quiver_coordinator::event::{Event, HeldOutput, JobRecord};
use quiver_coordinator::job::{ATTEMPTS_PER_INCARNATION, JobState, PlannedFor, adoptable_stages};
use quiver_coordinator::scheduler::{Action, Reply, SchedulerConfig};
use quiver_plan::{JobId, Sink, StageId, TaskAttempt, TaskDefinition, WorkerId};

use crate::scheduler::*;
use crate::stage_planner::word_count_plan;

const FILES: [u64; 3] = [10, 10, 10];

/// The map outputs a finished map stage left, by worker: what each worker would list.
type Held = HashMap<WorkerId, Vec<HeldOutput>>;

/// A word count on two workers of one slot, run until its map stage is complete and its
/// reduce tasks are running; then the coordinator "dies". Returns what the job log holds of
/// the job's start, and the outputs each worker holds.
fn run_until_the_reduce_stage() -> (JobId, PlannedFor, Held) {
    run_until(0)
}

/// Like [`run_until_the_reduce_stage`], with `reduces` reduce tasks run too: all but the last
/// reported, the last one finishing while the coordinator is down (held, never reported).
fn run_until(reduces: usize) -> (JobId, PlannedFor, Held) {
    let (mut sim, job, _, first) = setup(2, 1);
    let mut pending = first;
    let mut held = Held::new();
    let mut reduced = 0;
    while let Some((w, t)) = pending.pop() {
        if t.attempt.stage != StageId(0) {
            if reduced == reduces {
                continue;
            }
            reduced += 1;
        }
        let outcome = success(&t);
        let TaskOutcome::Success { bucket_bytes, .. } = &outcome else {
            unreachable!()
        };
        held.entry(w.clone()).or_default().push(HeldOutput {
            attempt: t.attempt.clone(),
            bucket_bytes: bucket_bytes.clone(),
            rows: 3,
        });
        if t.attempt.stage != StageId(0) && reduced == reduces {
            continue;
        }
        pending.extend(launches(&sim.finish(&w, &t, outcome)));
    }
    assert_eq!(sim.state(&job), JobState::Running);
    assert_eq!(
        held.values().map(Vec::len).sum::<usize>(),
        FILES.len() + reduces
    );
    assert_eq!(held.len(), 2, "both workers ran map tasks: {held:?}");
    let planned = sim.s.job(&job).unwrap().planned_for.clone().unwrap();
    assert_eq!(planned.total_slots, 2);
    assert_eq!(planned.stage_tasks, [3, 4]);
    (job, planned, held)
}

/// A restarted scheduler holding `job` as the log would: resumed once, planned as `planned`.
pub(crate) fn restarted(job: &JobId, planned: Option<PlannedFor>) -> Sim {
    let mut sim = Sim::new(crate::scheduler::no_coalescing());
    let out = sim.send(Event::JobRecovered {
        job: job.clone(),
        name: "wc".into(),
        plan: word_count_plan(&FILES),
        sink: Sink::Collect,
        options: Default::default(),
        submitted_at_ms: 0,
        incarnation: 1,
        commit: None,
        storage_locations: Default::default(),
        planned_for: planned,
    });
    assert!(matches!(out.reply, Reply::Recovered(Ok(()))));
    sim
}

/// `worker` registers again, listing `outputs`: the actions.
pub(crate) fn register_holding(
    sim: &mut Sim,
    worker: &WorkerId,
    outputs: Vec<HeldOutput>,
) -> Vec<Action> {
    register_listing(sim, worker, outputs, vec![])
}

/// `worker` registers again, listing `outputs` and the attempts it runs: the actions.
fn register_listing(
    sim: &mut Sim,
    worker: &WorkerId,
    outputs: Vec<HeldOutput>,
    running: Vec<TaskAttempt>,
) -> Vec<Action> {
    let out = sim.send(Event::WorkerRegistered {
        worker: worker.clone(),
        address: format!("http://{}", worker.0),
        slots: 1,
        hostname: "host".into(),
        functions: vec![],
        held_outputs: outputs,
        running_attempts: running,
    });
    assert!(matches!(out.reply, Reply::Registered(Ok(()))));
    out.actions
}

/// A success with these bucket sizes (those of a held output, or others).
pub(crate) fn success_with(bucket_bytes: Vec<u64>) -> TaskOutcome {
    TaskOutcome::Success {
        bucket_bytes,
        rows_out: 3,
        bytes_out: 3,
        elapsed_ms: 1,
        spilled_bytes: 0,
    }
}

#[test]
fn a_resumed_job_adopts_the_outputs_workers_still_hold_and_recomputes_only_the_rest() {
    let (job, planned, mut held) = run_until_the_reduce_stage();
    let mut sim = restarted(&job, Some(planned));
    let ids = worker_ids(2);
    // w1 lost one of its outputs (say, its disk was cleaned); w0 lists all of its.
    let lost = held.get_mut(&ids[1]).unwrap().pop().unwrap();
    let kept: Vec<HeldOutput> = held.values().flatten().cloned().collect();
    let first = register_holding(&mut sim, &ids[0], held[&ids[0]].clone());
    assert!(
        launches(&first).is_empty(),
        "nothing runs within the grace while slots are missing"
    );
    // Both workers back: the grace ends, and only the output nobody listed is computed
    // again, by this run.
    let rerun = launches(&register_holding(&mut sim, &ids[1], held[&ids[1]].clone()));
    let state = sim.s.job(&job).unwrap();
    assert_eq!(state.state, JobState::Running);
    assert_eq!(
        state.stages[0].tasks.iter().filter(|t| t.is_done()).count(),
        kept.len()
    );
    assert_eq!(rerun.len(), 1, "{rerun:?}");
    let (w, t) = &rerun[0];
    assert_eq!(t.attempt.stage, StageId(0));
    assert_eq!(t.attempt.partition, lost.attempt.partition);
    assert_eq!(t.attempt.attempt, ATTEMPTS_PER_INCARNATION);

    // The reduce tasks read the adopted outputs where they are, and the recomputed one.
    let reduces = launches(&sim.finish(w, t, success(t)));
    assert!(!reduces.is_empty());
    let mut want: Vec<(u32, String)> = kept
        .iter()
        .map(|o| {
            let holder = held.iter().find(|(_, os)| os.contains(o)).unwrap().0;
            (o.attempt.partition, holder.0.clone())
        })
        .collect();
    want.push((t.attempt.partition, w.0.clone()));
    want.sort();
    for (_, reduce) in &reduces {
        let mut got: Vec<(u32, String)> = reduce.inputs[0]
            .locations
            .iter()
            .map(|l| (l.map_partition, l.worker.0.clone()))
            .collect();
        got.sort();
        assert_eq!(got, want);
    }

    // A late report of an adopted attempt (sent before the restart, retried after it) keeps
    // its output; one of the lost attempt is stale now.
    let adopted = &kept[0];
    let holder = held.iter().find(|(_, os)| os.contains(adopted)).unwrap().0;
    let late = adopted.attempt.clone();
    let late_report = sim.report(holder, &late, success_with(adopted.bucket_bytes.clone()));
    assert!(late_report.1, "the adopted output is kept");
    let stale = lost.attempt.clone();
    assert!(
        !sim.report(&ids[1], &stale, success(t)).1,
        "recomputed: stale"
    );

    run_to_completion(&mut sim, reduces);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

/// A worker that does not come back within the grace: what it held is computed again.
#[test]
fn a_resumed_job_waits_out_its_grace_for_workers_that_do_not_come_back() {
    let (job, planned, held) = run_until_the_reduce_stage();
    let mut sim = restarted(&job, Some(planned));
    let ids = worker_ids(2);
    assert!(launches(&register_holding(&mut sim, &ids[0], held[&ids[0]].clone())).is_empty());
    let grace = SchedulerConfig::default().resume_grace;
    let early = launches(&sim.pass(grace - Duration::from_secs(1)));
    assert!(early.is_empty(), "{early:?}");
    let rerun = launches(&sim.pass(Duration::from_secs(1)));
    // One slot back: one of w1's map outputs runs again now, the others after it.
    assert_eq!(rerun.len(), 1, "{rerun:?}");
    let lost: Vec<u32> = held[&ids[1]].iter().map(|o| o.attempt.partition).collect();
    assert!(lost.contains(&rerun[0].1.attempt.partition), "{rerun:?}");
    assert_eq!(rerun[0].0, ids[0]);
}

#[test]
fn a_resumed_job_logs_the_shape_it_keeps() {
    let (job, planned, _) = run_until_the_reduce_stage();
    let mut sim = restarted(&job, Some(planned.clone()));
    let out = sim.send(Event::WorkerRegistered {
        worker: WorkerId("w0".into()),
        address: "http://w0".into(),
        slots: 8,
        hostname: "host".into(),
        functions: vec![],
        held_outputs: vec![],
        running_attempts: vec![],
    });
    assert_eq!(out.records, vec![JobRecord::Started(job.clone())]);
    // Planned for the 2 slots of before, not the 8 of now.
    let kept = sim.s.job(&job).unwrap().planned_for.clone().unwrap();
    assert_eq!(kept, planned);
    assert_eq!(sim.s.job(&job).unwrap().stages[1].tasks.len(), 4);
}

/// Outputs that do not fit the resumed job are not adopted: its stages recompute them.
#[test]
fn outputs_that_do_not_fit_are_recomputed() {
    let (job, planned, held) = run_until_the_reduce_stage();
    let all: Vec<HeldOutput> = held.values().flatten().cloned().collect();
    let bent = |f: &dyn Fn(&mut HeldOutput)| -> Vec<HeldOutput> {
        all.iter()
            .cloned()
            .map(|mut o| {
                f(&mut o);
                o
            })
            .collect()
    };
    let cases: Vec<(&str, Vec<HeldOutput>, Option<PlannedFor>)> = vec![
        (
            "a wrong bucket count",
            bent(&|o| o.bucket_bytes.push(1)),
            Some(planned.clone()),
        ),
        (
            "an attempt of this run",
            bent(&|o| o.attempt.attempt += ATTEMPTS_PER_INCARNATION),
            Some(planned.clone()),
        ),
        (
            "an attempt of a run planned otherwise",
            all.clone(),
            Some(PlannedFor {
                since_incarnation: 1,
                ..planned.clone()
            }),
        ),
        (
            "a stage it does not have",
            bent(&|o| o.attempt.stage = StageId(7)),
            Some(planned.clone()),
        ),
        (
            "a partition it does not have",
            bent(&|o| o.attempt.partition += 100),
            Some(planned.clone()),
        ),
        (
            "another job",
            bent(&|o| o.attempt.job = JobId("other".into())),
            Some(planned.clone()),
        ),
        (
            "stages that differ from the logged ones",
            all.clone(),
            Some(PlannedFor {
                stage_digests: vec![1, 2],
                ..planned.clone()
            }),
        ),
        (
            "a logged shape its stages no longer have",
            all.clone(),
            Some(PlannedFor {
                stage_tasks: vec![3, 5],
                ..planned.clone()
            }),
        ),
        ("no logged shape", all.clone(), None),
    ];
    for (case, outputs, planned) in cases {
        let mut sim = restarted(&job, planned);
        let w = WorkerId("w0".into());
        let mut started = launches(&register_holding(&mut sim, &w, outputs));
        started.extend(launches(&sim.pass(Duration::from_secs(5))));
        let maps: Vec<&TaskDefinition> = started
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.attempt.stage == StageId(0))
            .collect();
        // One slot: the first map task runs, the others wait; none was adopted.
        assert_eq!(maps.len(), 1, "{case}: {started:?}");
        let job = sim.s.job(&job).unwrap();
        assert!(
            job.stages[0].tasks.iter().all(|t| !t.is_done()),
            "{case}: nothing adopted"
        );
    }
}

/// Every result of a collect job survived (the last one finished while the coordinator was
/// down): the resumed job succeeds without running anything, not even its map stage.
#[test]
fn a_job_whose_results_all_survived_succeeds_without_running_anything() {
    let (job, planned, held) = run_until(4);
    let mut sim = restarted(&job, Some(planned));
    let ids = worker_ids(2);
    let mut launched = launches(&register_holding(&mut sim, &ids[0], held[&ids[0]].clone()));
    launched.extend(launches(&register_holding(
        &mut sim,
        &ids[1],
        held[&ids[1]].clone(),
    )));
    launched.extend(launches(&sim.pass(Duration::from_secs(5))));
    assert!(launched.is_empty(), "{launched:?}");
    assert_eq!(sim.state(&job), JobState::Succeeded);
    let state = sim.s.job(&job).unwrap();
    assert!(state.stages[1].tasks.iter().all(|t| t.is_done()));
}

/// A worker that lists nothing (say, it took its snapshot before its tasks ended) but reports
/// an attempt of the run before the restart late: the output is adopted and kept.
#[test]
fn a_late_report_of_an_earlier_run_is_adopted_for_a_pending_task() {
    let (job, planned, held) = run_until_the_reduce_stage();
    let mut sim = restarted(&job, Some(planned));
    let ids = worker_ids(2);
    assert!(launches(&register_holding(&mut sim, &ids[0], vec![])).is_empty());
    let late = &held[&ids[0]][0];
    let attempt = late.attempt.clone();
    let (_, kept) = sim.report(&ids[0], &attempt, success_with(late.bucket_bytes.clone()));
    assert!(kept, "adopted");
    let task = &sim.s.job(&job).unwrap().stages[0].tasks[late.attempt.partition as usize];
    assert!(task.is_done());
    // With the wrong bucket count it would have been dropped.
    let other = &held[&ids[0]].get(1).or(held[&ids[1]].first()).unwrap();
    let attempt = other.attempt.clone();
    let (_, kept) = sim.report(&ids[0], &attempt, success_with(vec![1]));
    assert!(!kept);
}

/// A stage whose rows depend on the order they come in — a sample, a range shuffle — and
/// everything after it are never adopted: recomputing part of them would mix two cuts of the
/// rows. Stages before it are. So is a stage adaptive execution could cut otherwise, only
/// once its cut is decided.
#[test]
fn only_stages_whose_rows_do_not_depend_on_their_order_are_adoptable() {
    let plan = |p| {
        quiver_coordinator::scheduler::plan_job(
            &JobId("j".into()),
            &p,
            &Sink::Collect,
            &Default::default(),
            2,
            quiver_plan::Limits::default(),
        )
        .unwrap()
    };
    let sorted = quiver_plan::PlanNode::Sort {
        input: Box::new(word_count_plan(&FILES)),
        order: vec![quiver_plan::sort::desc(quiver_plan::expr::col("count"))],
        limit: None,
    };
    let stages = plan(sorted);
    assert_eq!(stages.len(), 4);
    assert_eq!(adoptable_stages(&stages), [true, false, false, false]);
    // The reduce stage only once adaptive execution decided how it is cut.
    let mut word_count = plan(word_count_plan(&FILES));
    assert_eq!(adoptable_stages(&word_count), [true, false]);
    let kept = quiver_coordinator::adaptive::StageAdaptation {
        stage: StageId(1),
        task_starts: vec![],
        task_map_starts: vec![],
        split_side: None,
        planned_partitions: 4,
        measured_bytes: 0,
        decided_in: 0,
    };
    assert!(quiver_coordinator::adaptive::apply(
        &mut word_count[1],
        &kept,
        0
    ));
    assert_eq!(adoptable_stages(&word_count), [true, true]);
    // A record that would cut the scan stage (a corrupt log, another build) is not applied.
    let scan_tasks = word_count[0].tasks.len() as u32;
    let cut_scan = quiver_coordinator::adaptive::StageAdaptation {
        stage: StageId(0),
        task_starts: vec![0],
        planned_partitions: scan_tasks,
        ..kept
    };
    assert!(!quiver_coordinator::adaptive::apply(
        &mut word_count[0],
        &cut_scan,
        0
    ));
    assert_eq!(word_count[0].tasks.len() as u32, scan_tasks);
}

/// A map attempt still running on a worker when the coordinator died is taken as the resumed
/// job's running attempt when that worker lists it: nothing launches it again, and its report
/// (after the restart) completes the task.
#[test]
fn an_attempt_still_running_at_the_restart_is_awaited_not_launched_again() {
    let (job, planned, mut held) = run_until_the_reduce_stage();
    let mut sim = restarted(&job, Some(planned));
    let ids = worker_ids(2);
    // w1's last map output was not written yet: its attempt still runs.
    let running = held.get_mut(&ids[1]).unwrap().pop().unwrap();
    let attempt = running.attempt.clone();
    assert!(launches(&register_holding(&mut sim, &ids[0], held[&ids[0]].clone())).is_empty());
    let mut launched = launches(&register_listing(
        &mut sim,
        &ids[1],
        held[&ids[1]].clone(),
        vec![attempt.clone()],
    ));
    launched.extend(launches(&sim.pass(Duration::from_secs(5))));
    assert!(
        launched.is_empty(),
        "the map stage waits for the running attempt: {launched:?}"
    );
    // Its report is the one awaited; the reduce stage starts.
    let (reduces, expected) = sim.report(
        &ids[1],
        &attempt,
        success_with(running.bucket_bytes.clone()),
    );
    assert!(expected);
    let reduces = launches(&reduces);
    assert!(!reduces.is_empty());
    assert!(reduces.iter().all(|(_, t)| t.attempt.stage == StageId(1)));
    run_to_completion(&mut sim, reduces);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

/// An attempt adopted as running that then fails — say the old coordinator had cancelled it —
/// runs again without counting against the task; a listed running attempt of a stage that
/// reads a shuffle is not adopted (its read grants are the old coordinator's).
#[test]
fn an_adopted_attempt_that_fails_runs_again_and_reduce_attempts_are_not_adopted() {
    let (job, planned, mut held) = run_until_the_reduce_stage();
    let mut sim = restarted(&job, Some(planned));
    let ids = worker_ids(2);
    let running = held.get_mut(&ids[1]).unwrap().pop().unwrap();
    let map_attempt = running.attempt.clone();
    let reduce_attempt = TaskAttempt {
        job: job.clone(),
        stage: StageId(1),
        partition: 0,
        attempt: 0,
    };
    register_holding(&mut sim, &ids[0], held[&ids[0]].clone());
    let listed = register_listing(
        &mut sim,
        &ids[1],
        held[&ids[1]].clone(),
        vec![map_attempt.clone(), reduce_attempt.clone()],
    );
    assert!(launches(&listed).is_empty());
    let (actions, expected) = sim.report(
        &ids[1],
        &map_attempt,
        TaskOutcome::Failure {
            message: "task was cancelled".into(),
            retryable: false,
            fetch_failure: None,
        },
    );
    assert!(expected);
    assert_eq!(sim.state(&job), JobState::Running);
    let again = launches(&actions);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].1.attempt.partition, map_attempt.partition);
    assert_eq!(again[0].1.attempt.attempt, ATTEMPTS_PER_INCARNATION);
    let task = &sim.s.job(&job).unwrap().stages[0].tasks[map_attempt.partition as usize];
    assert_eq!(task.failures, 0);
    // The reduce stage then runs all its tasks itself.
    let (w, t) = &again[0];
    let reduces = launches(&sim.finish(w, t, success(t)));
    assert!(
        reduces
            .iter()
            .any(|(_, r)| r.attempt.partition == 0 && r.attempt.attempt == ATTEMPTS_PER_INCARNATION),
        "{reduces:?}"
    );
    run_to_completion(&mut sim, reduces);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}
