//! The cluster configurations a workload runs on: an in-process `LocalCluster`, or a
//! coordinator and workers as separate processes (this binary re-executed in coordinator or
//! worker mode), each with `workers` workers of `slots` slots; and their peak memory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use quiver::{Client, LocalCluster};

/// Where the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterKind {
    Local,
    Processes,
}

/// One configuration of the suite.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Config {
    pub kind: ClusterKind,
    pub workers: usize,
    pub slots: usize,
    /// Each worker's `--memory-limit`.
    pub memory_limit: usize,
}

impl Config {
    pub fn label(&self) -> String {
        let kind = match self.kind {
            ClusterKind::Local => "local",
            ClusterKind::Processes => "processes",
        };
        format!("{kind} {}×{}", self.workers, self.slots)
    }
}

/// Child processes, killed when dropped (also when the suite fails halfway).
pub struct Children {
    coordinator: Child,
    workers: Vec<Child>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in self
            .workers
            .iter_mut()
            .chain(std::iter::once(&mut self.coordinator))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A started configuration.
pub enum BenchCluster {
    Local(LocalCluster),
    Processes { url: String, children: Children },
}

impl BenchCluster {
    /// Starts `config` and waits for its workers.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        match config.kind {
            ClusterKind::Local => {
                reset_peak_rss(None);
                let cluster = LocalCluster::builder()
                    .workers(config.workers)
                    .slots_per_worker(config.slots)
                    .memory_limit(config.memory_limit)
                    .start()
                    .await?;
                Ok(BenchCluster::Local(cluster))
            }
            ClusterKind::Processes => {
                let (coordinator, url) = spawn(&["coordinator"])?;
                let mut children = Children {
                    coordinator,
                    workers: Vec::new(),
                };
                for _ in 0..config.workers {
                    let (w, _) = spawn(&[
                        "worker",
                        &url,
                        &config.slots.to_string(),
                        &config.memory_limit.to_string(),
                    ])?;
                    children.workers.push(w);
                }
                let cluster = BenchCluster::Processes { url, children };
                let client = cluster.client().await?;
                let deadline = Instant::now() + Duration::from_secs(30);
                while client.list_workers().await?.len() < config.workers {
                    if Instant::now() > deadline {
                        bail!("workers did not register");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(cluster)
            }
        }
    }

    /// Starts peak-memory measurement afresh (before each workload).
    pub fn reset_peak_rss(&self) {
        match self {
            BenchCluster::Local(_) => reset_peak_rss(None),
            BenchCluster::Processes { children, .. } => {
                let Children {
                    coordinator,
                    workers,
                } = children;
                for pid in std::iter::once(coordinator.id()).chain(workers.iter().map(Child::id)) {
                    reset_peak_rss(Some(pid));
                }
            }
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(match self {
            BenchCluster::Local(c) => c.client().await?,
            BenchCluster::Processes { url, .. } => Client::connect(url).await?,
        })
    }

    /// Peak resident memory so far: (coordinator, each worker) for processes; for a local
    /// cluster, the whole benchmark process as the "coordinator" and no separate workers.
    pub fn peak_rss(&self) -> (u64, Vec<u64>) {
        match self {
            BenchCluster::Local(_) => (peak_rss(None), vec![]),
            BenchCluster::Processes { children, .. } => (
                peak_rss(Some(children.coordinator.id())),
                children
                    .workers
                    .iter()
                    .map(|w| peak_rss(Some(w.id())))
                    .collect(),
            ),
        }
    }

    pub async fn shutdown(self) {
        match self {
            BenchCluster::Local(c) => c.shutdown().await,
            BenchCluster::Processes { children, .. } => drop(children),
        }
    }
}

/// `VmHWM` of a process (this one for `None`), in bytes.
fn peak_rss(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets a process's peak RSS to its current RSS (Linux `clear_refs`).
fn reset_peak_rss(pid: Option<u32>) {
    let path = match pid {
        Some(p) => format!("/proc/{p}/clear_refs"),
        None => "/proc/self/clear_refs".into(),
    };
    let _ = std::fs::write(path, "5");
}

/// Starts this binary in `args` mode; returns it and the URL it prints.
fn spawn(args: &[&str]) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().context("child exited")??;
    std::thread::spawn(move || for _ in lines {});
    Ok((
        child,
        line.rsplit(' ').next().unwrap_or_default().to_string(),
    ))
}

/// The child modes: a coordinator or a worker, printing `listening on URL`.
pub async fn run_child(mode: &[String]) -> anyhow::Result<()> {
    match mode {
        [m] if m == "coordinator" => {
            let c = quiver_coordinator::start(quiver_coordinator::CoordinatorConfig {
                bind: "127.0.0.1:0".parse()?,
                dashboard: None,
                ..Default::default()
            })
            .await?;
            println!("listening on {}", c.url());
            // Serve until killed (dropping the handle would stop the coordinator).
            std::future::pending::<()>().await;
        }
        [m, url, slots, memory] if m == "worker" => {
            let w = quiver_worker::start(quiver_worker::WorkerConfig {
                coordinator_url: url.clone(),
                slots: slots.parse()?,
                memory_limit: memory.parse()?,
                ..Default::default()
            })
            .await?;
            println!("listening on {}", w.address());
            std::future::pending::<()>().await;
        }
        other => bail!("unknown child mode {other:?}"),
    }
    Ok(())
}
