//! "Several machines" on one: the coordinator, each worker and the driver bound to its own
//! loopback address (Linux routes all of 127.0.0.0/8 to `lo`), each worker with its own work
//! directory, and every input and output on an S3 server (a real moto process), so that
//! nothing is shared but the network: every address a process advertises, and every dial
//! between them, is checked as it would be across hosts.

use std::net::IpAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use quiver::prelude::*;
use quiver::{ClientOptions, Sources};
use quiver_storage::S3TestServer;

use crate::cluster::{alive_workers, binary, spawn_and_read};
use crate::corpus::{assert_committed, counts_in_parquet_objects, reference_counts, write_corpus};
use crate::wordcount::word_count_of;

/// The driver's own address.
const DRIVER: &str = "127.0.0.5";

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
/// its address with `--advertise-addr`), each with its own work directory and `s3`'s
/// credentials in its environment; and a client dialing from [`DRIVER`].
async fn start(work: &std::path::Path, s3: Option<&S3TestServer>) -> (Processes, String, Client) {
    let s3_env = s3.map(S3TestServer::env).unwrap_or_default();
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
    .envs(s3_env.clone())
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
            .envs(s3_env.clone())
            .env("RUST_LOG", "warn");
        let (worker, line, _, _) = spawn_and_read(cmd, "listening on");
        assert!(line.contains(&format!("http://{ip}:")), "{line}");
        processes.0.push(worker);
    }
    let driver: IpAddr = DRIVER.parse().unwrap();
    let client = Client::connect_with(&url, ClientOptions::new().source_address(driver))
        .await
        .unwrap();
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
    // The driver's connection to the coordinator comes from its own address.
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        tcp_connection_exists(
            DRIVER,
            std::net::SocketAddrV4::new([127, 0, 0, 2].into(), port)
        ),
        "no connection from {DRIVER} to {url}"
    );
    (processes, url, client)
}

/// Whether an established TCP connection from `local` (any port) to `remote` is listed in
/// /proc/net/tcp (addresses there are little-endian hex).
fn tcp_connection_exists(local: &str, remote: std::net::SocketAddrV4) -> bool {
    let hex = |ip: std::net::Ipv4Addr| {
        let o = ip.octets();
        format!("{:02X}{:02X}{:02X}{:02X}", o[3], o[2], o[1], o[0])
    };
    let local = hex(local.parse().unwrap());
    let remote = format!("{}:{:04X}", hex(*remote.ip()), remote.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 3 && f[1].starts_with(&local) && f[2] == remote && f[3] == "01"
        })
}

/// The corpus in `bucket` under `corpus/`, and word count over it read from there.
fn corpus_in_bucket(s3: &S3TestServer, bucket: &str, files: &[std::path::PathBuf]) -> Dataset {
    s3.create_bucket(bucket);
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy();
        s3.put(
            &format!("s3://{bucket}/corpus/{name}"),
            std::fs::read(f).unwrap(),
        );
    }
    let lines = Sources::with_storage(s3.options())
        .read_text(&[format!("s3://{bucket}/corpus/")])
        .unwrap();
    word_count_of(lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_across_processes_on_separate_loopback_addresses() {
    if !extra_loopback_addresses() {
        return;
    }
    let input = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = write_corpus(input.path(), 4, 3000, 61);
    // With an S3 server, input and output are in a bucket; without one, the same run on local
    // files still checks every address.
    let s3 = S3TestServer::start();
    let (_processes, _url, client) = start(work.path(), s3.as_ref()).await;
    match &s3 {
        Some(s3) => {
            let options = quiver::JobOptions {
                shuffle_partitions: Some(4),
                ..Default::default()
            };
            let sink = Sink::WriteParquet {
                directory: "s3://hosts/counts".into(),
                mode: WriteMode::ErrorIfExists,
            };
            client
                .submit_with(&corpus_in_bucket(s3, "hosts", &files), sink, "wc", options)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap();
            let written = assert_committed(s3, "s3://hosts/counts", 4);
            assert_eq!(
                counts_in_parquet_objects(&written),
                reference_counts(&files)
            );
        }
        None => {
            let batches = crate::wordcount::word_count(&files)
                .collect(&client)
                .await
                .unwrap();
            assert_eq!(
                crate::corpus::result_counts(&batches),
                reference_counts(&files)
            );
        }
    }
    let workers = client.list_workers().await.unwrap();
    assert!(workers.iter().all(|w| w.tasks_completed > 0), "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_on_separate_loopback_addresses_survives_a_worker_kill() {
    if !extra_loopback_addresses() {
        return;
    }
    let Some(s3) = S3TestServer::start() else {
        return;
    };
    let input = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = write_corpus(input.path(), 4, 30_000, 62);
    let (mut processes, _url, client) = start(work.path(), Some(&s3)).await;
    let options = quiver::JobOptions {
        shuffle_partitions: Some(4),
        ..Default::default()
    };
    let sink = Sink::WriteParquet {
        directory: "s3://killed/counts".into(),
        mode: WriteMode::ErrorIfExists,
    };
    let job = client
        .submit_with(
            &corpus_in_bucket(&s3, "killed", &files),
            sink,
            "wc",
            options,
        )
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
    tokio::time::timeout(Duration::from_secs(120), job.wait())
        .await
        .expect("the job finishes on the surviving worker")
        .unwrap();
    let written = assert_committed(&s3, "s3://killed/counts", 4);
    assert_eq!(
        counts_in_parquet_objects(&written),
        reference_counts(&files)
    );
}
