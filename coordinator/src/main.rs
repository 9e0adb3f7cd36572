//! `quiver-coordinator`: the coordinator process. Serves the job API and schedules tasks onto
//! registered workers until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use quiver_coordinator::CoordinatorConfig;
use quiver_coordinator::scheduler::SchedulerConfig;

/// The Quiver coordinator.
#[derive(Parser, Debug)]
#[command(name = "quiver-coordinator", version, about)]
struct Args {
    /// Address of the gRPC job and worker API.
    #[arg(long, env = "QUIVER_BIND", default_value = "127.0.0.1:50050")]
    bind: SocketAddr,
    /// Address of the dashboard and `/metrics` (HTTP); `off` to not serve them.
    #[arg(long, env = "QUIVER_DASHBOARD_BIND", default_value = "127.0.0.1:8080")]
    dashboard_bind: String,
    /// Seconds without a heartbeat after which a worker is declared lost.
    #[arg(long, env = "QUIVER_HEARTBEAT_TIMEOUT", default_value_t = 5.0)]
    heartbeat_timeout: f64,
    /// Attempts per task before its job fails.
    #[arg(long, env = "QUIVER_MAX_TASK_ATTEMPTS", default_value_t = 4)]
    max_task_attempts: u32,
    /// Seconds a job waits while no worker is registered before it fails.
    #[arg(long, env = "QUIVER_WORKER_WAIT_TIMEOUT", default_value_t = 300.0)]
    worker_wait_timeout: f64,
    /// Speculative execution: back up tasks that run far longer than their stage's median.
    #[arg(long, env = "QUIVER_SPECULATION", default_value_t = true, action = clap::ArgAction::Set)]
    speculation: bool,
    /// Seconds a collect job's results stay on the workers after it succeeded.
    #[arg(long, env = "QUIVER_RESULT_RETENTION", default_value_t = 600)]
    result_retention: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let dashboard = match args.dashboard_bind.as_str() {
        "off" | "none" | "" => None,
        addr => Some(addr.parse().map_err(|e| {
            anyhow::anyhow!(
                "--dashboard-bind {addr}: not an address ({e}); use e.g. 127.0.0.1:8080 or off"
            )
        })?),
    };
    let config = CoordinatorConfig {
        bind: args.bind,
        dashboard,
        heartbeat_timeout: Duration::from_secs_f64(args.heartbeat_timeout.max(0.1)),
        scheduler: SchedulerConfig {
            max_task_attempts: args.max_task_attempts.max(1),
            result_retention: Duration::from_secs(args.result_retention),
            worker_wait_timeout: Duration::from_secs_f64(args.worker_wait_timeout.max(0.0)),
            speculation: args.speculation,
            ..SchedulerConfig::default()
        },
        ..CoordinatorConfig::default()
    };
    let coordinator = quiver_coordinator::start(config).await?;
    if let Some(d) = coordinator.dashboard_address() {
        println!("quiver-coordinator dashboard and /metrics on http://{d}");
    }
    println!("quiver-coordinator listening on {}", coordinator.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    coordinator.shutdown().await;
    Ok(())
}
