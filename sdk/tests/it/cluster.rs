//! The one cluster helper every test uses: an in-process [`LocalCluster`], or real binaries
//! started as separate processes ([`ProcessCluster`]).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver::{Client, ClientOptions, LocalCluster};

/// A local cluster of `workers` workers with one slot each.
pub async fn local(workers: usize) -> LocalCluster {
    LocalCluster::builder()
        .workers(workers)
        .slots_per_worker(1)
        .start()
        .await
        .expect("local cluster starts")
}

/// Where cargo put this workspace's binaries: next to the test executable's `deps/` folder.
/// `cargo test --workspace` builds them, because the coordinator, worker and CLI crates have
/// integration tests of their own.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace --bins`) first",
        path.display()
    );
    path
}

/// What a process printed after its start line, collected while it runs.
pub type OutputLines = Arc<Mutex<Vec<String>>>;

/// Starts `program` and returns it with the first line it prints that contains `marker`
/// (the binaries print their listening address on start), the lines before it, and the lines
/// it prints later on stdout or logs on stderr.
pub fn spawn_and_read(
    mut command: Command,
    marker: &str,
) -> (Child, String, Vec<String>, OutputLines) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    // The logs (stderr), from the start, so that the child never blocks on a full pipe.
    let later = OutputLines::default();
    let sink = later.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(l);
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut before = Vec::new();
    let line = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(marker) => break l,
            Some(Ok(l)) => before.push(l),
            _ => panic!("process exited before printing {marker:?}"),
        }
    };
    // Keep draining stdout too; what it prints later joins the logs.
    let sink = later.clone();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(l);
        }
    });

    (child, line, before, later)
}

/// A coordinator and workers, each its own OS process.
pub struct ProcessCluster {
    pub url: String,
    /// The coordinator's dashboard, e.g. `http://127.0.0.1:41234`.
    pub dashboard: String,
    coordinator: Child,
    /// What the coordinator logged (at `warn` and above) since it started.
    coordinator_log: OutputLines,
    coordinator_args: Vec<String>,
    worker_args: Vec<String>,
    workers: Vec<Child>,
    work_dir: tempfile::TempDir,
    /// The coordinator's `--state-dir` (its own, never the per-user default: tests run in
    /// parallel), unless the test passed one.
    state_dir: tempfile::TempDir,
    /// How clients connect (the token and TLS settings the cluster was started with).
    client_options: ClientOptions,
    /// Environment variables every process of the cluster gets (e.g. object store
    /// credentials).
    env: Vec<(String, String)>,
}

/// Starts a coordinator binary; returns it, its URL, its dashboard URL and its later output.
fn spawn_coordinator(
    bind: &str,
    args: &[String],
    env: &[(String, String)],
) -> (Child, String, String, OutputLines) {
    let mut cmd = Command::new(binary("quiver-coordinator"));
    cmd.args(["--bind", bind, "--dashboard-bind", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn");
    let (child, line, before, later) = spawn_and_read(cmd, "listening on");
    let dashboard = before
        .iter()
        .find(|l| l.contains("dashboard"))
        .and_then(|l| l.rsplit(' ').next())
        .expect("dashboard line")
        .to_string();
    (
        child,
        line.rsplit(' ').next().expect("url").to_string(),
        dashboard,
        later,
    )
}

impl ProcessCluster {
    /// Starts `quiver-coordinator` on a free port and `workers` `quiver-worker`s of 1 slot.
    pub async fn start(workers: usize) -> Self {
        Self::start_with(workers, &[], &[]).await
    }

    /// Like [`ProcessCluster::start`], with extra flags for the coordinator and the workers.
    pub async fn start_with(
        workers: usize,
        coordinator_args: &[&str],
        worker_args: &[&str],
    ) -> Self {
        Self::start_secured(workers, coordinator_args, worker_args, ClientOptions::new()).await
    }

    /// Like [`ProcessCluster::start_with`], for a cluster that needs `client_options` (a token,
    /// TLS) from its clients.
    pub async fn start_secured(
        workers: usize,
        coordinator_args: &[&str],
        worker_args: &[&str],
        client_options: ClientOptions,
    ) -> Self {
        Self::start_full(
            workers,
            coordinator_args,
            worker_args,
            client_options,
            vec![],
        )
        .await
    }

    /// Like [`ProcessCluster::start`], with `env` set for every process (the coordinator's
    /// restarts too).
    pub async fn start_in_env(workers: usize, env: Vec<(String, String)>) -> Self {
        Self::start_full(workers, &[], &[], ClientOptions::new(), env).await
    }

    async fn start_full(
        workers: usize,
        coordinator_args: &[&str],
        worker_args: &[&str],
        client_options: ClientOptions,
        env: Vec<(String, String)>,
    ) -> Self {
        let mut coordinator_args: Vec<String> =
            coordinator_args.iter().map(|s| s.to_string()).collect();
        let state_dir = tempfile::tempdir().expect("temp dir");
        if !coordinator_args
            .iter()
            .any(|a| a.starts_with("--state-dir"))
        {
            coordinator_args.push("--state-dir".into());
            coordinator_args.push(state_dir.path().display().to_string());
        }
        let (coordinator, url, dashboard, coordinator_log) =
            spawn_coordinator("127.0.0.1:0", &coordinator_args, &env);
        let mut cluster = ProcessCluster {
            url,
            dashboard,
            coordinator,
            coordinator_log,
            coordinator_args,
            worker_args: worker_args.iter().map(|s| s.to_string()).collect(),
            workers: vec![],
            work_dir: tempfile::tempdir().expect("temp dir"),
            state_dir,
            client_options,
            env,
        };
        for _ in 0..workers {
            cluster.add_worker();
        }
        cluster.wait_for_workers(workers).await;
        cluster
    }

    /// The work directory of worker `i` (each worker has its own: a worker locks it).
    pub fn worker_work_dir(&self, i: usize) -> PathBuf {
        self.work_dir.path().join(format!("w{i}"))
    }

    /// Starts one more worker process; returns its index.
    pub fn add_worker(&mut self) -> usize {
        let mut cmd = Command::new(binary("quiver-worker"));
        cmd.args(["--coordinator", &self.url, "--slots", "1", "--work-dir"])
            .arg(self.worker_work_dir(self.workers.len()))
            .args(&self.worker_args)
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", "warn");
        let (child, _, _, _) = spawn_and_read(cmd, "listening on");
        self.workers.push(child);
        self.workers.len() - 1
    }

    /// What the running coordinator has logged since it started (warnings and errors).
    pub fn coordinator_log(&self) -> Vec<String> {
        self.coordinator_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the coordinator.
    pub fn signal_coordinator(&self, signal: &str) {
        send_signal(&self.coordinator, signal);
    }

    /// The coordinator's job log (when the test did not choose a `--state-dir`).
    pub fn job_log(&self) -> PathBuf {
        self.state_dir.path().join("jobs.log")
    }

    /// kill -9 of the coordinator (and nothing else).
    pub fn kill_coordinator(&mut self) {
        let _ = self.coordinator.kill();
        let _ = self.coordinator.wait();
    }

    /// Kills the coordinator (SIGKILL) and starts a new one on the same address.
    pub fn restart_coordinator(&mut self) {
        self.kill_coordinator();
        self.start_coordinator_again();
    }

    /// Starts a coordinator again on the address of the one that was killed.
    pub fn start_coordinator_again(&mut self) {
        let bind = self.url.trim_start_matches("http://").to_string();
        let (child, url, dashboard, log) =
            spawn_coordinator(&bind, &self.coordinator_args, &self.env);
        self.coordinator_log = log;
        assert_eq!(url, self.url);
        self.coordinator = child;
        self.dashboard = dashboard;
    }

    /// kill -9 of worker `i`.
    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i].kill().expect("kill worker");
        let _ = self.workers[i].wait();
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`) to worker `i`.
    pub fn signal_worker(&self, i: usize, signal: &str) {
        send_signal(&self.workers[i], signal);
    }

    /// Waits up to `timeout` for worker `i` to exit by itself; its exit status, if it did.
    pub async fn wait_for_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.workers[i].try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// A client of the coordinator.
    pub async fn client(&self) -> Client {
        self.client_with(self.client_options.clone()).await
    }

    /// A client of the coordinator with `options` (they must carry the cluster's credentials).
    pub async fn client_with(&self, options: ClientOptions) -> Client {
        Client::connect_with(&self.url, options)
            .await
            .expect("coordinator answers")
    }

    /// Whether the coordinator and every worker are still running.
    pub fn all_running(&mut self) -> bool {
        self.coordinator.try_wait().expect("try_wait").is_none()
            && self
                .workers
                .iter_mut()
                .all(|w| w.try_wait().expect("try_wait").is_none())
    }

    /// Waits until `n` workers are alive.
    pub async fn wait_for_workers(&self, n: usize) {
        let client = self.client().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let alive = alive_workers(&client).await;
            if alive >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{alive} of {n} workers alive"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.coordinator.kill();
        let _ = self.coordinator.wait();
    }
}

/// How many workers the coordinator believes alive.
pub async fn alive_workers(client: &Client) -> usize {
    client
        .list_workers()
        .await
        .expect("ListWorkers")
        .iter()
        .filter(|w| w.state == quiver_proto::v1::WorkerState::Alive as i32)
        .count()
}

/// A plain HTTP/1.1 GET with no client library (what any scraper does), with an optional
/// `authorization` header; the status line, headers and body.
pub fn http_get(base: &str, path: &str, authorization: Option<&str>) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Sends `signal` (e.g. `STOP`, `CONT`, `TERM`) to `child` with kill(1).
fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill command");
    assert!(status.success());
}
