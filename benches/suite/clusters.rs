//! The cluster configurations a workload runs on: an in-process `LocalCluster`, a
//! coordinator and workers as separate processes (this binary re-executed in coordinator or
//! worker mode, through `quiver_benches::process_cluster`), each with `workers` workers of
//! `slots` slots, or a running cluster named by `--coordinator`; and their peak memory (of
//! the clusters the suite started).

use std::process::Child;
use std::time::Duration;

use anyhow::bail;
use quiver::{Client, LocalCluster};
use quiver_benches::process_cluster::ProcessCluster;

use crate::remote_cluster::{ClusterDescription, RemoteCluster, live_workers};

/// Where the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterKind {
    Local,
    Processes,
    /// Started by someone else, possibly on other hosts.
    Remote,
}

/// One configuration of the suite.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Config {
    pub kind: ClusterKind,
    /// Workers (of a remote cluster: those alive when the suite started).
    pub workers: usize,
    /// Task slots per worker; of a remote cluster, all its workers' slots together.
    pub slots: usize,
    /// Each worker's `--memory-limit` (not known for a remote cluster).
    pub memory_limit: Option<usize>,
}

impl Config {
    pub fn label(&self) -> String {
        match self.kind {
            ClusterKind::Local => format!("local {}×{}", self.workers, self.slots),
            ClusterKind::Processes => format!("processes {}×{}", self.workers, self.slots),
            ClusterKind::Remote => format!("remote {} workers, {} slots", self.workers, self.slots),
        }
    }
}

/// A started configuration.
pub enum BenchCluster {
    Local(LocalCluster),
    Processes(ProcessCluster),
    Remote(RemoteCluster),
}

impl BenchCluster {
    /// Starts `config` and waits for its workers.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let memory_limit = config.memory_limit.unwrap_or(usize::MAX);
        match config.kind {
            ClusterKind::Remote => bail!("a remote cluster is connected to, not started"),
            ClusterKind::Local => {
                reset_peak_rss(None);
                let cluster = LocalCluster::builder()
                    .workers(config.workers)
                    .slots_per_worker(config.slots)
                    .memory_limit(memory_limit)
                    .start()
                    .await?;
                Ok(BenchCluster::Local(cluster))
            }
            ClusterKind::Processes => {
                let (slots, memory) = (config.slots.to_string(), memory_limit.to_string());
                let cluster = ProcessCluster::start(
                    &["coordinator"],
                    config.workers,
                    |url| vec!["worker".into(), url.into(), slots.clone(), memory.clone()],
                    Duration::from_secs(30),
                )
                .await?;
                Ok(BenchCluster::Processes(cluster))
            }
        }
    }

    /// Starts peak-memory measurement afresh (before each workload).
    pub fn reset_peak_rss(&self) {
        match self {
            BenchCluster::Local(_) => reset_peak_rss(None),
            BenchCluster::Remote(_) => {}
            BenchCluster::Processes(c) => {
                for pid in
                    std::iter::once(c.coordinator.id()).chain(c.workers.iter().map(Child::id))
                {
                    reset_peak_rss(Some(pid));
                }
            }
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(match self {
            BenchCluster::Local(c) => c.client().await?,
            BenchCluster::Processes(c) => Client::connect(&c.url).await?,
            BenchCluster::Remote(c) => c.client().await?,
        })
    }

    /// The cluster as its coordinator reports it.
    pub async fn describe(
        &self,
        config: &Config,
        client: &Client,
    ) -> anyhow::Result<ClusterDescription> {
        Ok(ClusterDescription {
            label: config.label(),
            coordinator: match self {
                BenchCluster::Local(_) => "in process".into(),
                BenchCluster::Processes(c) => c.url.clone(),
                BenchCluster::Remote(c) => c.url.clone(),
            },
            workers: live_workers(client).await?,
        })
    }

    /// Peak resident memory so far: (coordinator, each worker) for processes; for a local
    /// cluster, the whole benchmark process as the "coordinator" and no separate workers;
    /// nothing for a remote cluster (its processes are elsewhere).
    pub fn peak_rss(&self) -> (u64, Vec<u64>) {
        match self {
            BenchCluster::Local(_) => (peak_rss(None), vec![]),
            BenchCluster::Remote(_) => (0, vec![]),
            BenchCluster::Processes(c) => (
                peak_rss(Some(c.coordinator.id())),
                c.workers.iter().map(|w| peak_rss(Some(w.id()))).collect(),
            ),
        }
    }

    pub async fn shutdown(self) {
        match self {
            BenchCluster::Local(c) => c.shutdown().await,
            BenchCluster::Processes(c) => drop(c),
            // Not ours to stop.
            BenchCluster::Remote(_) => {}
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
