//! `quiver-worker`: a worker process with the built-in functions only. Registers with a
//! coordinator, runs tasks, serves shuffle data; Ctrl-C stops it, SIGTERM drains it.

use clap::Parser;
use quiver_worker::command_line::{WorkerArgs, run};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = run(WorkerArgs::parse(), Default::default()).await {
        eprintln!("quiver-worker: {e}");
        std::process::exit(1);
    }
}
