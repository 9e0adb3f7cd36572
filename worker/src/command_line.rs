//! The worker's command line, shared by `quiver-worker` and by users' own binaries that act as
//! workers with their own functions (through the SDK's worker entry point).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use quiver_net::credentials::own_token;
use quiver_net::flags::{ListenerArgs, TlsArgs, parse_duration};
use quiver_net::{AdvertiseAddr, AllowedRoots};

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
    /// Address of this worker's gRPC + Flight server, e.g. `0.0.0.0:7070` (port 0 picks a
    /// free port).
    #[arg(long, env = "QUIVER_WORKER_BIND", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// `HOST:PORT` that the coordinator, other workers and drivers dial to reach this worker
    /// (without `:PORT`, the bound port); default: the bound address. Required when bound to
    /// `0.0.0.0` unless the coordinator is on this host. With TLS, HOST must be a name in
    /// the worker's certificate.
    #[arg(long, env = "QUIVER_ADVERTISE_ADDR", value_parser = AdvertiseAddr::parse, conflicts_with = "advertise_host")]
    pub advertise_addr: Option<AdvertiseAddr>,
    /// Host name or IP that other workers and drivers use to reach this worker, on the bound
    /// port (older form of `--advertise-addr HOST`).
    #[arg(long, env = "QUIVER_ADVERTISE_HOST", value_parser = AdvertiseAddr::parse)]
    pub advertise_host: Option<AdvertiseAddr>,
    /// Serve plain-HTTP `/healthz` (live) and `/readyz` (registered, not draining) probes, and
    /// Prometheus `/metrics` (needs the worker token), on this address, e.g. `0.0.0.0:8081`;
    /// off by default.
    #[arg(long, env = "QUIVER_HEALTH_BIND")]
    pub health_bind: Option<SocketAddr>,
    /// Serve `/metrics` on the health address without a token (only on a network you trust).
    #[arg(long, env = "QUIVER_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Parse flags and environment, read the token and TLS files, print the effective
    /// configuration and the ports it would listen on, and exit (0 when it is usable).
    #[arg(long)]
    pub check_config: bool,
    /// How log lines (on stderr) are written: `text`, coloured on a terminal only, or `json`,
    /// one object per line. `RUST_LOG` filters them (default `info`).
    #[arg(long, env = "QUIVER_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: quiver_net::logging::LogFormat,
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

/// The worker's configuration from its flags: reads the token and TLS files.
pub fn config(args: &WorkerArgs, functions: Arc<FunctionRegistry>) -> Result<WorkerConfig> {
    let args = args.clone();
    let defaults = WorkerConfig::default();
    Ok(WorkerConfig {
        coordinator_url: args.coordinator,
        slots: args.slots.unwrap_or(defaults.slots),
        work_dir: args.work_dir,
        bind: args.bind,
        advertise: args.advertise_addr.or(args.advertise_host),
        exclusive_work_dir: true,
        health_bind: args.health_bind,
        metrics_public: args.metrics_public,
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
    })
}

/// What `--check-config` prints: the effective configuration, without secrets, and the
/// ports the worker would listen on. Fails as starting would on bad flags or files.
pub fn check_config(args: &WorkerArgs) -> Result<String> {
    let config = config(args, Arc::default())?;
    quiver_net::check_exposure(config.token.is_some(), config.insecure, config.bind)?;
    // The coordinator's URL must be one this worker can dial (an https:// URL needs --tls-ca).
    quiver_net::Dialer::new(config.tls.clone(), quiver_net::CallCredentials::none())
        .endpoint(&config.coordinator_url)
        .map_err(|e| WorkerError::Config {
            flag: "--coordinator",
            message: e.to_string(),
        })?;
    let advertised = quiver_net::advertise::advertised(
        config.bind,
        config.advertise.as_ref(),
        quiver_net::advertise::url_is_loopback(&config.coordinator_url),
        "--advertise-addr",
    )
    .map_err(|message| WorkerError::Config {
        flag: "--advertise-addr",
        message,
    })?;
    // Port 0: the port is chosen when the worker binds.
    let advertised = match advertised.strip_suffix(":0") {
        Some(host) => format!("{host}:<port chosen at start>"),
        None => advertised,
    };
    let mut report = quiver_net::ConfigReport::new("quiver-worker");
    report
        .set("coordinator", &config.coordinator_url)
        .set("bind", config.bind)
        .set(
            "advertised address",
            format!("{}://{advertised}", config.tls.scheme()),
        )
        .set("slots", config.slots)
        .set("work dir", config.work_dir.display())
        .set("memory limit (bytes)", config.memory_limit)
        .set(
            "heartbeat interval",
            format!("{:?}", config.heartbeat_interval),
        )
        .set("drain timeout", format!("{:?}", args.drain_timeout))
        .set(
            "token",
            quiver_net::check_config::token_source(
                args.token_file.as_ref(),
                config.token.is_some(),
            ),
        )
        .set("insecure", config.insecure)
        .set(
            "tls cert",
            quiver_net::check_config::path_or_dash(args.tls.tls_cert.as_ref()),
        )
        .set(
            "tls ca",
            quiver_net::check_config::path_or_dash(args.tls.tls_ca.as_ref()),
        )
        .set(
            "tls client ca",
            quiver_net::check_config::path_or_dash(args.tls.tls_client_ca.as_ref()),
        )
        .set(
            "allowed roots",
            if args.allowed_roots.is_empty() {
                "anywhere".to_string()
            } else {
                format!("{:?}", args.allowed_roots)
            },
        )
        .set("max connections", config.connections.max_connections)
        .set(
            "health endpoint",
            config.health_bind.map_or("off".into(), |h| h.to_string()),
        )
        .set("metrics public", config.metrics_public);
    report.listen("grpc+flight", config.bind);
    if let Some(h) = config.health_bind {
        report.listen("health", h);
    }
    Ok(report.render())
}

/// Runs a worker with `functions` until Ctrl-C (stop at once) or SIGTERM (drain, then stop).
/// Prints `quiver-worker <id> listening on <address>` once it serves. With `--check-config`,
/// prints the configuration and returns instead.
pub async fn run(args: WorkerArgs, functions: Arc<FunctionRegistry>) -> Result<()> {
    quiver_net::logging::init(args.log_format);
    if args.check_config {
        print!("{}", check_config(&args)?);
        return Ok(());
    }
    let config = config(&args, functions)?;
    let worker = start(config).await?;
    if let Some(h) = worker.health_address() {
        println!("quiver-worker health endpoint on http://{h} (/healthz, /readyz, /metrics)");
    }
    println!(
        "quiver-worker {} listening on {}",
        worker.id(),
        worker.address()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| WorkerError::io("SIGTERM handler", e))?;
    let incompatible = worker.incompatible_coordinator();
    tokio::select! {
        // Ctrl-C: stop now (running tasks are cancelled and run again elsewhere).
        _ = tokio::signal::ctrl_c() => worker.shutdown().await,
        // A coordinator of another release: nothing this worker does for it can be right.
        message = incompatible => {
            worker.shutdown().await;
            return Err(WorkerError::Coordinator {
                url: args.coordinator.clone(),
                message,
            });
        }
        // SIGTERM (what service managers send): finish what runs, then leave; Ctrl-C or a
        // second SIGTERM while draining stops at once.
        _ = term.recv() => {
            let again = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            };
            worker.drain(args.drain_timeout, again).await
        }
    }
    Ok(())
}
