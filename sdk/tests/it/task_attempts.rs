//! `JobHandle::details`: every attempt of every task, with where it ran, how it ended and
//! what it read and wrote — checked against the job's result and the stages' own figures.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use quiver::TaskAttemptState;
use quiver::prelude::*;

use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::user_functions::{cluster_with, flaky_on_first_call, flaky_word_count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_list_every_attempt_with_its_failure_and_the_shuffle_bytes_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 400, 71);
    // The first call fails: one attempt of the map stage fails and is retried.
    let (functions, _) = flaky_on_first_call();
    let cluster = cluster_with(functions.clone()).await;
    let client = cluster.client().await.unwrap();
    let ds = flaky_word_count(&files, &functions);
    let before = SystemTime::now();
    let options = quiver::JobOptions {
        shuffle_partitions: Some(6),
        ..Default::default()
    };
    let job = client
        .submit_with(&ds, Sink::Collect, "attempts", options)
        .await
        .unwrap();
    let reference = reference_counts(&files);
    assert_eq!(result_counts(&job.collect().await.unwrap()), reference);
    let details = job.details().await.unwrap();
    let workers: HashSet<String> = client
        .list_workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.worker_id)
        .collect();

    assert_eq!(details.stages.len(), 2, "{:?}", details.stages);
    let (map, reduce) = (&details.stages[0], &details.stages[1]);
    let mut failed = vec![];
    for stage in &details.stages {
        let mut succeeded: HashMap<u32, u32> = HashMap::new();
        for a in &stage.attempts {
            assert!(workers.contains(&a.worker_id), "{a:?} ran on {workers:?}");
            assert!(
                a.started_at >= before - std::time::Duration::from_secs(1),
                "{a:?}"
            );
            assert!(a.started_at <= SystemTime::now(), "{a:?}");
            assert!(a.shuffle_bytes_fetched <= a.shuffle_bytes_read, "{a:?}");
            match a.state {
                TaskAttemptState::Succeeded => *succeeded.entry(a.partition).or_default() += 1,
                TaskAttemptState::Failed => failed.push((stage.id, a.clone())),
                // A race with a speculative copy (on a slow machine) cancels the loser.
                TaskAttemptState::Cancelled
                    if stage
                        .attempts
                        .iter()
                        .any(|b| b.partition == a.partition && b.speculative) => {}
                // Nothing else was cancelled or lost: no worker died.
                other => panic!("unexpected {other:?} attempt: {a:?}"),
            }
        }
        // Exactly one success per task.
        let expected: HashMap<u32, u32> = (0..stage.tasks_total).map(|p| (p, 1)).collect();
        assert_eq!(succeeded, expected, "stage {}", stage.id);
    }
    // The one failure: the first call of the function, in the map stage, retried later.
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (stage, failure) = &failed[0];
    assert_eq!(*stage, map.id);
    assert!(
        failure
            .error
            .as_deref()
            .is_some_and(|e| e.contains("transient trouble")),
        "{failure:?}"
    );
    assert!(map.attempts.iter().any(|a| a.partition == failure.partition
        && a.state == TaskAttemptState::Succeeded
        && a.attempt > failure.attempt));

    // The reduce stage read exactly what the map stage wrote (its figures come from the
    // map tasks' reports); the map stage read no shuffle input. One row per distinct word.
    let succeeded = |s: &quiver::StageProgress| -> Vec<quiver::TaskAttempt> {
        s.attempts
            .iter()
            .filter(|a| a.state == TaskAttemptState::Succeeded)
            .cloned()
            .collect()
    };
    assert!(succeeded(map).iter().all(|a| a.shuffle_bytes_read == 0));
    let read: u64 = succeeded(reduce).iter().map(|a| a.shuffle_bytes_read).sum();
    assert_eq!(read, map.bytes_out);
    assert!(map.bytes_out > 0);
    let rows: u64 = succeeded(reduce).iter().map(|a| a.rows_out).sum();
    assert_eq!(rows, reference.len() as u64);

    // Ordinary status stays light.
    assert!(
        job.status()
            .await
            .unwrap()
            .stages
            .iter()
            .all(|s| s.attempts.is_empty())
    );
    cluster.shutdown().await;
}
