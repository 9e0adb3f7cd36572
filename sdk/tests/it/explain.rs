//! `explain`: the stages a job would run as, from the coordinator, without running it — and
//! the same stages the job then really runs as.

use quiver::prelude::*;
use quiver::{JobOptions, StageState};

use crate::cluster;
use crate::corpus::{lowercase_words, write_corpus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_stages_a_job_then_runs_as_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 200, 7);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    // A filter right under the grouping: the planner fuses it into the partial aggregation.
    let ds = lowercase_words(&files)
        .filter(length(col("word")).gt(lit(3)))
        .unwrap()
        .group_by(["word"])
        .agg([count().alias("count")])
        .unwrap();

    let explained = ds.explain(&client).await.unwrap();
    assert_eq!(explained.total_slots, 2);
    assert_eq!(explained.stages.len(), 2, "{explained}");
    let (map, reduce) = (&explained.stages[0], &explained.stages[1]);
    assert!(
        map.inputs.is_empty() && reduce.inputs == vec![map.id],
        "{explained}"
    );
    assert!(
        map.description.contains("partial aggregate") && map.description.contains("where ("),
        "the fused filter shows: {explained}"
    );
    assert!(
        !map.description.contains("filter"),
        "no separate filter step: {explained}"
    );
    // Twice the slots, the default number of shuffle partitions.
    assert_eq!(reduce.tasks_total, 4, "{explained}");
    assert!(
        explained
            .stages
            .iter()
            .all(|s| s.state == StageState::Waiting && s.tasks_done == 0)
    );
    let text = explained.to_string();
    assert!(text.contains("stage 1 [4 tasks] (reads stage 0)"), "{text}");
    // Nothing ran.
    assert!(client.list_jobs().await.unwrap().is_empty());

    // The reduce stage may be cut otherwise once its input is measured, and explain says so.
    assert_eq!(map.adaptive, None);
    let may = reduce.adaptive.as_deref().unwrap_or_default();
    assert!(
        may.contains("may coalesce its 4 shuffle partitions"),
        "{may}"
    );
    assert!(text.contains("adaptive: may coalesce"), "{text}");

    // The job then runs as explained, its few KiB of shuffle read by one task.
    let job = client.submit(&ds, Sink::Collect).await.unwrap();
    let done = job.wait().await.unwrap();
    let ran: Vec<(u32, String)> = done
        .stages
        .iter()
        .map(|s| (s.id, s.description.clone()))
        .collect();
    let planned: Vec<(u32, String)> = explained
        .stages
        .iter()
        .map(|s| (s.id, s.description.clone()))
        .collect();
    assert_eq!(ran, planned);
    assert_eq!(done.stages[0].tasks_total, map.tasks_total);
    assert_eq!(done.stages[1].tasks_total, 1);
    let did = done.stages[1].adaptive.as_deref().unwrap_or_default();
    assert!(
        did.contains("coalesced 4 shuffle partitions into 1 task"),
        "{did}"
    );

    // Options count: a set number of partitions is what the reduce stage gets.
    let options = JobOptions {
        shuffle_partitions: Some(7),
        ..Default::default()
    };
    let seven = client.explain(&ds, Sink::Collect, options).await.unwrap();
    assert_eq!(seven.stages[1].tasks_total, 7);
    assert_eq!(
        seven.stages[1].adaptive, None,
        "the job's own count is kept"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_refuses_what_submit_refuses_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 20, 8);
    let cluster = cluster::local(1).await;
    let client = cluster.client().await.unwrap();
    let options = JobOptions {
        shuffle_partitions: Some(u32::MAX),
        ..Default::default()
    };
    let err = client
        .explain(&lowercase_words(&files), Sink::Collect, options)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ExplainJob") && err.contains("partitions"),
        "{err}"
    );
    cluster.shutdown().await;
}

/// A filter that guards an expression which fails on the rows it drops (integer `%` by zero)
/// must keep guarding it: the planner does not fuse it into the aggregation, and the job
/// gives what a plain computation gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_guarding_a_failing_expression_still_guards_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 400, 9);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let word_length = || length(col("word"));
    let ds = lowercase_words(&files)
        .filter(word_length().not_eq(lit(3)))
        .unwrap()
        .group_by(["word"])
        .agg([sum(lit(10) % (word_length() - lit(3))).alias("s")])
        .unwrap();
    let explained = ds.explain(&client).await.unwrap();
    assert!(
        !explained.stages[0].description.contains("where ("),
        "not fused: {explained}"
    );
    let got = crate::corpus::result_counts(&ds.collect(&client).await.unwrap());
    let expected: std::collections::HashMap<String, i64> = crate::corpus::reference_counts(&files)
        .into_iter()
        .filter_map(|(word, count)| {
            let len = word.chars().count() as i64;
            (len != 3).then(|| (word, count * (10 % (len - 3))))
        })
        .collect();
    assert!(expected.len() > 10 && expected.len() < crate::corpus::reference_counts(&files).len());
    assert_eq!(got, expected);
    cluster.shutdown().await;
}
