//! The scheduler's side of the job-level output commit: a `write_parquet` job commits the
//! first finished attempt of each partition once every task is done (logged first), succeeds
//! only when the commit did, cannot be cancelled mid-commit, removes its temporaries when it
//! fails, and a restarted coordinator finishes a logged commit instead of re-running the job.

use quiver_coordinator::event::{Event, JobRecord, Reply};
use quiver_coordinator::job::JobState;
use quiver_coordinator::scheduler::{Action, SchedulerConfig};
use quiver_plan::{JobId, Sink, TaskDefinition, WorkerId, WriteMode};
use quiver_storage::TaskFile;

use crate::scheduler::{Sim, failure, launches, success, worker_ids};
use crate::stage_planner::word_count_plan;

fn parquet(mode: WriteMode) -> Sink {
    Sink::WriteParquet {
        directory: "s3://bucket/out".into(),
        mode,
    }
}

/// Registers `workers` workers and submits a write job over three files.
fn write_job(workers: usize) -> (Sim, JobId, Vec<(WorkerId, TaskDefinition)>) {
    let mut sim = Sim::new(SchedulerConfig::default());
    for w in worker_ids(workers) {
        sim.register(&w, 4);
    }
    let job = JobId("write".into());
    let first = launches(&sim.submit_to(
        &job,
        word_count_plan(&[10, 10, 10]),
        parquet(WriteMode::Overwrite),
    ));
    (sim, job, first)
}

/// Reports success for every launched attempt until none is left; every action and record
/// of the last report.
fn finish_all(
    sim: &mut Sim,
    mut pending: Vec<(WorkerId, TaskDefinition)>,
) -> (Vec<Action>, Vec<JobRecord>) {
    let mut last = (vec![], vec![]);
    while let Some((w, t)) = pending.pop() {
        let out = sim.send(Event::TaskFinished {
            worker: w,
            attempt: t.attempt.clone(),
            outcome: success(&t),
        });
        pending.extend(launches(&out.actions));
        last = (out.actions, out.records);
    }
    last
}

fn commits(actions: &[Action]) -> Vec<(Vec<TaskFile>, bool, WriteMode)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CommitOutput {
                files,
                resumed,
                mode,
                directory,
                ..
            } => {
                assert_eq!(directory, "s3://bucket/out");
                Some((files.clone(), *resumed, *mode))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_write_job_succeeds_only_after_committing_the_first_attempt_of_each_partition() {
    let (mut sim, job, first) = write_job(2);
    let (actions, records) = finish_all(&mut sim, first);
    let commit = commits(&actions);
    assert_eq!(commit.len(), 1, "{actions:?}");
    let (files, resumed, mode) = &commit[0];
    assert!(!resumed);
    assert_eq!(*mode, WriteMode::Overwrite);
    let final_stage = sim.s.job(&job).unwrap().final_stage().unwrap().tasks.len();
    assert_eq!(files.len(), final_stage);
    let partitions: Vec<u32> = files.iter().map(|f| f.partition).collect();
    assert_eq!(partitions, (0..final_stage as u32).collect::<Vec<_>>());
    // The commit is logged before it runs; the job is not done yet.
    assert_eq!(records, vec![JobRecord::CommitStarted(job.clone())]);
    assert_eq!(sim.state(&job), JobState::Running);
    // Too late to cancel: the output is being made visible.
    let cancel = sim.send(Event::JobCancelled { job: job.clone() });
    match cancel.reply {
        Reply::Cancelled(Err(e)) => {
            assert!(e.to_string().contains("committing its output"), "{e}");
            assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition);
        }
        other => panic!("a cancel during the commit was not refused: {other:?}"),
    }
    assert_eq!(sim.state(&job), JobState::Running);

    let done = sim.send(Event::OutputCommitted {
        job: job.clone(),
        error: None,
    });
    assert_eq!(sim.state(&job), JobState::Succeeded);
    assert_eq!(done.records, vec![JobRecord::Finished(job.clone())]);
    assert!(
        !done
            .actions
            .iter()
            .any(|a| matches!(a, Action::AbortOutput { .. })),
        "a succeeded job's output is not aborted"
    );
}

#[test]
fn a_failed_commit_is_retried_then_fails_the_job_keeping_its_files() {
    let (mut sim, job, first) = write_job(1);
    finish_all(&mut sim, first);
    // A commit that failed halfway is tried again, as resumed, after a growing wait.
    for wait in [2, 4] {
        let out = sim.send(Event::OutputCommitted {
            job: job.clone(),
            error: Some("s3://bucket/out: slow down".into()),
        });
        assert_eq!(sim.state(&job), JobState::Running);
        let retried: Vec<_> = out
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::CommitOutput {
                    resumed,
                    retry_after,
                    ..
                } => Some((*resumed, retry_after.as_secs())),
                _ => None,
            })
            .collect();
        assert_eq!(retried, vec![(true, wait)]);
    }
    // No worker is needed meanwhile: waiting a long time without one does not fail it.
    sim.pass(std::time::Duration::from_secs(600));
    assert_eq!(sim.state(&job), JobState::Running);
    let out = sim.send(Event::OutputCommitted {
        job: job.clone(),
        error: Some("s3://bucket/out: access denied".into()),
    });
    let j = sim.s.job(&job).unwrap();
    assert_eq!(j.state, JobState::Failed);
    let e = j.error.clone().unwrap();
    assert!(
        e.contains("output commit failed 3 times") && e.contains("access denied"),
        "{e}"
    );
    // The files not yet moved exist only under _temporary: they are not deleted.
    assert!(
        !out.actions
            .iter()
            .any(|a| matches!(a, Action::AbortOutput { .. })),
        "{:?}",
        out.actions
    );
}

#[test]
fn a_failed_write_job_removes_its_temporary_files_now_and_once_more_later() {
    let (mut sim, job, first) = write_job(1);
    let actions = sim.finish(&first[0].0, &first[0].1, failure(false));
    assert_eq!(sim.state(&job), JobState::Failed);
    let delays: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::AbortOutput {
                job: j,
                directory,
                delay,
                ..
            } => {
                assert_eq!((j, directory.as_str()), (&job, "s3://bucket/out"));
                Some(*delay)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        vec![
            std::time::Duration::ZERO,
            SchedulerConfig::default().heartbeat_timeout
        ]
    );
    assert!(commits(&actions).is_empty());
}

#[test]
fn a_restarted_coordinator_finishes_a_logged_commit_and_reruns_an_unlogged_one() {
    let files = vec![
        TaskFile {
            partition: 0,
            attempt: 3,
        },
        TaskFile {
            partition: 1,
            attempt: 10_001,
        },
    ];
    let mut sim = Sim::new(SchedulerConfig::default());
    let committing = JobId("committing".into());
    let endpoint =
        quiver_plan::StorageOptions::from_pairs([("aws_endpoint", "http://10.0.0.7:9000")])
            .unwrap();
    let out = sim.send(Event::JobRecovered {
        planned_for: None,
        job: committing.clone(),
        name: "write".into(),
        plan: word_count_plan(&[10]),
        sink: parquet(WriteMode::ErrorIfExists),
        options: Default::default(),
        submitted_at_ms: 1,
        incarnation: 2,
        commit: Some(files.clone()),
        storage_locations: endpoint.clone(),
    });
    assert!(matches!(out.reply, Reply::Recovered(Ok(()))));
    // The resumed commit reaches the store the job named (credentials: the environment's).
    assert!(out.actions.iter().any(|a| matches!(a,
        Action::CommitOutput { storage, .. } if *storage == endpoint)));
    assert_eq!(
        commits(&out.actions),
        vec![(files, true, WriteMode::ErrorIfExists)]
    );
    sim.send(Event::OutputCommitted {
        job: committing.clone(),
        error: None,
    });
    assert_eq!(sim.state(&committing), JobState::Succeeded);

    // Without a logged commit, the write job runs again from the start.
    let rerun = JobId("rerun".into());
    let out = sim.send(Event::JobRecovered {
        planned_for: None,
        job: rerun.clone(),
        name: "write".into(),
        plan: word_count_plan(&[10]),
        sink: parquet(WriteMode::ErrorIfExists),
        options: Default::default(),
        submitted_at_ms: 1,
        incarnation: 1,
        commit: None,
        storage_locations: Default::default(),
    });
    assert!(commits(&out.actions).is_empty());
    let started = launches(&sim.register(&WorkerId("w".into()), 1));
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].1.attempt.job, rerun);
}
