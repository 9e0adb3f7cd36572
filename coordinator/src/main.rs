//! `quiver-coordinator`: the coordinator process. Serves the job API and schedules tasks onto
//! registered workers until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use quiver_coordinator::CoordinatorConfig;
use quiver_coordinator::SchedulerConfig;
use quiver_net::credentials::own_token;
use quiver_net::flags::{ListenerArgs, TlsArgs, parse_duration};
use quiver_net::{AdvertiseAddr, AllowedRoots, ClusterTokens, ConfigReport, Token};
use quiver_plan::Limits;

/// The Quiver coordinator.
#[derive(Parser, Debug)]
#[command(name = "quiver-coordinator", version, about)]
struct Args {
    /// Address of the gRPC job and worker API, e.g. `0.0.0.0:50050`.
    #[arg(long, env = "QUIVER_BIND", default_value = "127.0.0.1:50050")]
    bind: SocketAddr,
    /// `HOST:PORT` that workers and drivers dial to reach this coordinator (without `:PORT`,
    /// the bound port); printed at start and by `--check-config`. Default: the bound address
    /// (127.0.0.1 when bound to `0.0.0.0`: pass this flag then so the printed URL works
    /// from other machines). With TLS, HOST must be a name in the certificate.
    #[arg(long, env = "QUIVER_ADVERTISE_ADDR", value_parser = AdvertiseAddr::parse)]
    advertise_addr: Option<AdvertiseAddr>,
    /// Parse flags and environment, read the token and TLS files, print the effective
    /// configuration and the ports it would listen on, and exit (0 when it is usable).
    #[arg(long)]
    check_config: bool,
    /// How log lines (on stderr) are written: `text`, coloured on a terminal only, or `json`,
    /// one object per line. `RUST_LOG` filters them (default `info`).
    #[arg(long, env = "QUIVER_LOG_FORMAT", value_enum, default_value_t)]
    log_format: quiver_net::logging::LogFormat,
    /// Address of the dashboard and `/metrics` (HTTP); `off` to not serve them.
    #[arg(long, env = "QUIVER_DASHBOARD_BIND", default_value = "127.0.0.1:8080")]
    dashboard_bind: String,
    /// Time without a heartbeat after which a worker is declared lost (seconds, or e.g. 5s).
    #[arg(long, env = "QUIVER_HEARTBEAT_TIMEOUT", default_value = "5", value_parser = parse_duration)]
    heartbeat_timeout: Duration,
    /// After a restart, how long resumed jobs wait for the workers to come back and list the
    /// map outputs they still hold, before recomputing what nobody listed (seconds, or e.g.
    /// 1500ms).
    #[arg(long, env = "QUIVER_RESUME_GRACE", default_value = "3", value_parser = parse_duration)]
    resume_grace: Duration,
    /// Adaptive execution: when a stage's shuffle inputs are measured, adjacent partitions
    /// are coalesced into tasks that read about this many MiB each (fewer when the data would
    /// otherwise not fill every slot), and a skewed join partition is split into tasks of
    /// about this size; 0 turns both off.
    #[arg(long, env = "QUIVER_COALESCE_TARGET_MIB", default_value_t = 64)]
    coalesce_target_mib: u64,
    /// Attempts per task before its job fails.
    #[arg(long, env = "QUIVER_MAX_TASK_ATTEMPTS", default_value_t = 4)]
    max_task_attempts: u32,
    /// A job fails when one of its tasks was running on a lost worker this many times.
    #[arg(long, env = "QUIVER_MAX_WORKER_LOSSES", default_value_t = 2)]
    max_worker_losses: u32,
    /// How long a job waits while no worker is registered before it fails.
    #[arg(long, env = "QUIVER_WORKER_WAIT_TIMEOUT", default_value = "300", value_parser = parse_duration)]
    worker_wait_timeout: Duration,
    /// Speculative execution: back up tasks that run far longer than their stage's median.
    #[arg(long, env = "QUIVER_SPECULATION", default_value_t = true, action = clap::ArgAction::Set)]
    speculation: bool,
    /// Where the job log is kept, so that jobs survive a restart and finished ones stay
    /// listed; `none` keeps jobs in memory only. Default: `$XDG_STATE_HOME/quiver/coordinator`,
    /// or `~/.local/state/quiver/coordinator`. One running coordinator per directory.
    #[arg(long, env = "QUIVER_STATE_DIR")]
    state_dir: Option<String>,
    /// Finished jobs kept and listed (at least 1); older ones are forgotten.
    #[arg(long, env = "QUIVER_JOB_HISTORY", default_value_t = 1000)]
    job_history: usize,
    /// How long a collect job's results stay on the workers after it succeeded.
    #[arg(long, env = "QUIVER_RESULT_RETENTION", default_value = "600", value_parser = parse_duration)]
    result_retention: Duration,

    /// File holding the token clients and workers must present (one token for both roles);
    /// `QUIVER_TOKEN` may hold the token itself instead.
    #[arg(long, env = "QUIVER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// File holding the clients' token, when clients and workers have separate tokens.
    #[arg(long, env = "QUIVER_CLIENT_TOKEN_FILE")]
    client_token_file: Option<PathBuf>,
    /// File holding the workers' token, when clients and workers have separate tokens.
    #[arg(long, env = "QUIVER_WORKER_TOKEN_FILE")]
    worker_token_file: Option<PathBuf>,
    /// Serve without a token on a non-loopback address (only on a network you trust).
    #[arg(long, env = "QUIVER_INSECURE")]
    insecure: bool,
    /// Serve `/metrics` without a token (the dashboard page still needs one).
    #[arg(long, env = "QUIVER_METRICS_PUBLIC")]
    metrics_public: bool,
    /// A directory jobs may read from and write to (repeatable); inputs and outputs elsewhere
    /// are refused at submission. Without one, any path the workers can reach is allowed.
    #[arg(
        long = "allowed-root",
        env = "QUIVER_ALLOWED_ROOTS",
        value_delimiter = ','
    )]
    allowed_roots: Vec<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    listener: ListenerArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Bounds on what a job may ask for; workers are given the same bounds.
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Most partitions of a shuffle (and tasks of the stage after it).
    #[arg(long, env = "QUIVER_MAX_PARTITIONS", default_value_t = Limits::default().max_partitions)]
    max_partitions: u32,
    /// Most tasks of a stage that reads files (one per input split), or of a union.
    #[arg(long, env = "QUIVER_MAX_TASKS_PER_STAGE", default_value_t = Limits::default().max_tasks_per_stage)]
    max_tasks_per_stage: u32,
    /// Most tasks of all the stages of one job together.
    #[arg(long, env = "QUIVER_MAX_TASKS_PER_JOB", default_value_t = Limits::default().max_tasks_per_job)]
    max_tasks_per_job: u32,
    /// Most rows per batch a job may ask for.
    #[arg(long, env = "QUIVER_MAX_BATCH_SIZE", default_value_t = Limits::default().max_batch_size)]
    max_batch_size: u32,
    /// Deepest plan accepted, in nested protobuf messages (2 per chained step); at most the
    /// default, which is what every worker can decode.
    #[arg(long, env = "QUIVER_MAX_PLAN_DEPTH", default_value_t = Limits::default().max_plan_depth)]
    max_plan_depth: u32,
    /// Most plan steps and expressions in one job.
    #[arg(long, env = "QUIVER_MAX_PLAN_NODES", default_value_t = Limits::default().max_plan_nodes)]
    max_plan_nodes: u32,
    /// Most task slots one worker may advertise.
    #[arg(long, env = "QUIVER_MAX_WORKER_SLOTS", default_value_t = 1024)]
    max_worker_slots: u32,
}

/// The state directory `--state-dir` names (none: in memory), or the per-user default.
fn state_dir(flag: Option<&str>) -> anyhow::Result<Option<PathBuf>> {
    match flag {
        Some("none") => Ok(None),
        Some("") => anyhow::bail!("--state-dir is empty; give a directory, or none"),
        Some(dir) => Ok(Some(PathBuf::from(dir))),
        None => {
            let non_empty = |v: &str| std::env::var_os(v).filter(|p| !p.is_empty());
            let base = match (non_empty("XDG_STATE_HOME"), non_empty("HOME")) {
                (Some(state), _) => PathBuf::from(state),
                (None, Some(home)) => PathBuf::from(home).join(".local").join("state"),
                (None, None) => anyhow::bail!(
                    "no default state directory (neither XDG_STATE_HOME nor HOME is set): pass --state-dir DIR, or --state-dir none"
                ),
            };
            Ok(Some(base.join("quiver").join("coordinator")))
        }
    }
}

fn token(path: Option<&PathBuf>) -> anyhow::Result<Option<Token>> {
    Ok(path.map(|p| Token::from_file(p)).transpose()?)
}

/// What `--check-config` prints: the effective settings (secrets only named by their files)
/// and the ports the coordinator would listen on. Fails as starting would on bad files or an
/// unauthenticated exposed port.
fn check_config(
    args: &Args,
    tokens: &ClusterTokens,
    dashboard: Option<SocketAddr>,
    state_dir: Option<&PathBuf>,
    advertised: &dyn Fn(u16) -> String,
) -> anyhow::Result<ConfigReport> {
    let tls = args.tls.load()?;
    quiver_net::check_exposure(tokens.required(), args.insecure, args.bind)?;
    if let Some(d) = dashboard {
        quiver_net::check_exposure(tokens.required(), args.insecure, d)?;
    }
    let mut report = ConfigReport::new("quiver-coordinator");
    let secret = |file: &Option<PathBuf>| quiver_net::check_config::path_or_dash(file.as_ref());
    report
        .set("bind", args.bind)
        .set(
            "advertised url",
            format!("{}://{}", tls.scheme(), advertised(args.bind.port())),
        )
        .set(
            "dashboard and /metrics",
            dashboard.map_or("off".into(), |d| d.to_string()),
        )
        .set(
            "state dir",
            state_dir.map_or("none (jobs in memory only)".into(), |d| {
                d.display().to_string()
            }),
        )
        .set(
            "token",
            quiver_net::check_config::token_source(
                args.token_file.as_ref(),
                own_token(args.token_file.as_ref())?.is_some(),
            ),
        )
        .set("client token file", secret(&args.client_token_file))
        .set("worker token file", secret(&args.worker_token_file))
        .set("insecure", args.insecure)
        .set("metrics public", args.metrics_public)
        .set("tls cert", secret(&args.tls.tls_cert))
        .set("tls ca", secret(&args.tls.tls_ca))
        .set("tls client ca", secret(&args.tls.tls_client_ca))
        .set("heartbeat timeout", format!("{:?}", args.heartbeat_timeout))
        .set("resume grace", format!("{:?}", args.resume_grace))
        .set("coalesce target MiB", args.coalesce_target_mib)
        .set("max task attempts", args.max_task_attempts)
        .set("result retention", format!("{:?}", args.result_retention))
        .set("job history", args.job_history)
        .set(
            "allowed roots",
            if args.allowed_roots.is_empty() {
                "anywhere".to_string()
            } else {
                format!("{:?}", args.allowed_roots)
            },
        );
    report.listen("grpc", args.bind);
    if let Some(d) = dashboard {
        report.listen("dashboard", d);
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    quiver_net::logging::init(args.log_format);
    let dashboard = match args.dashboard_bind.as_str() {
        "off" | "none" | "" => None,
        addr => Some(addr.parse().map_err(|e| {
            anyhow::anyhow!(
                "--dashboard-bind {addr}: not an address ({e}); use e.g. 127.0.0.1:8080 or off"
            )
        })?),
    };
    let tokens = ClusterTokens::from_files(
        own_token(args.token_file.as_ref())?,
        token(args.client_token_file.as_ref())?,
        token(args.worker_token_file.as_ref())?,
    )?;
    let allowed_roots = if args.allowed_roots.is_empty() {
        AllowedRoots::anywhere()
    } else {
        AllowedRoots::new(&args.allowed_roots)?
    };
    // The coordinator writes `_SUCCESS` into output directories: never into its own secrets or
    // kernel interfaces.
    let private: Vec<PathBuf> = [
        &args.token_file,
        &args.client_token_file,
        &args.worker_token_file,
        &args.tls.tls_key,
        &args.tls.tls_cert,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let allowed_roots = allowed_roots.deny_private(&private);
    let limits = Limits {
        max_partitions: args.limits.max_partitions,
        max_tasks_per_stage: args.limits.max_tasks_per_stage,
        max_tasks_per_job: args.limits.max_tasks_per_job,
        max_batch_size: args.limits.max_batch_size,
        max_plan_depth: args.limits.max_plan_depth,
        max_plan_nodes: args.limits.max_plan_nodes,
    }
    .sanitized();
    let state_dir = state_dir(args.state_dir.as_deref())?;
    let advertised = |port: u16| {
        let local = SocketAddr::new(args.bind.ip(), port);
        quiver_net::advertise::advertised(local, args.advertise_addr.as_ref(), true, "")
            .unwrap_or_else(|_| local.to_string())
    };
    if args.check_config {
        print!(
            "{}",
            check_config(&args, &tokens, dashboard, state_dir.as_ref(), &advertised)?.render()
        );
        return Ok(());
    }
    match &state_dir {
        Some(dir) => println!(
            "quiver-coordinator keeps its job log in {} (--state-dir)",
            dir.display()
        ),
        None => println!("quiver-coordinator keeps jobs in memory only (--state-dir none)"),
    }
    let config = CoordinatorConfig {
        bind: args.bind,
        dashboard,
        heartbeat_timeout: args.heartbeat_timeout.max(Duration::from_millis(100)),
        scheduler: SchedulerConfig {
            max_task_attempts: args.max_task_attempts.max(1),
            max_worker_losses: args.max_worker_losses.max(1),
            result_retention: args.result_retention,
            worker_wait_timeout: args.worker_wait_timeout,
            speculation: args.speculation,
            resume_grace: args.resume_grace,
            coalesce_target_bytes: args.coalesce_target_mib.saturating_mul(1 << 20),
            limits,
            ..SchedulerConfig::default()
        },
        tokens,
        tls: args.tls.load()?,
        insecure: args.insecure,
        metrics_public: args.metrics_public,
        connections: args.listener.limits(),
        allowed_roots,
        max_worker_slots: args.limits.max_worker_slots,
        state_dir,
        job_history: args.job_history.max(1),
        ..CoordinatorConfig::default()
    };
    let coordinator = quiver_coordinator::start(config).await?;
    if let Some(d) = coordinator.dashboard_url() {
        println!("quiver-coordinator dashboard and /metrics on {d}");
    }
    println!("quiver-coordinator listening on {}", coordinator.url());
    if args.advertise_addr.is_some() || args.bind.ip().is_unspecified() {
        println!(
            "quiver-coordinator: workers and drivers dial {}://{}",
            if coordinator.url().starts_with("https") {
                "https"
            } else {
                "http"
            },
            advertised(coordinator.address().port())
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    coordinator.shutdown().await;
    Ok(())
}
