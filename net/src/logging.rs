//! How the coordinator and worker processes log (feature `logging`; libraries never install a
//! logger): to **stderr**, so that stdout keeps only what a process says for scripts (its
//! address); coloured only when stderr is a terminal; as plain text or one JSON object per
//! line (`--log-format json`, `QUIVER_LOG_FORMAT`); filtered by `RUST_LOG` (default `info`).
//!
//! Levels mean something: ERROR — the process cannot go on; WARN — a job failed or work was
//! lost (a worker declared lost, a fetch that failed); INFO — life cycle (started, registered,
//! a job submitted, finished, cancelled; a task cancelled); DEBUG — per-task detail.

use std::io::IsTerminal;

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`s), for log
    /// collectors.
    Json,
}

/// Installs the process's logger, unless one is installed already (a program embedding a
/// worker may have its own).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
