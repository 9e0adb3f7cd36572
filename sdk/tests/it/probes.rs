//! The endpoints probes use (Kubernetes `httpGet`): the coordinator's `/healthz` needs no token,
//! and a worker's `/readyz` follows its registration and its drain.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{ProcessCluster, binary, http_get, spawn_and_read};

/// Polls `url` + `path` until its answer contains `expected`.
async fn wait_for_answer(base: &str, path: &str, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = http_get(base, path, None);
        if answer.contains(expected) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{base}{path} never answered {expected:?}; last: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_follow_registration_and_drain() {
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "0123456789abcdef0123456789abcdef\n").unwrap();
    let token_path = token.path().display().to_string();
    let cluster = ProcessCluster::start_secured(
        0,
        &["--token-file", &token_path],
        &[],
        quiver::ClientOptions::new().token_file(token.path()),
    )
    .await;
    // No token needed for /healthz; the dashboard page still needs one.
    let healthz = http_get(&cluster.dashboard, "/healthz", None);
    assert!(
        healthz.starts_with("HTTP/1.1 200") && healthz.ends_with("ok\n"),
        "{healthz}"
    );
    // Every page, event stream and asset of the dashboard needs it.
    for path in [
        "/",
        "/jobs",
        "/jobs/3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b",
        "/workers",
        "/events/jobs",
        "/assets/live.js",
        "/metrics",
    ] {
        let answer = http_get(&cluster.dashboard, path, None);
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
    let token_auth = "Bearer 0123456789abcdef0123456789abcdef";
    let jobs = http_get(&cluster.dashboard, "/jobs", Some(token_auth));
    assert!(jobs.starts_with("HTTP/1.1 200"), "{jobs}");
    let unknown = http_get(
        &cluster.dashboard,
        "/jobs/3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b",
        Some(token_auth),
    );
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");

    let work = tempfile::tempdir().unwrap();
    let (mut worker, health) = spawn_worker(&cluster.url, &token_path, work.path());
    assert!(http_get(&health, "/healthz", None).starts_with("HTTP/1.1 200"));
    wait_for_answer(&health, "/readyz", "HTTP/1.1 200").await;
    // The worker's metrics, on the same address, need its token.
    assert!(http_get(&health, "/metrics", None).starts_with("HTTP/1.1 401"));
    let wrong = http_get(&health, "/metrics", Some("Bearer not-the-token"));
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let metrics = http_get(&health, "/metrics", Some(token_auth));
    assert!(
        metrics.starts_with("HTTP/1.1 200")
            && metrics.contains("\nquiver_worker_registered 1\n")
            && metrics.contains("\nquiver_worker_slots 1\n"),
        "{metrics}"
    );

    // Draining (SIGTERM) while the coordinator cannot release it: not ready, still live.
    cluster.signal_coordinator("STOP");
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let answer = wait_for_answer(&health, "/readyz", "HTTP/1.1 503").await;
    assert!(answer.ends_with("draining\n"), "{answer}");
    assert!(http_get(&health, "/healthz", None).starts_with("HTTP/1.1 200"));
    cluster.signal_coordinator("CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the drained worker did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A second signal (Ctrl-C) while draining stops a worker at once, released or not.
    let work = tempfile::tempdir().unwrap();
    let (mut second, health) = spawn_worker(&cluster.url, &token_path, work.path());
    wait_for_answer(&health, "/readyz", "HTTP/1.1 200").await;
    cluster.signal_coordinator("STOP");
    let pid = second.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for_answer(&health, "/readyz", "HTTP/1.1 503").await;
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-C did not stop a draining worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.signal_coordinator("CONT");
}

/// Starts a worker with a health endpoint; returns it and the endpoint's URL.
fn spawn_worker(
    url: &str,
    token_path: &str,
    work: &std::path::Path,
) -> (std::process::Child, String) {
    let mut cmd = Command::new(binary("quiver-worker"));
    cmd.args(["--coordinator", url, "--slots", "1"])
        .args(["--token-file", token_path, "--health-bind", "127.0.0.1:0"])
        .arg("--work-dir")
        .arg(work)
        .env("RUST_LOG", "warn");
    let (worker, _, before, _) = spawn_and_read(cmd, "listening on");
    let health = before
        .iter()
        .find(|l| l.contains("health endpoint on"))
        .and_then(|l| l.split(' ').find(|w| w.starts_with("http://")))
        .expect("health endpoint line")
        .to_string();
    (worker, health)
}
