//! Jobs finish with exact results while workers are killed, frozen and added; and the cluster
//! tells lost workers from busy ones. Every successful run is compared in full (every word and
//! its count) with the independent reference.

use std::time::Duration;

use quiver::prelude::*;
use quiver::{Error, JobOptions, JobProgress, JobState, StageState};

use crate::cluster::{ProcessCluster, alive_workers};
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::wordcount::word_count;

/// Polls the job until `condition` holds (20 s at most).
async fn wait_for(
    job: &JobHandle,
    what: &str,
    condition: impl Fn(&JobProgress) -> bool,
) -> JobProgress {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = job.status().await.unwrap();
        if condition(&p) {
            return p;
        }
        assert!(!p.state.is_terminal(), "job ended before {what}: {p:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn map_done(p: &JobProgress) -> (u32, u32) {
    p.stages
        .first()
        .map_or((0, 1), |s| (s.tasks_done, s.tasks_total))
}

/// Heartbeats every 200 ms, lost after 1.5 s of silence.
async fn chaos_cluster(workers: usize) -> ProcessCluster {
    ProcessCluster::start_with(
        workers,
        &["--heartbeat-timeout", "1.5"],
        &["--heartbeat-interval", "0.2"],
    )
    .await
}

const CHAOS_OPTIONS: JobOptions = JobOptions {
    shuffle_partitions: Some(12),
    batch_size: Some(32),
    broadcast_threshold: None,
};

/// Submits word count over `files` with the chaos options.
async fn chaos_job(client: &quiver::Client, files: &[std::path::PathBuf], name: &str) -> JobHandle {
    client
        .submit_with(&word_count(files), Sink::Collect, name, CHAOS_OPTIONS)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_during_the_map_stage() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 30, 1500, 41);
    let mut cluster = chaos_cluster(3).await;
    let client = cluster.client().await;
    let job = chaos_job(&client, &files, "chaos-map").await;
    wait_for(&job, "a few map tasks", |p| map_done(p).0 >= 3).await;
    let (done, total) = map_done(&job.status().await.unwrap());
    assert!(done < total, "the map stage ended before the kill");
    cluster.kill_worker(0);
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    assert_eq!(alive_workers(&client).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_while_reducers_fetch_its_map_output() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 30, 1500, 42);
    let mut cluster = chaos_cluster(3).await;
    let client = cluster.client().await;
    let job = chaos_job(&client, &files, "chaos-reduce").await;
    let p = wait_for(&job, "the map stage to complete", |p| {
        let (done, total) = map_done(p);
        done == total
    })
    .await;
    assert!(
        p.stages[1].tasks_done < p.stages[1].tasks_total,
        "reduce stage already done"
    );
    // Every worker holds map outputs that every reducer needs.
    cluster.kill_worker(1);
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_is_declared_lost_and_its_late_results_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 30, 1500, 43);
    let cluster = chaos_cluster(3).await;
    let client = cluster.client().await;
    let job = chaos_job(&client, &files, "chaos-stop").await;
    wait_for(&job, "a few map tasks", |p| map_done(p).0 >= 2).await;
    cluster.signal_worker(2, "STOP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while alive_workers(&client).await != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "frozen worker never declared lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.signal_worker(2, "CONT");
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    // It registers again by itself and is usable for the next job.
    cluster.wait_for_workers(3).await;
    let again = result_counts(&word_count(&files).collect(&client).await.unwrap());
    assert_eq!(again, reference_counts(&files));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_workers_keep_heartbeating_and_are_never_declared_lost() {
    const TIMEOUT: Duration = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    // Large files read in tiny batches keep both slots busy for several heartbeat timeouts.
    let files = write_corpus(dir.path(), 4, 100_000, 44);
    let cluster = LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .heartbeat_interval(Duration::from_millis(50))
        .heartbeat_timeout(TIMEOUT)
        .start()
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let options = JobOptions {
        shuffle_partitions: Some(2),
        batch_size: Some(8),
        broadcast_threshold: None,
    };
    let job = client
        .submit_with(&word_count(&files), Sink::Collect, "busy", options)
        .await
        .unwrap();
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    let done = job.status().await.unwrap();
    let map = &done.stages[0];
    assert!(
        map.elapsed > 2 * TIMEOUT,
        "the map stage was too short to prove anything: {:?}",
        map.elapsed
    );
    // No task ran twice: nothing was reassigned from a worker wrongly declared lost.
    let workers = client.list_workers().await.unwrap();
    assert!(
        workers
            .iter()
            .all(|w| w.state == quiver_proto::v1::WorkerState::Alive as i32)
    );
    let completed: u64 = workers.iter().map(|w| w.tasks_completed).sum();
    assert_eq!(completed, u64::from(done.tasks().1));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_stops_its_tasks_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 40_000, 45);
    let cluster = LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .heartbeat_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    wait_for(&job, "tasks to run", |p| {
        p.stages.iter().any(|s| s.tasks_running > 0)
    })
    .await;
    assert!(job.cancel().await.unwrap());
    assert!(matches!(job.wait().await, Err(Error::JobCancelled { .. })));
    let status = job.status().await.unwrap();
    assert_eq!(status.state, JobState::Cancelled);
    // Its stages agree: the one that ran is cancelled (or had completed), those that never
    // started are skipped; nothing says running.
    assert!(
        status.stages.iter().all(|s| s.tasks_running == 0
            && match s.state {
                StageState::Cancelled | StageState::Complete => true,
                StageState::Skipped => s.tasks_done == 0,
                _ => false,
            }),
        "{:?}",
        status.stages
    );
    assert!(
        status
            .stages
            .iter()
            .any(|s| s.state == StageState::Cancelled),
        "{:?}",
        status.stages
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let running: u32 = client
            .list_workers()
            .await
            .unwrap()
            .iter()
            .map(|w| w.running_tasks)
            .sum();
        if running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{running} tasks still running 5 s after cancel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !job.cancel().await.unwrap(),
        "cancelling twice says it had finished"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_a_worker_and_runs_when_one_joins() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 300, 46);
    let mut cluster = LocalCluster::builder().workers(0).start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    let p = job.status().await.unwrap();
    assert_eq!(p.state, JobState::Queued);
    assert!(
        p.waiting_reason
            .unwrap_or_default()
            .contains("waiting for a worker")
    );
    cluster.add_worker().await.unwrap();
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_no_worker_fails_after_the_configured_wait() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 10, 47);
    let cluster = LocalCluster::builder()
        .workers(0)
        .heartbeat_timeout(Duration::from_millis(400))
        .worker_wait_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let started = std::time::Instant::now();
    let err = word_count(&files)
        .collect(&client)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no worker that can run this job registered within 1 s"),
        "{err}"
    );
    assert!(err.contains("waiting for a worker to register"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_drains_and_exits_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 30, 1500, 48);
    let mut cluster = chaos_cluster(3).await;
    let client = cluster.client().await;
    let job = chaos_job(&client, &files, "drain").await;
    wait_for(&job, "a few map tasks", |p| map_done(p).0 >= 2).await;
    cluster.signal_worker(0, "TERM");
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    // Once nothing needs its shuffle data, it leaves on its own, cleanly.
    let status = cluster.wait_for_exit(0, Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "worker did not exit cleanly: {status:?}"
    );
}

/// Every directory under `root` (recursively) whose name is `name`.
fn dirs_named(root: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if e.file_name() == name {
                    out.push(path.clone());
                }
                out.extend(dirs_named(&path, name));
            }
        }
    }
    out
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 5 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_files_are_removed_when_a_job_ends() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 20_000, 49);
    let cluster = LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .start()
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let root = cluster.work_dir().to_path_buf();

    // A finished collect job: intermediate shuffle data goes at once; the results stay until
    // the driver has fetched them (or the retention period ends).
    let done = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    done.wait().await.unwrap();
    eventually("stage 0 files removed", || {
        dirs_named(&root, done.id())
            .iter()
            .all(|d| !d.join("stage-0").exists())
    })
    .await;
    assert!(
        dirs_named(&root, done.id())
            .iter()
            .any(|d| d.join("stage-1").exists())
    );
    assert_eq!(
        result_counts(&done.collect().await.unwrap()),
        reference_counts(&files)
    );
    eventually("results removed once fetched", || {
        dirs_named(&root, done.id()).is_empty()
    })
    .await;

    // A cancelled job: everything goes.
    let options = JobOptions {
        shuffle_partitions: Some(4),
        batch_size: Some(16),
        broadcast_threshold: None,
    };
    let cancelled = client
        .submit_with(&word_count(&files), Sink::Collect, "cancel-me", options)
        .await
        .unwrap();
    wait_for(&cancelled, "some map output", |p| map_done(p).0 >= 1).await;
    assert!(!dirs_named(&root, cancelled.id()).is_empty());
    assert!(cancelled.cancel().await.unwrap());
    eventually("cancelled job's files removed", || {
        dirs_named(&root, cancelled.id()).is_empty()
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_then_two_more_join_mid_job_then_the_first_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    // Many map tasks over tiny batches: one worker alone needs seconds for the map stage.
    let files = write_corpus(dir.path(), 60, 5000, 50);
    let mut cluster = chaos_cluster(1).await;
    let client = cluster.client().await;
    let options = JobOptions {
        shuffle_partitions: Some(12),
        batch_size: Some(8),
        broadcast_threshold: None,
    };
    let job = client
        .submit_with(&word_count(&files), Sink::Collect, "elastic", options)
        .await
        .unwrap();
    wait_for(&job, "the first map task", |p| map_done(p).0 >= 1).await;
    cluster.add_worker();
    cluster.add_worker();
    cluster.wait_for_workers(3).await;
    let (done, total) = map_done(&job.status().await.unwrap());
    assert!(done < total, "the map stage ended before the kill");
    cluster.kill_worker(0);
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    let workers = client.list_workers().await.unwrap();
    let joined_and_worked = workers
        .iter()
        .filter(|w| w.state == quiver_proto::v1::WorkerState::Alive as i32 && w.tasks_completed > 0)
        .count();
    assert_eq!(joined_and_worked, 2, "{workers:?}");
}
