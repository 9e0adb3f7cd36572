//! A worker's work directory over its life: locked by one live worker only, cleared of what a
//! dead predecessor left, and of the jobs a restarted coordinator no longer knows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use quiver::prelude::*;

use crate::cluster::{ProcessCluster, binary};
use crate::corpus::write_corpus;
use crate::wordcount::word_count;

/// Every job directory (named by a UUID) under the `worker-*` directories of `work_dir`.
fn job_dirs(work_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for worker in std::fs::read_dir(work_dir).into_iter().flatten().flatten() {
        if !worker.file_name().to_string_lossy().starts_with("worker-") {
            continue;
        }
        for entry in std::fs::read_dir(worker.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 36 && name.matches('-').count() == 4 {
                found.push(entry.path());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_removes_the_data_a_dead_worker_left_in_its_work_dir() {
    let mut cluster = ProcessCluster::start(0).await;
    // What a worker killed earlier left: a job's shuffle file under its own directory.
    let dir = cluster.worker_work_dir(0);
    let stale = dir.join("worker-0123abcd/3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b/stage-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("part-0-attempt-0.data"), b"stale").unwrap();
    cluster.add_worker();
    cluster.wait_for_workers(1).await;
    assert!(
        !dir.join("worker-0123abcd").exists(),
        "the dead worker's data is still there"
    );
    assert!(dir.join("quiver-worker.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_on_the_same_work_dir_is_refused() {
    let mut cluster = ProcessCluster::start(1).await;
    let dir = cluster.worker_work_dir(0);
    let out = Command::new(binary("quiver-worker"))
        .args(["--coordinator", &cluster.url, "--work-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second worker started: {err}");
    assert!(
        err.contains("in use by another worker") && err.contains(&dir.display().to_string()),
        "{err}"
    );
    // The first worker runs on, undisturbed.
    assert!(cluster.all_running());
    assert!(dir.join("quiver-worker.lock").exists());
}

/// A coordinator restarted without its job log (`--state-dir none`) forgets a job whose results
/// still sit on a worker; when the worker registers again it hears which jobs are alive, and
/// deletes the forgotten one's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_deletes_the_data_of_jobs_a_restarted_coordinator_lost() {
    let input = tempfile::tempdir().unwrap();
    let files = write_corpus(input.path(), 2, 400, 7);
    let mut cluster = ProcessCluster::start_with(1, &["--state-dir", "none"], &[]).await;
    let client = cluster.client().await;
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    // Waited for, never collected: its results stay on the worker.
    job.wait().await.unwrap();
    let dir = cluster.worker_work_dir(0);
    let held = job_dirs(&dir);
    assert!(
        held.iter().any(|d| d.ends_with(job.id())),
        "no data of job {} under {}: {held:?}",
        job.id(),
        dir.display()
    );
    cluster.kill_coordinator();
    cluster.start_coordinator_again();
    cluster.wait_for_workers(1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !job_dirs(&dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the lost job's data is still there: {:?}",
            job_dirs(&dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker still works.
    let client = cluster.client().await;
    let counts = word_count(&files).collect(&client).await.unwrap();
    assert!(!counts.is_empty());
}
