//! Word count end to end on local clusters of several sizes.

use quiver::prelude::*;
use quiver::{JobOptions, StageOutput};

use crate::cluster;
use crate::corpus::{lowercase_words_of, reference_counts, result_counts, write_corpus};

/// The word count dataset, as the example builds it.
pub fn word_count(files: &[std::path::PathBuf]) -> Dataset {
    word_count_of(Dataset::read_text(files).unwrap())
}

/// Word count of a dataset of lines (a column `line`), e.g. read from an object store.
pub fn word_count_of(lines: Dataset) -> Dataset {
    lowercase_words_of(lines)
        .group_by(["word"])
        .agg([count().alias("count")])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_is_exact_on_one_and_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 3000, 1);
    let expected = reference_counts(&files);
    assert!(expected.len() > 15);
    for workers in [1, 3] {
        let cluster = cluster::local(workers).await;
        let client = cluster.client().await.unwrap();
        let options = JobOptions {
            shuffle_partitions: Some(5),
            batch_size: Some(333),
            broadcast_threshold: None,
        };
        let job = client
            .submit_with(&word_count(&files), Sink::Collect, "wc", options)
            .await
            .unwrap();
        let got = result_counts(&job.collect().await.unwrap());
        assert_eq!(got, expected, "{workers} workers");
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_stage_graph_is_map_then_reduce_over_a_hash_shuffle() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 200, 2);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let done = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(done.stages.len(), 2);
    let (map, reduce) = (&done.stages[0], &done.stages[1]);
    assert!(map.inputs.is_empty());
    assert!(
        matches!(&map.output, StageOutput::HashShuffle { keys, partitions: 4 } if keys == &vec![col("word")]),
        "{:?}",
        map.output
    );
    assert_eq!(map.tasks_total, 2, "one split per small file");
    assert_eq!(reduce.inputs, vec![0]);
    assert_eq!(reduce.output, StageOutput::Collect);
    // Planned with twice the cluster's 2 slots; their few KiB are read by one task.
    assert_eq!(reduce.tasks_total, 1);
    let said = reduce.adaptive.as_deref().unwrap_or_default();
    assert!(
        said.contains("coalesced 4 shuffle partitions into 1 task"),
        "{said}"
    );
    assert_eq!(done.tasks(), (3, 3));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_at_once_both_finish_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_corpus(&dir.path().join("a"), 3, 800, 3);
    let b = write_corpus(&dir.path().join("b"), 2, 900, 4);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let (da, db) = (word_count(&a), word_count(&b));
    let (ra, rb) = tokio::join!(da.collect(&client), db.collect(&client));
    assert_eq!(result_counts(&ra.unwrap()), reference_counts(&a));
    assert_eq!(result_counts(&rb.unwrap()), reference_counts(&b));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_joins_mid_job_is_registered_and_gets_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 60, 400, 5);
    let mut cluster = cluster::local(1).await;
    let client = cluster.client().await.unwrap();
    let options = JobOptions {
        shuffle_partitions: Some(4),
        batch_size: Some(64),
        broadcast_threshold: None,
    };
    let job = client
        .submit_with(&word_count(&files), Sink::Collect, "late", options)
        .await
        .unwrap();
    // Add the worker once the job is under way.
    loop {
        let p = job.status().await.unwrap();
        if p.tasks().0 >= 1 {
            assert!(
                p.tasks().0 < p.tasks().1,
                "job finished before the second worker joined"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cluster.add_worker().await.unwrap();
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    let workers = client.list_workers().await.unwrap();
    assert_eq!(workers.len(), 2);
    assert!(
        workers.iter().all(|w| w.tasks_completed > 0),
        "every worker ran tasks: {workers:?}"
    );
    cluster.shutdown().await;
}
