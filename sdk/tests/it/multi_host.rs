//! "Several machines" on one: the coordinator and each worker bound to its own loopback
//! address (Linux routes all of 127.0.0.0/8 to `lo`), each worker with its own work directory,
//! so that every address a process advertises, and every dial between them, is checked as it
//! would be across hosts. (The driver dials from the default source address: the client has
//! no flag to choose its own.)

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use quiver::prelude::*;

use crate::cluster::{alive_workers, binary, spawn_and_read};
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::wordcount::word_count;

/// Kills the processes when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether this host lets a process bind 127.0.0.2 (Linux does; some others do not).
fn extra_loopback_addresses() -> bool {
    match std::net::TcpListener::bind("127.0.0.2:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: cannot bind 127.0.0.2 on this host ({e})");
            false
        }
    }
}

/// A coordinator on 127.0.0.2 and two workers on 127.0.0.3 and 127.0.0.4 (the second told
/// its address with `--advertise-addr`), each with its own work directory.
async fn start(work: &std::path::Path) -> (Processes, String) {
    let mut cmd = Command::new(binary("quiver-coordinator"));
    cmd.args([
        "--bind",
        "127.0.0.2:0",
        "--dashboard-bind",
        "off",
        "--state-dir",
        "none",
        "--heartbeat-timeout",
        "2",
    ])
    .env("RUST_LOG", "warn");
    let (coordinator, line, _, _) = spawn_and_read(cmd, "listening on");
    let url = line.rsplit(' ').next().expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.2:"), "{url}");
    let mut processes = Processes(vec![coordinator]);
    for (i, extra) in [
        ("127.0.0.3", vec![]),
        ("127.0.0.4", vec!["--advertise-addr", "127.0.0.4"]),
    ]
    .iter()
    .enumerate()
    {
        let (ip, extra) = extra;
        let mut cmd = Command::new(binary("quiver-worker"));
        cmd.args(["--coordinator", &url, "--slots", "1", "--bind"])
            .arg(format!("{ip}:0"))
            .args(extra)
            .arg("--work-dir")
            .arg(work.join(format!("w{i}")))
            .env("RUST_LOG", "warn");
        let (worker, line, _, _) = spawn_and_read(cmd, "listening on");
        assert!(line.contains(&format!("http://{ip}:")), "{line}");
        processes.0.push(worker);
    }
    let client = Client::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive_workers(&client).await < 2 {
        assert!(Instant::now() < deadline, "the workers did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workers = client.list_workers().await.unwrap();
    let mut addresses: Vec<_> = workers.iter().map(|w| w.address.clone()).collect();
    addresses.sort();
    assert!(
        addresses[0].starts_with("http://127.0.0.3:")
            && addresses[1].starts_with("http://127.0.0.4:"),
        "{addresses:?}"
    );
    (processes, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_across_processes_on_separate_loopback_addresses() {
    if !extra_loopback_addresses() {
        return;
    }
    let input = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = write_corpus(input.path(), 4, 3000, 61);
    let (_processes, url) = start(work.path()).await;
    let client = Client::connect(&url).await.unwrap();
    let got = result_counts(&word_count(&files).collect(&client).await.unwrap());
    assert_eq!(got, reference_counts(&files));
    let workers = client.list_workers().await.unwrap();
    assert!(workers.iter().all(|w| w.tasks_completed > 0), "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_on_separate_loopback_addresses_survives_a_worker_kill() {
    if !extra_loopback_addresses() {
        return;
    }
    let input = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = write_corpus(input.path(), 4, 30_000, 62);
    let (mut processes, url) = start(work.path()).await;
    let client = Client::connect(&url).await.unwrap();
    let job = client
        .submit(&word_count(&files), Sink::Collect)
        .await
        .unwrap();
    // kill -9 of the worker on 127.0.0.3 once the job has done some of its work.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = job.status().await.unwrap();
        assert!(!p.state.is_terminal(), "the job finished first: {p:?}");
        if p.stages.iter().any(|s| s.tasks_done > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    processes.0[1].kill().unwrap();
    let _ = processes.0[1].wait();
    let batches = tokio::time::timeout(Duration::from_secs(120), job.collect())
        .await
        .expect("the job finishes on the surviving worker")
        .unwrap();
    assert_eq!(result_counts(&batches), reference_counts(&files));
}
