//! `quiver-worker`: a worker process. Registers with a coordinator, runs tasks, serves shuffle
//! data, and stops cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use quiver_worker::WorkerConfig;

/// A Quiver worker.
#[derive(Parser, Debug)]
#[command(name = "quiver-worker", version, about)]
struct Args {
    /// The coordinator's URL.
    #[arg(
        long,
        env = "QUIVER_COORDINATOR",
        default_value = "http://127.0.0.1:50050"
    )]
    coordinator: String,
    /// Concurrent tasks; defaults to the number of CPU cores.
    #[arg(long, env = "QUIVER_SLOTS")]
    slots: Option<usize>,
    /// Directory for shuffle files.
    #[arg(long, env = "QUIVER_WORK_DIR", default_value_os_t = std::env::temp_dir().join("quiver"))]
    work_dir: PathBuf,
    /// Address of this worker's gRPC + Flight server (port 0 picks a free port).
    #[arg(long, env = "QUIVER_WORKER_BIND", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Host name or IP that other workers and drivers use to reach this worker.
    #[arg(long, env = "QUIVER_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// On SIGTERM, the longest to wait for running tasks and shuffle readers before exiting.
    #[arg(long, env = "QUIVER_DRAIN_TIMEOUT", default_value_t = 300.0)]
    drain_timeout: f64,
    /// Seconds between heartbeats.
    #[arg(long, env = "QUIVER_HEARTBEAT_INTERVAL", default_value_t = 1.0)]
    heartbeat_interval: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let defaults = WorkerConfig::default();
    let args_drain_timeout = args.drain_timeout.max(0.0);
    let config = WorkerConfig {
        coordinator_url: args.coordinator,
        slots: args.slots.unwrap_or(defaults.slots),
        work_dir: args.work_dir,
        bind: args.bind,
        advertise_host: args.advertise_host,
        heartbeat_interval: Duration::from_secs_f64(args.heartbeat_interval.max(0.01)),
    };
    let worker = quiver_worker::start(config).await?;
    println!(
        "quiver-worker {} listening on {}",
        worker.id(),
        worker.address()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        // Ctrl-C: stop now (running tasks are cancelled and run again elsewhere).
        _ = tokio::signal::ctrl_c() => worker.shutdown().await,
        // SIGTERM (what service managers send): finish what runs, then leave.
        _ = term.recv() => worker.drain(Duration::from_secs_f64(args_drain_timeout)).await,
    }
    Ok(())
}
