//! The real binaries, as users run them: a coordinator and two workers in separate processes,
//! and the CLI against them.

use std::process::Command;

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
        page.contains("Quiver coordinator") && page.contains(job.id()),
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
