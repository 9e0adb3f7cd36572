//! The worker's command line, shared by `quiver-worker` and by users' own binaries that act as
//! workers with their own functions (through the SDK's worker entry point).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use quiver_net::AllowedRoots;
use quiver_net::credentials::own_token;
use quiver_net::flags::{ListenerArgs, TlsArgs, parse_duration};

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
    /// Time between heartbeats (seconds, or e.g. 500ms).
    #[arg(long, env = "QUIVER_HEARTBEAT_INTERVAL", default_value = "1", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// Bytes of operator state all tasks together may hold before they spill to disk, e.g.
    /// `4G` or `512M`; each slot gets an equal share of at least 8 MiB. Defaults to half of
    /// the machine's memory.
    #[arg(long, env = "QUIVER_MEMORY_LIMIT", value_parser = crate::memory::memory_pool::parse_bytes)]
    pub memory_limit: Option<usize>,
    /// On SIGTERM, the longest to wait for running tasks and shuffle readers before exiting.
    #[arg(long, env = "QUIVER_DRAIN_TIMEOUT", default_value = "300", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// File holding the worker token (the coordinator's --token-file or
    /// --worker-token-file); `QUIVER_TOKEN` may hold the token itself instead.
    #[arg(long, env = "QUIVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve without a token on a non-loopback address (only on a network you trust).
    #[arg(long, env = "QUIVER_INSECURE")]
    pub insecure: bool,
    /// A directory tasks may read from and write to (repeatable); anything else is refused.
    /// Without one, any path this process can reach is allowed, except its work directory.
    #[arg(
        long = "allowed-root",
        env = "QUIVER_ALLOWED_ROOTS",
        value_delimiter = ','
    )]
    pub allowed_roots: Vec<PathBuf>,
    /// TLS for the worker's port and its calls to peers (`--tls-cert`, ...).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Connection limits of the worker's port (`--max-connections`, ...).
    #[command(flatten)]
    pub listener: ListenerArgs,
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
        heartbeat_interval: args.heartbeat_interval.max(Duration::from_millis(10)),
        functions,
        memory_limit: args.memory_limit.unwrap_or(defaults.memory_limit),
        token: own_token(args.token_file.as_ref())?,
        tls: args.tls.load()?,
        insecure: args.insecure,
        connections: args.listener.limits(),
        private_files: [&args.token_file, &args.tls.tls_key, &args.tls.tls_cert]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        allowed_roots: if args.allowed_roots.is_empty() {
            AllowedRoots::anywhere()
        } else {
            AllowedRoots::new(&args.allowed_roots)
                .map_err(|e| WorkerError::io("--allowed-root", e))?
        },
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
        _ = term.recv() => worker.drain(args.drain_timeout).await,
    }
    Ok(())
}
