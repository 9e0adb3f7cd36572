//! `quiver-worker`: a worker process with the built-in functions only. Registers with a
//! coordinator, runs tasks, serves shuffle data; Ctrl-C stops it, SIGTERM drains it. Logs go
//! to stderr (`--log-format`).

use clap::Parser;
use quiver_worker::command_line::{WorkerArgs, run};

#[tokio::main]
async fn main() {
    if let Err(e) = run(WorkerArgs::parse(), Default::default()).await {
        eprintln!("quiver-worker: {e}");
        std::process::exit(1);
    }
}
