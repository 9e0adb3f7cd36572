//! Adaptive execution on a virtual clock: a reduce stage's partitions are coalesced from the
//! bucket sizes its map tasks report, every bucket is read by exactly one task, and the
//! decision survives a coordinator restart through the job log's start record.

use quiver_coordinator::event::{Event, HeldOutput, JobRecord};
use quiver_coordinator::job::{JobState, TaskState};
use quiver_coordinator::scheduler::SchedulerConfig;
use quiver_plan::{JobId, StageId, TaskAttempt, TaskDefinition, WorkerId};

use crate::resumed_jobs::{register_holding, restarted, success_with};
use crate::scheduler::*;

const MIB: u64 = 1 << 20;

/// Runs the 3 map tasks of a word count on `workers` workers of `slots` slots under `config`,
/// each reporting `buckets` (bytes per reduce partition); returns the reduce tasks launched
/// and whether a start record was asked for on the way (the decision is logged with it).
fn reduces_after_maps(
    config: SchedulerConfig,
    workers: usize,
    slots: u32,
    buckets: &[u64],
) -> (Sim, JobId, Vec<(WorkerId, TaskDefinition)>, bool) {
    let (mut sim, job, _, mut pending) = setup_with(config, workers, slots, &[10, 10, 10]);
    let (mut reduces, mut logged, mut maps) = (vec![], false, 0);
    while let Some((w, t)) = pending.pop() {
        if t.attempt.stage != StageId(0) {
            reduces.push((w, t));
            continue;
        }
        maps += 1;
        assert_eq!(t.output.buckets() as usize, buckets.len());
        let out = sim.send(Event::TaskFinished {
            worker: w.clone(),
            attempt: t.attempt.clone(),
            outcome: success_with(buckets.to_vec()),
        });
        logged |= out.records.contains(&JobRecord::Started(job.clone()));
        pending.extend(launches(&out.actions));
    }
    assert_eq!(maps, 3);
    (sim, job, reduces, logged)
}

/// Each launched reduce task's buckets, in partition order.
fn buckets_read(reduces: &[(WorkerId, TaskDefinition)]) -> Vec<(u32, std::ops::Range<u32>)> {
    let mut read: Vec<(u32, std::ops::Range<u32>)> = reduces
        .iter()
        .map(|(_, t)| (t.attempt.partition, t.read_buckets()))
        .collect();
    read.sort_by_key(|(p, _)| *p);
    read
}

#[test]
fn small_partitions_are_coalesced_around_a_large_one_and_every_bucket_is_read_once() {
    // 1 worker x 8 slots: 16 partitions. Partition 5 gets 3 x 40 MiB; the others 3 x 1 KiB.
    let buckets: Vec<u64> = (0..16)
        .map(|p| if p == 5 { 40 * MIB } else { 1024 })
        .collect();
    let (mut sim, job, reduces, logged) =
        reduces_after_maps(SchedulerConfig::default(), 1, 8, &buckets);
    assert!(logged, "the decision is logged with the job's start record");
    // By hand: 120 MiB over 8 slots is 15 MiB a task (below the 64 MiB target); the small
    // partitions before 5 make one task, 5 runs alone, the ten after it make one task.
    assert_eq!(
        buckets_read(&reduces),
        vec![(0, 0..5), (1, 5..6), (2, 6..16)]
    );
    let stage = &sim.s.job(&job).unwrap().stages[1];
    assert_eq!(stage.tasks.len(), 3);
    let said = stage.adaptation.as_ref().unwrap().describe();
    assert!(
        said.contains("coalesced 16 shuffle partitions into 3 tasks"),
        "{said}"
    );
    run_to_completion(&mut sim, reduces);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

#[test]
fn partitions_are_kept_when_each_is_large_or_coalescing_is_off() {
    // 4 partitions of 3 x 30 MiB on 2 slots: each above the 45 MiB a task would get.
    let (sim, job, reduces, _) =
        reduces_after_maps(SchedulerConfig::default(), 1, 2, &[30 * MIB; 4]);
    assert_eq!(
        buckets_read(&reduces),
        vec![(0, 0..1), (1, 1..2)],
        "2 slots"
    );
    assert_eq!(sim.s.job(&job).unwrap().stages[1].tasks.len(), 4);
    // Coalescing off: tiny partitions stay as planned, and the stage is still decided (kept).
    let (sim, job, reduces, logged) = reduces_after_maps(no_coalescing(), 1, 2, &[1; 4]);
    assert!(logged);
    assert_eq!(buckets_read(&reduces), vec![(0, 0..1), (1, 1..2)]);
    let stage = &sim.s.job(&job).unwrap().stages[1];
    assert_eq!(stage.tasks.len(), 4);
    assert!(stage.adaptation.as_ref().unwrap().task_starts.is_empty());
}

/// 2 workers x 1 slot, 4 partitions of 3 MiB: two tasks (0..2, 2..4). The first finishes;
/// the coordinator restarts; its output is adopted as the task that reads 0..2, and only the
/// other runs again, still reading 2..4.
#[test]
fn a_resumed_job_cuts_its_stage_as_logged_and_adopts_the_coalesced_output() {
    let (mut sim, job, reduces, _) =
        reduces_after_maps(SchedulerConfig::default(), 2, 1, &[MIB; 4]);
    assert_eq!(buckets_read(&reduces), vec![(0, 0..2), (1, 2..4)]);
    let (w, first) = reduces
        .iter()
        .find(|(_, t)| t.attempt.partition == 0)
        .unwrap();
    sim.finish(w, first, success_with(vec![3]));
    let state = sim.s.job(&job).unwrap();
    let planned = state.planned_for.clone().unwrap();
    assert_eq!(planned.adaptations.len(), 1);
    // What each worker holds: its map outputs and, for `w`, the finished reduce output.
    let mut held: Vec<(WorkerId, HeldOutput)> = vec![];
    for stage in &state.stages {
        for (p, task) in stage.tasks.iter().enumerate() {
            if let TaskState::Done {
                worker,
                attempt,
                bucket_bytes,
                ..
            } = &task.state
            {
                let attempt = TaskAttempt {
                    job: job.clone(),
                    stage: stage.id,
                    partition: p as u32,
                    attempt: *attempt,
                };
                held.push((
                    worker.clone(),
                    HeldOutput {
                        attempt,
                        bucket_bytes: bucket_bytes.clone(),
                        rows: 3,
                    },
                ));
            }
        }
    }
    assert_eq!(held.len(), 4, "3 map outputs and 1 reduce output");

    let resumed = |planned| {
        let mut sim = restarted(&job, Some(planned));
        let mut launched = vec![];
        for w in worker_ids(2) {
            let outputs = held.iter().filter(|(h, _)| *h == w).map(|(_, o)| o.clone());
            launched.extend(launches(&register_holding(&mut sim, &w, outputs.collect())));
        }
        (sim, launched)
    };
    // Restarted with the decision logged: the stage is cut as before, the output adopted.
    let (mut sim, launched) = resumed(planned.clone());
    assert_eq!(buckets_read(&launched), vec![(1, 2..4)], "{launched:?}");
    assert_eq!(launched[0].1.attempt.stage, StageId(1));
    run_to_completion(&mut sim, launched);
    assert_eq!(sim.state(&job), JobState::Succeeded);

    // Restarted from a log whose decision was taken by a later run than the listed output's
    // (the first run's decision never reached the disk): that output may be of another cut,
    // so it is not adopted, and both tasks run.
    let mut later = planned.clone();
    later.adaptations[0].decided_in = 1;
    let (_, launched) = resumed(later);
    assert_eq!(buckets_read(&launched), vec![(0, 0..2), (1, 2..4)]);

    // Restarted from a log that never got the decision: the listed reduce output may be of
    // another cut, so it is not adopted; the stage is decided again (by the restarted
    // coordinator, which does not coalesce) and runs whole.
    let mut undecided = planned;
    undecided.adaptations.clear();
    let (mut sim, launched) = resumed(undecided);
    assert_eq!(buckets_read(&launched), vec![(0, 0..1), (1, 1..2)]);
    let stage = &sim.s.job(&job).unwrap().stages[1];
    assert!(stage.tasks.iter().all(|t| !t.is_done()), "nothing adopted");
    run_to_completion(&mut sim, launched);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

/// A join the planner shuffles on both sides (its right side's 200 MiB file looks large) on
/// 1 worker x 2 slots: the right side runs first while the left side waits; the bytes the
/// right side reports decide the rest. Returns the launches after the right side finished,
/// each of its tasks reporting `right_buckets`.
fn join_after_its_right_side(
    right_buckets: u64,
) -> (Sim, JobId, Vec<(WorkerId, TaskDefinition)>, bool) {
    use crate::stage_planner::{join, lines};
    let mut sim = Sim::new(SchedulerConfig::default());
    let w = worker_ids(1).remove(0);
    sim.register(&w, 2);
    let job = JobId("join".into());
    let plan = join(
        lines(&[100 << 20], "a"),
        lines(&[200 << 20], "b"),
        quiver_plan::JoinType::Inner,
    );
    let mut pending = launches(&sim.submit(&job, plan));
    let planned = &sim.s.job(&job).unwrap().stages;
    assert_eq!(planned.len(), 3, "left, right, join");
    assert!(planned[2].join_candidate.is_some());
    let (mut after, mut logged) = (vec![], false);
    while let Some((w, t)) = pending.pop() {
        assert_eq!(
            t.attempt.stage,
            StageId(1),
            "only the right side runs first"
        );
        let out = sim.send(Event::TaskFinished {
            worker: w.clone(),
            attempt: t.attempt.clone(),
            outcome: success_with(vec![right_buckets; 4]),
        });
        logged |= out.records.contains(&JobRecord::Started(job.clone()));
        for (w, t) in launches(&out.actions) {
            if t.attempt.stage == StageId(1) {
                pending.push((w, t));
            } else {
                after.push((w, t));
            }
        }
    }
    (sim, job, after, logged)
}

#[test]
fn a_right_side_that_measures_small_is_broadcast_and_the_left_side_never_shuffled() {
    let (mut sim, job, after, logged) = join_after_its_right_side(1024);
    assert!(logged, "the decision is logged");
    let state = sim.s.job(&job).unwrap();
    let left_splits = state.stages[2].splits.clone();
    assert!(
        left_splits.len() > 1,
        "the join stage took over the left splits"
    );
    assert!(
        state.stages[0].tasks.is_empty(),
        "the left stage runs no task"
    );
    assert_eq!(state.stages[2].inputs, vec![StageId(1)]);
    let decided = state.stages[2].join_adaptation.as_ref().unwrap();
    assert!(decided.broadcast);
    assert!(
        decided
            .describe()
            .contains("broadcast the join's right side")
    );
    // Every launched task joins: reads its split, and all 4 buckets of the right side.
    assert_eq!(after.len(), 2, "2 slots");
    for (_, t) in &after {
        assert_eq!(t.attempt.stage, StageId(2));
        assert_eq!(t.splits, left_splits[t.attempt.partition as usize]);
        let reads = t.plan.stage_reads(t.attempt.partition);
        assert_eq!(reads, (0..4).map(|b| (StageId(1), b)).collect::<Vec<_>>());
    }
    let mut pending = after;
    while let Some((w, t)) = pending.pop() {
        assert_ne!(
            t.attempt.stage,
            StageId(0),
            "the left side is never shuffled"
        );
        pending.extend(launches(&sim.finish(&w, &t, success(&t))));
    }
    assert_eq!(sim.state(&job), JobState::Succeeded);
}

#[test]
fn a_right_side_that_measures_large_keeps_the_join_shuffled() {
    // 4 right tasks x 4 buckets x 1 MiB: 16 MiB, above the 10 MiB default threshold.
    let (mut sim, job, after, _) = join_after_its_right_side(MIB);
    let state = sim.s.job(&job).unwrap();
    assert!(!state.stages[2].join_adaptation.as_ref().unwrap().broadcast);
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|(_, t)| t.attempt.stage == StageId(0)),
        "now the left side runs, shuffled"
    );
    run_to_completion(&mut sim, after);
    assert_eq!(sim.state(&job), JobState::Succeeded);
    let join = &sim.s.job(&job).unwrap().stages[2];
    assert_eq!(join.inputs, vec![StageId(0), StageId(1)]);
}

/// A join kept shuffled whose left side put 30 times more rows in partition 1 than in the
/// others: partition 1's left map outputs are divided among several tasks, each of which
/// reads the whole of partition 1's right side. Every (left map output, bucket) pair is read
/// by exactly one task, and every right one by every task of its bucket.
#[test]
fn a_skewed_join_partition_is_split_by_its_left_side_and_every_row_still_meets_its_match() {
    use std::collections::HashMap;
    // The right side: 4 MiB a map task, too large to broadcast.
    let (mut sim, job, after, _) = join_after_its_right_side(MIB);
    // The left side's map tasks: partition 1 holds 30 MiB of each, the others 1 MiB.
    let mut pending = after;
    let mut joins = vec![];
    while let Some((w, t)) = pending.pop() {
        if t.attempt.stage == StageId(2) {
            joins.push((w, t));
            continue;
        }
        assert_eq!(t.attempt.stage, StageId(0));
        let out = sim.finish(&w, &t, success_with(vec![MIB, 30 * MIB, MIB, MIB]));
        pending.extend(launches(&out));
    }
    let state = sim.s.job(&job).unwrap();
    let (left_maps, right_maps) = (
        state.stages[0].tasks.len() as u32,
        state.stages[1].tasks.len() as u32,
    );
    assert!(left_maps > 2, "{left_maps} left map tasks");
    let join = &state.stages[2];
    let said = join.adaptation.as_ref().unwrap().describe();
    assert!(said.contains("skewed partition 1 split"), "{said}");
    // Every task of the join stage, launched or not: its definition as it would be launched.
    let all: Vec<TaskDefinition> = (0..join.tasks.len())
        .map(|p| join.task_definition(&job, p, 0, &state.shuffle_inputs(2), 1024))
        .collect();
    let mut read: HashMap<(u32, u32, u32), u32> = HashMap::new();
    for t in &all {
        for input in &t.inputs {
            for l in &input.locations {
                for b in t.read_buckets() {
                    *read.entry((input.stage.0, l.map_partition, b)).or_default() += 1;
                }
            }
        }
    }
    let split_tasks = all.iter().filter(|t| t.read_buckets() == (1..2)).count() as u32;
    assert!(split_tasks > 1, "partition 1 runs as {split_tasks} tasks");
    for b in 0..4 {
        for m in 0..left_maps {
            assert_eq!(read.get(&(0, m, b)), Some(&1), "left map {m}, bucket {b}");
        }
        let want = if b == 1 { split_tasks } else { 1 };
        for m in 0..right_maps {
            assert_eq!(
                read.get(&(1, m, b)),
                Some(&want),
                "right map {m}, bucket {b}"
            );
        }
    }
    run_to_completion(&mut sim, joins);
    assert_eq!(sim.state(&job), JobState::Succeeded);
}
