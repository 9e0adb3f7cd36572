//! The scheduler's policies on a virtual clock: speculation of stragglers, exclusion of
//! failing workers, the bound on job history, jobs resumed after a restart, and the grace a
//! paused coordinator gives its workers. (The job and worker life cycle is in `scheduler.rs`,
//! whose `Sim` these tests drive too.)

use std::time::Duration;

use quiver_coordinator::event::{Event, JobRecord};
use quiver_coordinator::job::{ATTEMPTS_PER_INCARNATION, JobState};
use quiver_coordinator::scheduler::{Action, Reply, SchedulerConfig};
use quiver_coordinator::scheduler_metrics::CancelReason;
use quiver_coordinator::worker_registry::Liveness;
use quiver_plan::{JobId, Sink, TaskAttempt, TaskDefinition, WorkerId};

use crate::scheduler::*;
use crate::stage_planner::word_count_plan;

/// Two workers of 4 slots, a job of 4 map tasks all running; three finish after `elapsed_ms`
/// (as they report), the fourth straggles.
fn speculation_setup(
    config: SchedulerConfig,
    elapsed_ms: u64,
) -> (Sim, Vec<(WorkerId, TaskDefinition)>) {
    let (mut sim, _, _, first) = setup_with(config, 2, 4, &[10, 10, 10, 10]);
    assert_eq!(first.len(), 4);
    for (w, t) in &first[..3] {
        let actions = sim.finish(w, t, success_in(t, elapsed_ms));
        assert!(map_launches(&actions).is_empty(), "no time has passed");
    }
    (sim, first)
}

fn eager_speculation(speculation: bool) -> SchedulerConfig {
    SchedulerConfig {
        speculation,
        speculation_min_runtime: Duration::ZERO,
        speculation_quantile: 0.5,
        ..SchedulerConfig::default()
    }
}

#[test]
fn a_straggler_gets_one_backup_elsewhere_and_the_first_to_finish_wins() {
    let (mut sim, first) = speculation_setup(eager_speculation(true), 1);
    sim.advance(Duration::from_millis(10));
    let (slow_worker, slow) = first[3].clone();
    let backups = map_launches(&sim.tick());
    assert_eq!(backups.len(), 1);
    let (backup_worker, backup) = backups[0].clone();
    assert_eq!(backup.attempt.partition, slow.attempt.partition);
    assert_eq!(backup.attempt.attempt, slow.attempt.attempt + 1);
    assert_ne!(
        backup_worker, slow_worker,
        "the backup runs on another worker"
    );
    assert!(map_launches(&sim.tick()).is_empty(), "one backup per task");
    assert!(
        sim.s.is_current(&slow.attempt, &slow_worker)
            && sim.s.is_current(&backup.attempt, &backup_worker)
    );

    // The backup wins: the slow attempt is cancelled and its late result ignored.
    let actions = sim.finish(&backup_worker, &backup, success(&backup));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Cancel { attempts, .. } if attempts == &vec![slow.attempt.clone()])));
    assert!(!sim.s.is_current(&slow.attempt, &slow_worker));
    let (actions, expected) = sim.report(&slow_worker, &slow.attempt, success(&slow));
    assert!(actions.is_empty() && !expected);
    // Counted: one backup, one loser stopped, and the late result not as a success.
    let m = sim.s.metrics();
    assert_eq!(m.speculative_attempts(), 1);
    assert_eq!(m.cancellations(CancelReason::LostRace), 1);
    assert_eq!(m.succeeded_attempts(), 4);
}

#[test]
fn when_the_primary_wins_the_backup_is_cancelled() {
    let (mut sim, first) = speculation_setup(eager_speculation(true), 1);
    sim.advance(Duration::from_millis(10));
    let (slow_worker, slow) = first[3].clone();
    let (backup_worker, backup) = map_launches(&sim.tick())[0].clone();
    let actions = sim.finish(&slow_worker, &slow, success(&slow));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Cancel { attempts, .. } if attempts == &vec![backup.attempt.clone()])));
    assert!(!sim.s.is_current(&backup.attempt, &backup_worker));
}

#[test]
fn a_failed_backup_leaves_the_primary_running() {
    let (mut sim, first) = speculation_setup(eager_speculation(true), 1);
    sim.advance(Duration::from_millis(10));
    let (slow_worker, slow) = first[3].clone();
    let (backup_worker, backup) = map_launches(&sim.tick())[0].clone();
    sim.finish(&backup_worker, &backup, failure(true));
    assert!(sim.s.is_current(&slow.attempt, &slow_worker));
    assert!(!sim.s.is_current(&backup.attempt, &backup_worker));
}

#[test]
fn speculation_can_be_turned_off() {
    let (mut sim, _) = speculation_setup(eager_speculation(false), 1);
    sim.advance(Duration::from_secs(60));
    assert!(map_launches(&sim.tick()).is_empty());
}

#[test]
fn a_task_is_slow_past_the_multiple_of_the_median_and_the_minimum_runtime() {
    let config = SchedulerConfig {
        speculation_quantile: 0.5,
        speculation_multiplier: 1.5,
        speculation_min_runtime: Duration::from_secs(1),
        ..SchedulerConfig::default()
    };
    // Finished tasks took 2 s: slow after 3 s.
    let (mut sim, _) = speculation_setup(config.clone(), 2_000);
    sim.advance(Duration::from_millis(3_000));
    assert!(map_launches(&sim.tick()).is_empty(), "3 s is not past 3 s");
    sim.advance(Duration::from_millis(1));
    assert_eq!(map_launches(&sim.tick()).len(), 1);
    // Finished tasks took 10 ms: 15 ms is less than the minimum, so slow after 1 s.
    let (mut sim, _) = speculation_setup(config, 10);
    sim.advance(Duration::from_millis(1_000));
    assert!(map_launches(&sim.tick()).is_empty());
    sim.advance(Duration::from_millis(1));
    assert_eq!(map_launches(&sim.tick()).len(), 1);
}

#[test]
fn a_worker_that_keeps_failing_is_excluded_for_the_exclusion_period() {
    let config = SchedulerConfig {
        exclude_after_failures: 2,
        exclusion_period: Duration::from_secs(60),
        ..SchedulerConfig::default()
    };
    let (mut sim, job, ids, mut pending) = setup_with(config, 2, 1, &[10; 6]);
    // Attempts fail on w0 (each is retried, so the job goes on) until it is excluded.
    let mut rounds = 0;
    while !sim.s.is_excluded(&ids[0], sim.now) {
        rounds += 1;
        assert!(rounds < 50, "w0 is never excluded");
        let (w, t) = pending.remove(0);
        let outcome = if w == ids[0] {
            failure(true)
        } else {
            success(&t)
        };
        pending.extend(launches(&sim.finish(&w, &t, outcome)));
    }
    assert!(!sim.s.is_excluded(&ids[1], sim.now));
    // From now on only w1 gets tasks (an attempt launched on w0 before fails too).
    while let Some((w, t)) = pending.pop() {
        let outcome = if w == ids[0] {
            failure(true)
        } else {
            success(&t)
        };
        let launched = launches(&sim.finish(&w, &t, outcome));
        assert!(
            launched.iter().all(|(w, _)| *w == ids[1]),
            "an excluded worker got a task"
        );
        pending.extend(launched);
    }
    assert_eq!(sim.state(&job), JobState::Succeeded);
    // The exclusion ends after its period.
    sim.advance(Duration::from_secs(59));
    assert!(sim.s.is_excluded(&ids[0], sim.now));
    sim.advance(Duration::from_secs(1));
    assert!(!sim.s.is_excluded(&ids[0], sim.now));
}

#[test]
fn failures_spread_over_more_than_the_window_do_not_exclude() {
    let config = SchedulerConfig {
        exclude_after_failures: 2,
        exclusion_window: Duration::from_secs(60),
        ..SchedulerConfig::default()
    };
    let (mut sim, _, ids, first) = setup_with(config, 1, 4, &[10; 4]);
    sim.finish(&first[0].0, &first[0].1, failure(true));
    sim.advance(Duration::from_secs(30));
    sim.heartbeat(&ids[0], false);
    sim.advance(Duration::from_secs(30));
    sim.heartbeat(&ids[0], false);
    sim.finish(&first[1].0, &first[1].1, failure(true));
    assert!(!sim.s.is_excluded(&ids[0], sim.now), "60 s apart");
    sim.finish(&first[2].0, &first[2].1, failure(true));
    assert!(sim.s.is_excluded(&ids[0], sim.now), "two within 60 s");
}

#[test]
fn data_errors_do_not_count_against_the_worker() {
    let (mut sim, _, ids, first) = setup(1, 4);
    sim.finish(&first[0].0, &first[0].1, failure(false));
    assert!(!sim.s.is_excluded(&ids[0], sim.now));
}

#[test]
fn an_excluded_worker_still_gets_tasks_when_it_is_the_only_one() {
    let config = SchedulerConfig {
        exclude_after_failures: 1,
        ..SchedulerConfig::default()
    };
    let (mut sim, _, ids, first) = setup_with(config, 1, 1, &[10]);
    let w = &ids[0];
    let retry = launches(&sim.finish(w, &first[0].1, failure(true)));
    assert!(sim.s.is_excluded(w, sim.now));
    assert_eq!(
        retry.len(),
        1,
        "the job must not stall behind the exclusion"
    );
    assert_eq!(retry[0].0, *w);
}

/// Finished jobs are kept up to `job_history`; the oldest leaves first, and scheduling only
/// looks at unfinished jobs.
#[test]
fn finished_jobs_beyond_the_history_bound_are_forgotten_oldest_first() {
    let mut sim = Sim::new(SchedulerConfig {
        job_history: 1000,
        ..SchedulerConfig::default()
    });
    for i in 0..1001 {
        let job = JobId(format!("j{i}"));
        sim.submit(&job, word_count_plan(&[10]));
        let out = sim.send(Event::JobCancelled { job: job.clone() });
        assert!(matches!(out.reply, Reply::Cancelled(Ok(true))));
        assert_eq!(out.records, vec![JobRecord::Finished(job)]);
        sim.advance(Duration::from_millis(1));
    }
    assert!(sim.s.job(&JobId("j0".into())).is_none());
    assert!(sim.s.job(&JobId("j1".into())).is_some());
    let listed: Vec<_> = sim.s.jobs().map(|j| j.id.0.clone()).collect();
    assert_eq!(listed.len(), 1000);
    assert_eq!(listed.first().map(String::as_str), Some("j1"));
    assert_eq!(listed.last().map(String::as_str), Some("j1000"));
    assert_eq!(sim.s.finished_jobs(), 1000);
    // A new job still runs as usual.
    let w = WorkerId("w".into());
    sim.register(&w, 2);
    let started = launches(&sim.submit(&JobId("new".into()), word_count_plan(&[10])));
    assert_eq!(started.len(), 1);
}

/// A job resumed after a restart runs from the start under its id, with attempt numbers apart
/// from its earlier run's.
#[test]
fn a_recovered_job_runs_again_with_attempts_of_its_own() {
    let mut sim = Sim::new(SchedulerConfig::default());
    let job = JobId("resumed".into());
    let out = sim.send(Event::JobRecovered {
        planned_for: None,
        job: job.clone(),
        name: "wc".into(),
        plan: word_count_plan(&[10]),
        sink: Sink::Collect,
        options: Default::default(),
        submitted_at_ms: 1234,
        incarnation: 2,
        commit: None,
        storage_locations: Default::default(),
    });
    assert!(matches!(out.reply, Reply::Recovered(Ok(()))));
    assert_eq!(out.records, vec![JobRecord::Submitted(job.clone())]);
    assert_eq!(sim.s.job(&job).map(|j| j.submitted.wall_ms), Some(1234));
    let w = WorkerId("w".into());
    let started = launches(&sim.register(&w, 1));
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].1.attempt.job, job);
    assert_eq!(started[0].1.attempt.attempt, 2 * ATTEMPTS_PER_INCARNATION);
    // A stale report of the earlier run's attempt 0 is not taken for this run's.
    let stale = TaskAttempt {
        attempt: 0,
        ..started[0].1.attempt.clone()
    };
    assert!(!sim.report(&w, &stale, success(&started[0].1)).1);
}

#[test]
fn a_paused_coordinator_gives_workers_a_full_timeout_instead_of_declaring_them_lost() {
    let (mut sim, job, ids, first) = setup(2, 4);
    // Both heartbeat for 3 s while the coordinator ticks every second.
    for _ in 0..3 {
        sim.advance(Duration::from_secs(1));
        sim.heartbeat(&ids[0], false);
        sim.heartbeat(&ids[1], false);
        sim.tick();
    }
    // The coordinator is stopped for 10 s (twice the 5 s timeout): no tick, no heartbeat in.
    sim.advance(Duration::from_secs(10));
    assert!(
        launches(&sim.tick()).is_empty(),
        "nothing re-run after the pause"
    );
    assert_eq!(sim.liveness(&ids[0]), Liveness::Alive);
    assert_eq!(sim.liveness(&ids[1]), Liveness::Alive);
    // w1 heartbeats again; w0 really died during the pause. It is found one timeout later.
    for _ in 0..5 {
        sim.advance(Duration::from_secs(1));
        sim.heartbeat(&ids[1], false);
        sim.tick();
        assert_eq!(sim.liveness(&ids[0]), Liveness::Alive, "within its grace");
    }
    sim.advance(Duration::from_millis(1));
    sim.heartbeat(&ids[1], false);
    let again = launches(&sim.tick());
    assert_eq!(sim.liveness(&ids[0]), Liveness::Lost);
    assert_eq!(sim.liveness(&ids[1]), Liveness::Alive);
    let on_w0 = first.iter().filter(|(w, _)| *w == ids[0]).count();
    assert_eq!(again.len(), on_w0, "w0's tasks run again, on w1");
    assert!(again.iter().all(|(w, _)| *w == ids[1]));
    assert_eq!(sim.state(&job), JobState::Running);
}
