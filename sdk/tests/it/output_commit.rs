//! The job-level output commit as a user meets it: existing data refused unless the job
//! overwrites or appends, a bad output refused at submit, a job failing while writing leaves
//! nothing visible, and exactly one file per partition — on local disk, on a real S3 server
//! (moto) with a worker killed mid-write, and across a coordinator kill.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use quiver::prelude::*;
use quiver_storage::S3TestServer;

use crate::cluster::{self, ProcessCluster};
use crate::corpus::{
    assert_committed, counts_in_parquet_objects, reference_counts, result_counts, write_corpus,
};
use crate::wordcount::word_count;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn visible(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
        .collect()
}

async fn read_back(client: &Client, dir: &Path) -> HashMap<String, i64> {
    let batches = Dataset::read_parquet(&[dir])
        .unwrap()
        .collect(client)
        .await
        .unwrap();
    result_counts(&batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_output_is_refused_unless_the_job_overwrites_or_appends() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 400, 7);
    let expected = reference_counts(&files);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let out = dir.path().join("out");
    let counts = word_count(&files);
    counts.write_parquet(&client, &out).await.unwrap();
    assert_eq!(read_back(&client, &out).await, expected);
    let first_files = names(&out);

    // The default refuses a directory that holds data, at submit, and changes nothing.
    let e = counts
        .write_parquet(&client, &out)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already holds data") && e.contains(&out.display().to_string()),
        "{e}"
    );
    assert_eq!(names(&out), first_files);

    // Overwrite with fewer words: only the new output is left.
    let long_words = counts
        .clone()
        .filter(length(col("word")).gt(lit(4i64)))
        .unwrap();
    long_words
        .write_parquet(&client, &out)
        .mode(WriteMode::Overwrite)
        .await
        .unwrap();
    let long: HashMap<String, i64> = expected
        .iter()
        .filter(|(w, _)| w.chars().count() > 4)
        .map(|(w, c)| (w.clone(), *c))
        .collect();
    assert!(!long.is_empty() && long.len() < expected.len());
    assert_eq!(read_back(&client, &out).await, long);
    assert!(names(&out).contains(&"_SUCCESS".to_string()));

    // Append the short words beside them: together, the whole count again.
    let short_words = counts.filter(length(col("word")).lt_eq(lit(4i64))).unwrap();
    short_words
        .write_parquet(&client, &out)
        .mode(WriteMode::Append)
        .await
        .unwrap();
    assert_eq!(read_back(&client, &out).await, expected);
    assert!(
        !names(&out).contains(&"_temporary".to_string()),
        "{:?}",
        names(&out)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_written_is_refused_at_submit() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 50, 2);
    let cluster = cluster::local(1).await;
    let client = cluster.client().await.unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let e = word_count(&files)
        .write_parquet(&client, &file)
        .mode(WriteMode::Overwrite)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a file"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
    // Refused before anything ran: no job is listed.
    assert!(client.list_jobs().await.unwrap().is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_while_writing_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 400, 9);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let out = dir.path().join("out");
    // Fails in the final stage, on the partition holding a 3-letter word with count... any:
    // `10 % (length - 3)` divides by zero there; other partitions' files were written.
    let failing = word_count(&files)
        .select([
            col("word"),
            (lit(10i64) % (length(col("word")) - lit(3i64))).alias("x"),
        ])
        .unwrap();
    let e = failing
        .write_parquet(&client, &out)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.to_lowercase().contains("zero"), "{e}");
    assert!(visible(&out).is_empty(), "{:?}", names(&out));
    // Its temporaries go too (once now, once more after attempts still running stopped).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while names(&out).contains(&"_temporary".to_string()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "temporaries left: {:?}",
            names(&out)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.shutdown().await;
}

/// Waits until the job's final stage has written some of its files (or the job ended).
async fn wait_until_writing(client: &Client, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = client.job(id).status().await.unwrap();
        let writing = p.stages.len() >= 2 && p.stages.last().is_some_and(|s| s.tasks_done > 0);
        if writing || p.state.is_terminal() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A word count being written to a bucket of a real S3 server by two worker processes.
struct S3Write {
    server: S3TestServer,
    /// Holds the corpus: keep it bound until the job ended.
    _dir: tempfile::TempDir,
    files: Vec<std::path::PathBuf>,
    cluster: ProcessCluster,
    client: Client,
    job: JobHandle,
}

/// Starts an S3 server with `bucket` and a cluster of two workers with its credentials, and
/// submits a word count of a corpus made from `seed` into `s3://<bucket>/counts` in
/// `partitions` files. `None` where no S3 server can be run.
async fn s3_write(bucket: &str, seed: u64, partitions: u32) -> Option<S3Write> {
    let server = S3TestServer::start()?;
    server.create_bucket(bucket);
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 20_000, seed);
    let cluster = ProcessCluster::start_in_env(2, server.env()).await;
    let client = cluster.client().await;
    let options = quiver::JobOptions {
        shuffle_partitions: Some(partitions),
        batch_size: Some(2000),
        broadcast_threshold: None,
    };
    let sink = Sink::WriteParquet {
        directory: format!("s3://{bucket}/counts"),
        mode: WriteMode::ErrorIfExists,
    };
    let job = client
        .submit_with(&word_count(&files), sink, "wc to s3", options)
        .await
        .unwrap();
    Some(S3Write {
        server,
        _dir: dir,
        files,
        cluster,
        client,
        job,
    })
}

/// A word count written to a bucket by worker processes, one of them killed while the final
/// stage writes: exactly one object per partition, exact counts, nothing temporary left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_count_written_to_s3_is_exact_with_a_worker_killed_mid_write() {
    let Some(S3Write {
        server,
        files,
        mut cluster,
        client,
        job,
        _dir,
    }) = s3_write("words", 13, 6).await
    else {
        return;
    };
    let id = job.id().to_string();
    let waiting = tokio::spawn(async move { job.wait().await });
    // Kill a worker once the final stage has written some of its files.
    wait_until_writing(&client, &id).await;
    cluster.kill_worker(0);
    tokio::time::timeout(Duration::from_secs(120), waiting)
        .await
        .expect("the job finishes")
        .unwrap()
        .expect("the job succeeds with one worker left");
    let written = assert_committed(&server, "s3://words/counts", 6);
    assert_eq!(
        counts_in_parquet_objects(&written),
        reference_counts(&files)
    );

    // Written again without overwrite: refused at submit, the objects untouched.
    let sink = Sink::WriteParquet {
        directory: "s3://words/counts".into(),
        mode: WriteMode::ErrorIfExists,
    };
    let e = match client.submit(&word_count(&files), sink).await {
        Ok(_) => panic!("a second write into the same prefix was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("already holds data"), "{e}");
}

/// A write job whose coordinator is killed mid-job (after its map stage): the restarted
/// coordinator resumes it and its output holds exactly one file per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_job_survives_a_coordinator_kill_with_exactly_one_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 20_000, 17);
    let out = dir.path().join("out");
    let mut cluster = ProcessCluster::start(2).await;
    let client = cluster.client().await;
    let options = quiver::JobOptions {
        shuffle_partitions: Some(4),
        batch_size: Some(2000),
        broadcast_threshold: None,
    };
    let sink = Sink::WriteParquet {
        directory: out.to_string_lossy().into_owned(),
        mode: WriteMode::ErrorIfExists,
    };
    let job = client
        .submit_with(&word_count(&files), sink, "wc to disk", options)
        .await
        .unwrap();
    let id = job.id().to_string();
    let waiting = tokio::spawn(async move { job.wait().await });
    wait_until_writing(&client, &id).await;
    cluster.kill_coordinator();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_coordinator_again();
    tokio::time::timeout(Duration::from_secs(120), waiting)
        .await
        .expect("the resumed job finishes")
        .unwrap()
        .expect("the resumed job succeeds");
    let mut expected_names = vec!["_SUCCESS".to_string()];
    expected_names.extend((0..4).map(|p| format!("part-{p:05}.parquet")));
    assert_eq!(names(&out), expected_names);
    let client = cluster.client().await;
    assert_eq!(read_back(&client, &out).await, reference_counts(&files));
}

/// A write job to a bucket whose coordinator is killed while it commits: the moment every
/// task is done the store is paused (SIGSTOP), so that the commit's copies hang; the
/// coordinator is killed, the store resumed and the coordinator started again. Whether the
/// kill landed inside the logged commit (which the restarted coordinator finishes with the
/// logged files) or just before it was logged (the final stage runs again), the output holds
/// exactly one object per partition and the exact counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_job_killed_while_committing_commits_exactly_once_after_the_restart() {
    // Many partitions: many objects to copy, so the commit takes long enough to be caught.
    let partitions = 48;
    let Some(S3Write {
        server,
        files,
        mut cluster,
        client,
        job,
        _dir,
    }) = s3_write("commits", 23, partitions).await
    else {
        return;
    };
    let url = "s3://commits/counts";
    let id = job.id().to_string();
    let waiting = tokio::spawn(async move { job.wait().await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = client.job(&id).status().await.unwrap();
        let all_done =
            !p.stages.is_empty() && p.stages.iter().all(|s| s.tasks_done == s.tasks_total);
        if all_done {
            assert_eq!(
                p.state,
                quiver::JobState::Running,
                "the commit ended before the store could be paused"
            );
            server.pause();
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill_coordinator();
    server.resume();
    cluster.start_coordinator_again();
    tokio::time::timeout(Duration::from_secs(120), waiting)
        .await
        .expect("the resumed job finishes")
        .unwrap()
        .expect("the resumed job succeeds");
    let written = assert_committed(&server, url, partitions as usize);
    assert_eq!(
        counts_in_parquet_objects(&written),
        reference_counts(&files)
    );
}
