//! The worker's command line, shared by `quiver-worker` and by users' own binaries that act as
//! workers with their own functions (through the SDK's worker entry point).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::error::{Result, WorkerError};
use crate::functions::FunctionRegistry;
use crate::process::{WorkerConfig, start};

/// A Quiver worker.
#[derive(Parser, Debug, Clone)]
#[command(name = "quiver-worker", version, about)]
pub struct WorkerArgs {
    /// The coordinator's URL.
    #[arg(
        long,
        env = "QUIVER_COORDINATOR",
        default_value = "http://127.0.0.1:50050"
    )]
    pub coordinator: String,
    /// Concurrent tasks; defaults to the number of CPU cores.
    #[arg(long, env = "QUIVER_SLOTS")]
    pub slots: Option<usize>,
    /// Directory for shuffle files.
    #[arg(long, env = "QUIVER_WORK_DIR", default_value_os_t = std::env::temp_dir().join("quiver"))]
    pub work_dir: PathBuf,
    /// Address of this worker's gRPC + Flight server (port 0 picks a free port).
    #[arg(long, env = "QUIVER_WORKER_BIND", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// Host name or IP that other workers and drivers use to reach this worker.
    #[arg(long, env = "QUIVER_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, env = "QUIVER_HEARTBEAT_INTERVAL", default_value_t = 1.0)]
    pub heartbeat_interval: f64,
    /// Bytes of operator state all tasks together may hold before they spill to disk, e.g.
    /// `4G` or `512M`; each slot gets an equal share of at least 8 MiB. Defaults to half of
    /// the machine's memory.
    #[arg(long, env = "QUIVER_MEMORY_LIMIT", value_parser = crate::memory::memory_pool::parse_bytes)]
    pub memory_limit: Option<usize>,
    /// On SIGTERM, the longest to wait for running tasks and shuffle readers before exiting.
    #[arg(long, env = "QUIVER_DRAIN_TIMEOUT", default_value_t = 300.0)]
    pub drain_timeout: f64,
}

/// Runs a worker with `functions` until Ctrl-C (stop at once) or SIGTERM (drain, then stop).
/// Prints `quiver-worker <id> listening on <address>` once it serves.
pub async fn run(args: WorkerArgs, functions: Arc<FunctionRegistry>) -> Result<()> {
    let defaults = WorkerConfig::default();
    let config = WorkerConfig {
        coordinator_url: args.coordinator,
        slots: args.slots.unwrap_or(defaults.slots),
        work_dir: args.work_dir,
        bind: args.bind,
        advertise_host: args.advertise_host,
        heartbeat_interval: Duration::from_secs_f64(args.heartbeat_interval.max(0.01)),
        functions,
        memory_limit: args.memory_limit.unwrap_or(defaults.memory_limit),
    };
    let worker = start(config).await?;
    println!(
        "quiver-worker {} listening on {}",
        worker.id(),
        worker.address()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| WorkerError::io("SIGTERM handler", e))?;
    tokio::select! {
        // Ctrl-C: stop now (running tasks are cancelled and run again elsewhere).
        _ = tokio::signal::ctrl_c() => worker.shutdown().await,
        // SIGTERM (what service managers send): finish what runs, then leave.
        _ = term.recv() => worker.drain(Duration::from_secs_f64(args.drain_timeout.max(0.0))).await,
    }
    Ok(())
}
