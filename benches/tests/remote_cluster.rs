//! The suite against a cluster it did not start: a coordinator and two workers (the real
//! `quiver-coordinator` and `quiver-worker` binaries, with a token), and the suite's data on a
//! real S3 server (moto). It checks what the suite reports about the cluster and its data, that
//! a second run reuses the data its manifest describes, and that a result differing from the
//! yardstick's stops the suite.
//!
//! Needs the workspace's binaries built (`cargo build --bins`, or `cargo test --workspace`);
//! skips when moto is not installed, unless `QUIVER_REQUIRE_S3_SERVER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use quiver_storage::object_store::ObjectStore;
use quiver_storage::{Location, ObjectStores, S3TestServer, block_on};
use serde_json::Value;

const TOKEN: &str = "bench-test-token-0123456789abcdef";
const DATA: &str = "s3://bench/quiver-bench/";

/// A binary of this workspace, next to the suite.
fn binary(name: &str) -> PathBuf {
    let suite = Path::new(env!("CARGO_BIN_EXE_suite"));
    let path = suite.parent().expect("target dir").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// Child processes, killed when dropped.
#[derive(Default)]
struct Processes(Vec<Child>);

impl Processes {
    /// Starts `command` and returns the last word of the line it prints with
    /// `listening on` (its URL).
    fn start(&mut self, mut command: Command) -> String {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        self.0.push(child);
        let line = loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break l,
                Some(Ok(_)) => {}
                _ => panic!("{command:?} exited before it listened"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        line.rsplit(' ').next().expect("a URL").to_string()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until the coordinator lists `n` workers.
fn wait_for_workers(url: &str, token: &Path, n: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let options = quiver::ClientOptions::new().token_file(token);
        let client = quiver::Client::connect_with(url, options)
            .await
            .expect("coordinator answers");
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.list_workers().await.expect("ListWorkers").len() < n {
            assert!(Instant::now() < deadline, "{n} workers did not register");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// Runs the suite against `url` with the S3 server's environment and the token (without
/// DuckDB: CI installs no Python packages for it).
fn suite(server: &S3TestServer, token: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_suite"))
        .args([
            "--no-duckdb",
            "--coordinator",
            url,
            "--data",
            DATA,
            "--scale",
            "0.0002",
            "--runs",
            "1",
        ])
        .args(["--files", "2"])
        .args(args)
        .envs(server.env())
        .env("QUIVER_TOKEN_FILE", token)
        .env_remove("QUIVER_TOKEN")
        .env("RUST_LOG", "error")
        .output()
        .expect("the suite starts")
}

fn report(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("suite.json")).expect("suite.json");
    serde_json::from_str(&text).expect("suite.json is JSON")
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The input objects (not the terasort scratch output) with their times of writing and sizes
/// (the data is deterministic: only the time shows that an object was written again).
fn inputs(server: &S3TestServer) -> BTreeMap<String, (String, u64)> {
    let location = Location::parse(DATA).unwrap();
    let store = ObjectStores::new()
        .store(&location, &server.options())
        .unwrap();
    let prefix = location.object_path().clone();
    let metas: Vec<_> = block_on(async move { store.list(Some(&prefix)).try_collect().await })
        .expect("listing the bucket");
    metas
        .into_iter()
        .filter(|m| !m.location.as_ref().contains("_scratch"))
        .map(|m| {
            (
                m.location.to_string(),
                (m.last_modified.to_rfc3339(), m.size),
            )
        })
        .collect()
}

#[test]
fn the_suite_benchmarks_a_running_cluster_with_its_data_on_s3() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("bench");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let token_arg = token.display().to_string();

    // The cluster: started apart from the suite, as an operator would.
    let mut processes = Processes::default();
    let mut coordinator = Command::new(binary("quiver-coordinator"));
    coordinator
        .args(["--bind", "127.0.0.1:0", "--dashboard-bind", "127.0.0.1:0"])
        .args(["--token-file", &token_arg, "--state-dir"])
        .arg(dir.path().join("state"))
        .envs(server.env())
        .env("RUST_LOG", "warn");
    let url = processes.start(coordinator);
    for i in 0..2 {
        let mut worker = Command::new(binary("quiver-worker"));
        worker
            .args([
                "--coordinator",
                &url,
                "--slots",
                "1",
                "--token-file",
                &token_arg,
            ])
            .arg("--work-dir")
            .arg(dir.path().join(format!("worker-{i}")))
            .envs(server.env())
            .env("RUST_LOG", "warn");
        processes.start(worker);
    }
    wait_for_workers(&url, &token, 2);

    // First run: every workload; the data is generated and uploaded.
    let out1 = dir.path().join("out1");
    let cache1 = dir.path().join("cache1");
    let first = suite(
        &server,
        &token,
        &url,
        &[
            "--out",
            &out1.display().to_string(),
            "--cache",
            &cache1.display().to_string(),
        ],
    );
    assert!(first.status.success(), "{}", text(&first));
    let r = report(&out1);
    let clusters = r["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "only the remote cluster: {r}");
    assert_eq!(clusters[0]["coordinator"], url.as_str());
    let workers = clusters[0]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{r}");
    for w in workers {
        assert_eq!(w["slots"], 1);
        assert!(!w["hostname"].as_str().unwrap().is_empty());
    }
    let measurements = r["measurements"].as_array().unwrap();
    let names: Vec<&str> = measurements
        .iter()
        .map(|m| m["workload"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["wordcount", "grep", "terasort", "tpch-q1", "join"],
        "{r}"
    );
    for m in measurements {
        assert_eq!(m["label"], "remote 2 workers, 2 slots");
        assert_eq!(m["matched_yardstick"], true);
        assert!(!m["stages"].as_array().unwrap().is_empty(), "{m}");
        let per_worker: Vec<u64> = m["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["tasks"].as_u64().unwrap())
            .collect();
        let per_stage: u64 = m["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["tasks"].as_u64().unwrap())
            .sum();
        assert_eq!(per_worker.len(), 2, "{m}");
        // Every task finished once, on one of the two workers.
        assert_eq!(per_worker.iter().sum::<u64>(), per_stage, "{m}");
        let sum = |list: &str, field: &str| -> u64 {
            m[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x[field].as_u64().unwrap())
                .sum()
        };
        // The per-worker figures add up to the per-stage ones the coordinator reported.
        for field in ["shuffle_written", "shuffle_read", "shuffle_fetched"] {
            assert_eq!(sum("workers", field), sum("stages", field), "{field}: {m}");
        }
        assert!(sum("stages", "shuffle_fetched") <= sum("stages", "shuffle_read"));
        let busy: f64 = m["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["busy_s"].as_f64().unwrap())
            .sum();
        assert!(busy > 0.0, "{m}");
    }
    // Word count's reducers read exactly what its map stage wrote to the shuffle.
    let wordcount = &measurements[0]["stages"];
    assert!(wordcount[0]["shuffle_written"].as_u64().unwrap() > 0);
    assert_eq!(
        wordcount[1]["shuffle_read"], wordcount[0]["shuffle_written"],
        "{wordcount}"
    );
    for y in r["yardsticks"].as_array().unwrap() {
        assert_eq!(y["host"], r["driver_host"]);
    }
    let data = r["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{r}");
    for d in data {
        assert_eq!(d["generated"], true, "{d}");
        assert!(d["location"].as_str().unwrap().starts_with(DATA), "{d}");
    }
    let uploaded = inputs(&server);
    assert!(uploaded.keys().any(|k| k.ends_with("text/_manifest.json")));
    assert!(
        uploaded
            .keys()
            .any(|k| k.ends_with("tpch/lineitem/part-00000.parquet"))
    );

    // Second run, with an empty cache: the data is reused (its manifest matches), not
    // generated again, and copied down for the yardsticks.
    let out2 = dir.path().join("out2");
    let cache2 = dir.path().join("cache2");
    let second = suite(
        &server,
        &token,
        &url,
        &[
            "--workloads",
            "wordcount,terasort,tpch-q1",
            "--out",
            &out2.display().to_string(),
            "--cache",
            &cache2.display().to_string(),
        ],
    );
    assert!(second.status.success(), "{}", text(&second));
    let r = report(&out2);
    for d in r["data"].as_array().unwrap() {
        assert_eq!(d["generated"], false, "{d}");
        assert_eq!(d["downloaded"], true, "{d}");
    }
    assert_eq!(inputs(&server), uploaded, "the second run rewrote inputs");

    // A yardstick that computes something else (its local copy altered, same size) stops the
    // suite, naming the workload, the cluster and the difference.
    let victim = cache2.join("text/part-000.txt");
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.iter().position(u8::is_ascii_lowercase).unwrap();
    bytes[at] = if bytes[at] == b'q' { b'z' } else { b'q' };
    std::fs::write(&victim, bytes).unwrap();
    let third = suite(
        &server,
        &token,
        &url,
        &[
            "--workloads",
            "wordcount",
            "--out",
            &dir.path().join("out3").display().to_string(),
            "--cache",
            &cache2.display().to_string(),
        ],
    );
    assert!(!third.status.success(), "{}", text(&third));
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(
        stderr.contains("wordcount on remote 2 workers, 2 slots: result differs")
            && stderr.contains("yardstick"),
        "{}",
        text(&third)
    );
}
