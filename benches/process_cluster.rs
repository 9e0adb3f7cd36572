//! [`ProcessCluster`]: a coordinator and workers, each the running benchmark binary started
//! again in a child mode of its own, killed when the cluster is dropped (also when a
//! benchmark fails halfway).
//!
//! A child prints one line ending in its URL once it serves; that is how the parent learns
//! the coordinator's address.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use quiver::Client;

/// Child processes of one cluster.
pub struct ProcessCluster {
    pub url: String,
    pub coordinator: Child,
    pub workers: Vec<Child>,
}

impl ProcessCluster {
    /// Starts this binary with `coordinator_args`, then `workers` times with the arguments
    /// `worker_args` gives for the coordinator's URL, and waits (at most `register_within`)
    /// until every worker has registered.
    pub async fn start(
        coordinator_args: &[&str],
        workers: usize,
        worker_args: impl Fn(&str) -> Vec<String>,
        register_within: Duration,
    ) -> anyhow::Result<Self> {
        let (coordinator, url) = spawn_self(coordinator_args)?;
        let mut cluster = ProcessCluster {
            url,
            coordinator,
            workers: Vec::new(),
        };
        for _ in 0..workers {
            let args = worker_args(&cluster.url);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (w, _) = spawn_self(&args)?;
            cluster.workers.push(w);
        }
        let client = Client::connect(&cluster.url).await?;
        let deadline = Instant::now() + register_within;
        while client.list_workers().await?.len() < workers {
            if Instant::now() > deadline {
                bail!("workers did not register");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(cluster)
    }
}

impl Drop for ProcessCluster {
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

/// Starts this binary with `args`; returns it and the last word of the first line it prints.
pub fn spawn_self(args: &[&str]) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().context("child exited")??;
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((
        child,
        line.rsplit(' ').next().unwrap_or_default().to_string(),
    ))
}
