//! The real binaries, as users run them: a coordinator and two workers in separate processes,
//! and the CLI against them.

use std::process::Command;
use std::time::{Duration, Instant};

use quiver::ClientOptions;
use quiver::prelude::*;

use crate::cluster::{ProcessCluster, binary, http_get};
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::wordcount::word_count;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_across_real_processes_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 3, 2500, 31);
    let cluster = ProcessCluster::start(2).await;
    let client = cluster.client().await;
    let counts = word_count(&files);
    let job = client.submit(&counts, Sink::Collect).await.unwrap();
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));

    // Both workers did work: shuffle data crossed processes.
    let workers = client.list_workers().await.unwrap();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w.tasks_completed > 0), "{workers:?}");

    let cli = |args: &[&str]| {
        let out = Command::new(binary("quiver"))
            .args(["--coordinator", &cluster.url])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = cli(&["--json", "workers"]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["state"] == "alive")
    );
    let (ok, out, _) = cli(&["status", job.id()]);
    assert!(
        ok && out.contains("succeeded") && out.contains("hash shuffle by [word]"),
        "{out}"
    );
    // Following a finished job: its last state, then its status; a success exits 0.
    let (ok, out, err) = cli(&["status", job.id(), "--watch"]);
    assert!(
        ok && out.contains("succeeded tasks") && out.contains("hash shuffle by [word]"),
        "{out}{err}"
    );
    let (ok, out, _) = cli(&["--json", "jobs"]);
    assert!(ok && out.contains(job.id()), "{out}");
    let (ok, _, err) = cli(&["status", "no-such-job"]);
    assert!(
        !ok && err.contains("job id \"no-such-job\" is not valid"),
        "{err}"
    );
    let (ok, _, err) = cli(&["status", "00000000-0000-4000-8000-000000000000"]);
    assert!(!ok && err.contains("unknown job"), "{err}");

    // The dashboard and Prometheus metrics, over plain HTTP.
    let metrics = http_get(&cluster.dashboard, "/metrics", None);
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("quiver_workers{state=\"alive\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quiver_jobs{state=\"succeeded\"} 1"),
        "{metrics}"
    );
    let page = http_get(&cluster.dashboard, "/", None);
    assert!(
        page.contains("<h1>Jobs</h1>") && page.contains(job.id()),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_register_again_by_themselves_when_the_coordinator_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 500, 32);
    let mut cluster = ProcessCluster::start(2).await;
    cluster.restart_coordinator();
    // The new coordinator knows no worker until they notice (next heartbeat) and register.
    cluster.wait_for_workers(2).await;
    let client = cluster.client().await;
    let got = result_counts(&word_count(&files).collect(&client).await.unwrap());
    assert_eq!(got, reference_counts(&files));
}

/// A driver following a job rides out a broken connection: it reconnects to the coordinator
/// when it comes back, and says plainly that the job is gone when the new coordinator does not
/// know it (here one without a job log: `--state-dir none`), instead of failing at once with a
/// TCP error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_reconnects_to_a_restarted_coordinator_and_names_a_lost_job() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 50, 3);
    // No workers: the job stays queued while the coordinator goes away.
    let mut cluster = ProcessCluster::start_with(0, &["--state-dir", "none"], &[]).await;
    let client = cluster.client().await;
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { job.wait().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_coordinator();
    let down = Instant::now();
    // Down for a second: the driver keeps trying instead of failing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "the driver gave up while the coordinator was down"
    );
    cluster.start_coordinator_again();
    let err = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the driver reconnects within seconds")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, quiver::Error::JobLost { url, .. } if *url == cluster.url),
        "{err}"
    );
    assert!(down.elapsed() >= Duration::from_secs(1));
}

/// With the coordinator gone for good, the driver fails once its reconnect timeout is over,
/// naming the coordinator and the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_gives_up_on_a_dead_coordinator_after_its_reconnect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 50, 3);
    let mut cluster = ProcessCluster::start(0).await;
    let client = cluster
        .client_with(ClientOptions::new().reconnect_timeout(Duration::from_millis(1500)))
        .await;
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    let id = job.id().to_string();
    let waiting = tokio::spawn(async move { job.wait().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_coordinator();
    let down = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the driver gives up after its timeout")
        .unwrap()
        .unwrap_err();
    let waited = down.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(10),
        "gave up after {waited:?}"
    );
    let message = err.to_string();
    assert!(
        matches!(err, quiver::Error::Connect { .. })
            && message.contains(&cluster.url)
            && message.contains(&id)
            && message.contains("not back within"),
        "{message}"
    );
}

/// Polls the job until `ready` says so about its progress; panics if it finished first.
async fn wait_until(
    client: &quiver::Client,
    id: &str,
    ready: impl Fn(&quiver::JobProgress) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = client.job(id).status().await.unwrap();
        if ready(&p) {
            return;
        }
        assert!(
            !p.state.is_terminal(),
            "the job finished before the moment the test waits for: {p:?}"
        );
        assert!(Instant::now() < deadline, "the job never got there: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// kill -9 of the coordinator at the moment `ready` says, a restart on the same state
/// directory: the driver following the job reconnects, and the resumed job's results are
/// exactly the reference counts. Returns the resumed job's details (its attempts are those
/// of the run after the restart).
async fn word_count_survives_a_coordinator_kill(
    coordinator_args: &[&str],
    ready: impl Fn(&quiver::JobProgress) -> bool,
) -> quiver::JobProgress {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 30_000, 41);
    let mut cluster = ProcessCluster::start_with(2, coordinator_args, &[]).await;
    let client = cluster.client().await;
    // Many small reduce tasks, so that the reduce stage lasts long enough to be caught.
    let options = quiver::JobOptions {
        shuffle_partitions: Some(48),
        ..Default::default()
    };
    let job = client
        .submit_with(&word_count(&files), Sink::Collect, "wc", options)
        .await
        .unwrap();
    let id = job.id().to_string();
    let collecting = tokio::spawn(async move { job.collect().await });
    wait_until(&client, &id, ready).await;
    cluster.kill_coordinator();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_coordinator_again();
    let batches = tokio::time::timeout(Duration::from_secs(120), collecting)
        .await
        .expect("the resumed job finishes")
        .unwrap()
        .expect("the driver gets the resumed job's results");
    assert_eq!(result_counts(&batches), reference_counts(&files));
    let client = cluster.client().await;
    let listed = client.list_jobs().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|j| j.job_id == id && j.state == quiver::JobState::Succeeded),
        "{listed:?}"
    );
    client.job(&id).details().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_count_survives_a_coordinator_kill_during_its_map_stage() {
    word_count_survives_a_coordinator_kill(&[], |p| {
        p.stages
            .first()
            .is_some_and(|s| s.tasks_running > 0 && s.tasks_done < s.tasks_total)
    })
    .await;
}

/// Killed during the reduce stage, the resumed job runs no map task again: both workers come
/// back within the grace (generous here, for a loaded machine) and list the map outputs they
/// hold, which it adopts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_count_survives_a_coordinator_kill_during_its_reduce_stage() {
    let details = word_count_survives_a_coordinator_kill(&["--resume-grace", "8"], |p| {
        p.stages.len() >= 2
            && p.stages[0].state == quiver::StageState::Complete
            && p.stages
                .last()
                .is_some_and(|s| s.tasks_done < s.tasks_total)
    })
    .await;
    let map = &details.stages[0];
    assert_eq!(map.tasks_done, map.tasks_total);
    assert!(
        map.attempts.is_empty(),
        "no map task ran after the restart: {:?}",
        map.attempts
    );
}

/// A queued job, its coordinator killed: the restarted one resumes it under the same id and
/// the driver that waited sees it succeed (the durable counterpart of the JobLost test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_reconnects_to_a_restarted_coordinator_that_resumes_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 50, 3);
    let mut cluster = ProcessCluster::start(0).await;
    let client = cluster.client().await;
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    let collecting = tokio::spawn(async move { job.collect().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.restart_coordinator();
    cluster.add_worker();
    let batches = tokio::time::timeout(Duration::from_secs(30), collecting)
        .await
        .expect("the resumed job finishes")
        .unwrap()
        .unwrap();
    assert_eq!(result_counts(&batches), reference_counts(&files));
}

/// Finished jobs stay listed, with their names, states and stages, after a restart; a
/// cancelled job stays cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_stay_listed_after_a_coordinator_restart() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 200, 5);
    let mut cluster = ProcessCluster::start(1).await;
    let client = cluster.client().await;
    let counts = word_count(&files);
    let first = client
        .submit_with(&counts, Sink::Collect, "first", Default::default())
        .await
        .unwrap();
    first.wait().await.unwrap();
    let second = client
        .submit_with(&counts, Sink::Collect, "second", Default::default())
        .await
        .unwrap();
    second.wait().await.unwrap();
    // No worker can run it: it stays queued until cancelled.
    cluster.kill_worker(0);
    let third = client
        .submit_with(&counts, Sink::Collect, "third", Default::default())
        .await
        .unwrap();
    assert!(third.cancel().await.unwrap());
    cluster.restart_coordinator();
    let listed = cluster.client().await.list_jobs().await.unwrap();
    let find = |id: &str| {
        listed
            .iter()
            .find(|j| j.job_id == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {listed:?}"))
    };
    assert_eq!(find(first.id()).name, "first");
    assert_eq!(find(first.id()).state, quiver::JobState::Succeeded);
    assert_eq!(find(second.id()).name, "second");
    assert_eq!(find(second.id()).state, quiver::JobState::Succeeded);
    assert!(!find(second.id()).stages.is_empty());
    assert_eq!(find(third.id()).state, quiver::JobState::Cancelled);
    // Where its results were is not durable: collecting them says so instead of giving nothing.
    let err = cluster
        .client()
        .await
        .job(first.id())
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("run the job again"), "{err}");
    // `quiver status` reads it too.
    let out = Command::new(binary("quiver"))
        .args(["--coordinator", &cluster.url, "status", first.id()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("succeeded"), "{out}");
}

/// A corrupt tail (garbage appended while the coordinator was down) is dropped with a warning;
/// the records before it are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_job_log_tail_is_dropped_and_the_intact_records_kept() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 100, 6);
    let mut cluster = ProcessCluster::start(1).await;
    let client = cluster.client().await;
    let job = client
        .submit_with(
            &word_count(&files),
            Sink::Collect,
            "kept",
            Default::default(),
        )
        .await
        .unwrap();
    job.wait().await.unwrap();
    cluster.kill_coordinator();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(cluster.job_log())
        .unwrap();
    log.write_all(b"\x20\x00\x00\x00garbage that is not a record")
        .unwrap();
    drop(log);
    cluster.start_coordinator_again();
    let listed = cluster.client().await.list_jobs().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|j| j.job_id == job.id() && j.name == "kept"),
        "{listed:?}"
    );
    assert!(cluster.all_running());
}

/// A coordinator stopped (SIGSTOP) for twice the heartbeat timeout, then continued, declares
/// no worker lost: the heartbeats it missed were its own fault. The job it was running
/// finishes with exact results and no task of it runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_stopped_for_twice_the_heartbeat_timeout_declares_no_worker_lost() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 4, 3000, 41);
    let cluster = ProcessCluster::start_with(2, &["--heartbeat-timeout", "2s"], &[]).await;
    let client = cluster.client().await;
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.signal_coordinator("STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.signal_coordinator("CONT");
    let done = tokio::time::timeout(Duration::from_secs(60), job.collect())
        .await
        .expect("the job finishes after the pause")
        .unwrap();
    assert_eq!(result_counts(&done), reference_counts(&files));
    // Give the coordinator two more timeouts: nobody was lost, then or since.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(crate::cluster::alive_workers(&client).await, 2);
    let log = cluster.coordinator_log();
    assert!(
        !log.iter().any(|l| l.contains("declaring it lost")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("was not running for a while")),
        "the pause is noticed: {log:#?}"
    );
}
