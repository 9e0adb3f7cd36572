use quiver_coordinator::job::JobState;
use quiver_coordinator::scheduler::{Action, Scheduler, SchedulerConfig, TaskOutcome};
use quiver_plan::{JobId, Sink, TaskAttempt, TaskDefinition, WorkerId};

use crate::stage_planner::word_count_plan;

fn launches(actions: &[Action]) -> Vec<(WorkerId, TaskDefinition)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { worker, task, .. } => Some((worker.clone(), (**task).clone())),
            _ => None,
        })
        .collect()
}

/// A successful result of `task`, with one size per bucket its stage writes.
fn success(task: &TaskDefinition) -> TaskOutcome {
    TaskOutcome::Success {
        bucket_bytes: vec![1; task.output.buckets() as usize],
        rows_out: 3,
        bytes_out: 3,
        elapsed_ms: 1,
        spilled_bytes: 0,
    }
}

fn failure(retryable: bool) -> TaskOutcome {
    TaskOutcome::Failure {
        message: "boom at row 7".into(),
        retryable,
        fetch_failure: None,
    }
}

fn setup(workers: usize, slots: u32) -> (Scheduler, JobId, Vec<WorkerId>) {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let ids: Vec<WorkerId> = (0..workers).map(|i| WorkerId(format!("w{i}"))).collect();
    for (i, w) in ids.iter().enumerate() {
        s.worker_registered(w.clone(), format!("http://w{i}"), slots);
    }
    let job = JobId("j".into());
    s.submit(
        job.clone(),
        "wc".into(),
        word_count_plan(&[10, 10, 10]),
        Sink::Collect,
        Default::default(),
    )
    .unwrap();
    (s, job, ids)
}

fn run_to_completion(s: &mut Scheduler, mut pending: Vec<(WorkerId, TaskDefinition)>) {
    let mut rounds = 0;
    while let Some((w, t)) = pending.pop() {
        let actions = s.task_finished(&t.attempt, &w, success(&t));
        pending.extend(launches(&actions));
        pending.extend(launches(&s.schedule()));
        rounds += 1;
        assert!(rounds < 1000);
    }
}

#[test]
fn a_job_runs_its_stages_in_order_within_the_slots() {
    let (mut s, job, _) = setup(2, 1);
    let first = launches(&s.schedule());
    // Two slots: two of the three map tasks start; no reduce task yet.
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|(_, t)| t.attempt.stage.0 == 0));
    assert_ne!(first[0].0, first[1].0, "spread over both workers");
    run_to_completion(&mut s, first);
    assert_eq!(s.job(&job).unwrap().state, JobState::Succeeded);
}

#[test]
fn reduce_tasks_get_every_map_output_location() {
    let (mut s, job, _) = setup(1, 8);
    let maps = launches(&s.schedule());
    assert_eq!(maps.len(), 3);
    let mut reduces = vec![];
    for (w, t) in &maps {
        reduces.extend(launches(&s.task_finished(&t.attempt, w, success(t))));
        reduces.extend(launches(&s.schedule()));
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
    assert_eq!(s.job(&job).unwrap().state, JobState::Running);
}

#[test]
fn a_lost_workers_tasks_run_elsewhere() {
    let (mut s, job, ids) = setup(2, 4);
    let first = launches(&s.schedule());
    assert_eq!(first.len(), 3);
    s.worker_lost(&ids[0]);
    let again = launches(&s.schedule());
    let lost_count = first.iter().filter(|(w, _)| *w == ids[0]).count();
    assert_eq!(again.len(), lost_count);
    assert!(
        again
            .iter()
            .all(|(w, t)| *w == ids[1] && t.attempt.attempt == 1)
    );
    // A late result from the lost worker's attempt is ignored.
    if let Some((w, t)) = first.iter().find(|(w, _)| *w == ids[0]) {
        assert!(s.task_finished(&t.attempt, w, success(t)).is_empty());
    }
    let survivors: Vec<_> = first
        .into_iter()
        .filter(|(w, _)| *w == ids[1])
        .chain(again)
        .collect();
    run_to_completion(&mut s, survivors);
    assert_eq!(s.job(&job).unwrap().state, JobState::Succeeded);
}

#[test]
fn a_task_whose_workers_keep_dying_fails_its_job_instead_of_killing_more() {
    let (mut s, job, ids) = setup(3, 1);
    let first = launches(&s.schedule());
    let (victim_worker, victim) = first[0].clone();
    // The first loss is forgiven: the task runs again, elsewhere.
    let actions = s.worker_lost(&victim_worker);
    assert!(actions.is_empty());
    s.worker_registered(WorkerId("w3".into()), "http://w3".into(), 1);
    let again = launches(&s.schedule());
    let (second_worker, retry) = again
        .iter()
        .find(|(_, t)| t.attempt.partition == victim.attempt.partition)
        .cloned()
        .expect("the task runs again");
    assert_ne!(second_worker, victim_worker);
    // Its second worker dies too: the job fails, naming the task, and nothing relaunches it.
    s.worker_lost(&second_worker);
    let j = s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Failed);
    let error = j.error.clone().unwrap();
    assert!(
        error.contains(&format!(
            "stage {} partition {}: worker lost while running it 2 times",
            retry.attempt.stage, retry.attempt.partition
        )),
        "{error}"
    );
    assert!(launches(&s.schedule()).is_empty());
    let _ = ids;
}

#[test]
fn a_fetch_that_keeps_failing_fails_the_job_instead_of_recomputing_forever() {
    let (mut s, job, _) = setup(1, 8);
    let maps = launches(&s.schedule());
    let mut reduces = vec![];
    for (w, t) in &maps {
        reduces.extend(launches(&s.task_finished(&t.attempt, w, success(t))));
        reduces.extend(launches(&s.schedule()));
    }
    let partition = reduces[0].1.attempt.partition;
    let mut rounds = 0;
    while s.job(&job).unwrap().state == JobState::Running {
        rounds += 1;
        assert!(rounds < 100, "the fetch failures never end the job");
        // The reducer says map partition 0 cannot be fetched; the map task is recomputed (it
        // succeeds) and the reducer tried again, which fails the same way.
        let actions = s.schedule();
        let mut pending = launches(&actions);
        pending.append(&mut reduces);
        for (w, t) in pending {
            if t.attempt.stage.0 == 0 {
                s.task_finished(&t.attempt, &w, success(&t));
            } else if t.attempt.partition == partition {
                let failure = TaskOutcome::Failure {
                    message: "refused".into(),
                    retryable: true,
                    fetch_failure: Some((w.clone(), quiver_plan::StageId(0), 0)),
                };
                s.task_finished(&t.attempt, &w, failure);
            }
        }
    }
    let j = s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Failed);
    let error = j.error.clone().unwrap();
    assert!(
        error.contains("could not fetch its input 16 times") && error.contains("refused"),
        "{error}"
    );
}

#[test]
fn a_success_with_the_wrong_number_of_buckets_is_a_failure() {
    let (mut s, job, _) = setup(1, 1);
    let first = launches(&s.schedule());
    let (w, t) = &first[0];
    let bogus = TaskOutcome::Success {
        bucket_bytes: vec![1; 1_000],
        rows_out: 1,
        bytes_out: 1,
        elapsed_ms: 1,
        spilled_bytes: 0,
    };
    s.task_finished(&t.attempt, w, bogus);
    let task = &s.job(&job).unwrap().stages[0].tasks[t.attempt.partition as usize];
    assert!(!task.is_done());
    assert_eq!(task.failures, 1);
}

#[test]
fn retryable_failures_retry_on_another_worker_then_fail_the_job() {
    let (mut s, job, ids) = setup(2, 4);
    let first = launches(&s.schedule());
    let (w, t) = first[0].clone();
    s.task_finished(&t.attempt, &w, failure(true));
    let retry = launches(&s.schedule());
    assert_eq!(retry.len(), 1);
    assert_ne!(retry[0].0, w, "retried on the other worker");
    let mut current = retry[0].clone();
    for _ in 0..2 {
        s.task_finished(&current.1.attempt, &current.0, failure(true));
        current = launches(&s.schedule())[0].clone();
    }
    let actions = s.task_finished(&current.1.attempt, &current.0, failure(true));
    let status = s.job(&job).unwrap();
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.clone().unwrap();
    assert!(
        error.contains("boom at row 7") && error.contains("stage 0") && error.contains("attempt 4"),
        "{error}"
    );
    // The other running tasks are cancelled.
    assert!(actions.iter().any(|a| matches!(a, Action::Cancel { .. })));
    let _ = ids;
}

#[test]
fn a_non_retryable_failure_fails_at_once() {
    let (mut s, job, _) = setup(1, 4);
    let first = launches(&s.schedule());
    s.task_finished(&first[0].1.attempt, &first[0].0, failure(false));
    assert_eq!(s.job(&job).unwrap().state, JobState::Failed);
}

#[test]
fn only_the_current_attempt_may_commit() {
    let (mut s, _, _) = setup(1, 4);
    let first = launches(&s.schedule());
    let (worker, a) = (first[0].0.clone(), first[0].1.attempt.clone());
    let stale = TaskAttempt {
        attempt: a.attempt + 1,
        ..a.clone()
    };
    assert!(!s.ask_commit(&stale, &worker));
    assert!(
        !s.ask_commit(&a, &WorkerId("someone-else".into())),
        "only the worker running the attempt may commit it"
    );
    assert!(s.ask_commit(&a, &worker));
    assert!(s.ask_commit(&a, &worker), "asking again is idempotent");
}

#[test]
fn a_job_without_workers_waits_with_a_reason() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let job = JobId("j".into());
    s.submit(
        job.clone(),
        "wc".into(),
        word_count_plan(&[10]),
        Sink::Collect,
        Default::default(),
    )
    .unwrap();
    assert!(s.schedule().is_empty());
    let j = s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert!(j.waiting_reason.as_deref().unwrap().contains("worker"));
    s.worker_registered(WorkerId("w".into()), "http://w".into(), 2);
    assert_eq!(launches(&s.schedule()).len(), 1);
}

/// Two workers of 4 slots, a job of 4 map tasks all running.
fn speculation_setup(speculation: bool) -> (Scheduler, Vec<(WorkerId, TaskDefinition)>) {
    let config = SchedulerConfig {
        speculation,
        speculation_min_runtime: std::time::Duration::ZERO,
        speculation_quantile: 0.5,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    for i in 0..2 {
        s.worker_registered(WorkerId(format!("w{i}")), format!("http://w{i}"), 4);
    }
    s.submit(
        JobId("j".into()),
        "wc".into(),
        word_count_plan(&[10, 10, 10, 10]),
        Sink::Collect,
        Default::default(),
    )
    .unwrap();
    let first = launches(&s.schedule());
    assert_eq!(first.len(), 4);
    // Three finish at once (1 ms each); the fourth straggles.
    for (w, t) in &first[..3] {
        s.task_finished(&t.attempt, w, success(t));
    }
    std::thread::sleep(std::time::Duration::from_millis(10));
    (s, first)
}

fn map_launches(actions: &[Action]) -> Vec<(WorkerId, TaskDefinition)> {
    launches(actions)
        .into_iter()
        .filter(|(_, t)| t.attempt.stage.0 == 0)
        .collect()
}

#[test]
fn a_straggler_gets_one_backup_elsewhere_and_the_first_to_finish_wins() {
    let (mut s, first) = speculation_setup(true);
    let (slow_worker, slow) = first[3].clone();
    let backups = map_launches(&s.schedule());
    assert_eq!(backups.len(), 1);
    let (backup_worker, backup) = backups[0].clone();
    assert_eq!(backup.attempt.partition, slow.attempt.partition);
    assert_eq!(backup.attempt.attempt, slow.attempt.attempt + 1);
    assert_ne!(
        backup_worker, slow_worker,
        "the backup runs on another worker"
    );
    assert!(
        map_launches(&s.schedule()).is_empty(),
        "one backup per task"
    );
    assert!(
        s.is_current(&slow.attempt, &slow_worker) && s.is_current(&backup.attempt, &backup_worker)
    );

    // The backup wins: the slow attempt is cancelled and its late result ignored.
    let actions = s.task_finished(&backup.attempt, &backup_worker, success(&backup));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Cancel { attempts, .. } if attempts == &vec![slow.attempt.clone()])));
    assert!(!s.is_current(&slow.attempt, &slow_worker));
    assert!(
        s.task_finished(&slow.attempt, &slow_worker, success(&slow))
            .is_empty()
    );
}

#[test]
fn when_the_primary_wins_the_backup_is_cancelled() {
    let (mut s, first) = speculation_setup(true);
    let (slow_worker, slow) = first[3].clone();
    let (backup_worker, backup) = map_launches(&s.schedule())[0].clone();
    let actions = s.task_finished(&slow.attempt, &slow_worker, success(&slow));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Cancel { attempts, .. } if attempts == &vec![backup.attempt.clone()])));
    assert!(!s.is_current(&backup.attempt, &backup_worker));
}

#[test]
fn a_failed_backup_leaves_the_primary_running() {
    let (mut s, first) = speculation_setup(true);
    let (slow_worker, slow) = first[3].clone();
    let (backup_worker, backup) = map_launches(&s.schedule())[0].clone();
    s.task_finished(&backup.attempt, &backup_worker, failure(true));
    assert!(s.is_current(&slow.attempt, &slow_worker));
    assert!(!s.is_current(&backup.attempt, &backup_worker));
}

#[test]
fn speculation_can_be_turned_off() {
    let (mut s, _) = speculation_setup(false);
    assert!(map_launches(&s.schedule()).is_empty());
}

#[test]
fn a_worker_that_keeps_failing_is_excluded() {
    let mut s = Scheduler::new(SchedulerConfig {
        exclude_after_failures: 2,
        ..SchedulerConfig::default()
    });
    let ids: Vec<WorkerId> = (0..2).map(|i| WorkerId(format!("w{i}"))).collect();
    for (i, w) in ids.iter().enumerate() {
        s.worker_registered(w.clone(), format!("http://w{i}"), 1);
    }
    let job = JobId("j".into());
    s.submit(
        job.clone(),
        "wc".into(),
        word_count_plan(&[10; 6]),
        Sink::Collect,
        Default::default(),
    )
    .unwrap();
    // Attempts fail on w0 (each is retried elsewhere, so the job goes on).
    for _ in 0..10 {
        let launched = launches(&s.schedule());
        let on_w0: Vec<_> = launched.iter().filter(|(w, _)| *w == ids[0]).collect();
        for (w, t) in on_w0 {
            s.task_finished(&t.attempt, w, failure(true));
        }
        for (w, t) in launched.iter().filter(|(w, _)| *w == ids[1]) {
            s.task_finished(&t.attempt, w, success(t));
        }
        if s.is_excluded(&ids[0]) {
            break;
        }
    }
    assert!(s.is_excluded(&ids[0]));
    assert!(!s.is_excluded(&ids[1]));
    // From now on only w1 gets tasks, until the job is done.
    let mut pending = launches(&s.schedule());
    while let Some((w, t)) = pending.pop() {
        assert_eq!(w, ids[1], "an excluded worker got a task");
        s.task_finished(&t.attempt, &w, success(&t));
        pending.extend(launches(&s.schedule()));
    }
    assert_eq!(s.job(&job).unwrap().state, JobState::Succeeded);
}

#[test]
fn data_errors_do_not_count_against_the_worker() {
    let (mut s, _, ids) = setup(1, 4);
    let first = launches(&s.schedule());
    s.task_finished(&first[0].1.attempt, &first[0].0, failure(false));
    assert!(!s.is_excluded(&ids[0]));
}

#[test]
fn an_excluded_worker_still_gets_tasks_when_it_is_the_only_one() {
    let mut s = Scheduler::new(SchedulerConfig {
        exclude_after_failures: 1,
        ..SchedulerConfig::default()
    });
    let w = WorkerId("w".into());
    s.worker_registered(w.clone(), "http://w".into(), 1);
    s.submit(
        JobId("j".into()),
        "wc".into(),
        word_count_plan(&[10]),
        Sink::Collect,
        Default::default(),
    )
    .unwrap();
    let first = launches(&s.schedule());
    s.task_finished(&first[0].1.attempt, &w, failure(true));
    assert!(s.is_excluded(&w));
    let retry = launches(&s.schedule());
    assert_eq!(
        retry.len(),
        1,
        "the job must not stall behind the exclusion"
    );
    assert_eq!(retry[0].0, w);
}
