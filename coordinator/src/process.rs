//! Process wiring: binds the coordinator's ports, serves the gRPC service behind its access
//! policy (and TLS, when configured), runs the heartbeat monitor, and returns a handle that
//! stops them. Used by the `quiver-coordinator` binary and by the SDK's `LocalCluster`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quiver_net::{
    AllowedRoots, AuthLayer, CallCredentials, ClusterTokens, ConnectionLimits, Dialer,
    GuardedListener, Role, TlsSettings,
};
use quiver_proto::MAX_MESSAGE_BYTES;
use quiver_proto::v1::coordinator_server::CoordinatorServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::access::CoordinatorAccess;
use crate::admission::Admission;
use crate::coordinator_service::CoordinatorService;
use crate::coordinator_state::CoordinatorState;
use crate::error::{CoordinatorError, Result};
use crate::heartbeat_monitor;
use crate::job_log::{JobLog, LogWriter, Recovered, recovered_event};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::task_launcher::GrpcTaskLauncher;

/// How a coordinator is started.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// gRPC address (port 0 picks a free port).
    pub bind: SocketAddr,
    /// Heartbeat interval workers are asked to keep.
    pub heartbeat_interval: Duration,
    /// Silence after which a worker is declared lost.
    pub heartbeat_timeout: Duration,
    /// Retries, exclusions, speculation, limits and retention.
    pub scheduler: SchedulerConfig,
    /// Where to serve the dashboard and `/metrics` (none: not served).
    pub dashboard: Option<SocketAddr>,
    /// The tokens clients and workers must present (open: none needed).
    pub tokens: ClusterTokens,
    /// Certificates: the gRPC server and dashboard speak TLS when set; workers are dialed
    /// over TLS when they advertise `https://`.
    pub tls: TlsSettings,
    /// Serve without tokens on a non-loopback address.
    pub insecure: bool,
    /// Serve `/metrics` without a token (the dashboard page still needs one).
    pub metrics_public: bool,
    /// Bounds on each server's connections.
    pub connections: ConnectionLimits,
    /// Where jobs may read and write.
    pub allowed_roots: AllowedRoots,
    /// Most slots one worker may advertise.
    pub max_worker_slots: u32,
    /// Where the job log lives (none: jobs are kept in memory only, as in `LocalCluster`).
    /// With one, a restarted coordinator resumes unfinished jobs and lists finished ones.
    pub state_dir: Option<PathBuf>,
    /// Finished jobs kept and listed (at least 1); older ones are forgotten, in memory and in
    /// the job log.
    pub job_history: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 50050)),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            scheduler: SchedulerConfig::default(),
            dashboard: None,
            tokens: ClusterTokens::open(),
            tls: TlsSettings::none(),
            insecure: false,
            metrics_public: false,
            connections: ConnectionLimits::default(),
            allowed_roots: AllowedRoots::anywhere(),
            max_worker_slots: Admission::default().max_worker_slots,
            state_dir: None,
            job_history: 1000,
        }
    }
}

/// A started coordinator.
pub struct RunningCoordinator {
    address: SocketAddr,
    scheme: &'static str,
    dashboard: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningCoordinator {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where the dashboard listens, if it was started.
    pub fn dashboard_address(&self) -> Option<SocketAddr> {
        self.dashboard
    }

    /// The dashboard's URL (`https://` when it serves TLS), if it was started.
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.map(|d| format!("{}://{d}", self.scheme))
    }

    /// The URL clients and workers connect to (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                tracing::warn!("coordinator task did not stop within 5 s");
            }
        }
        info!("coordinator stopped");
    }
}

/// Starts a coordinator inside the current tokio runtime.
pub async fn start(config: CoordinatorConfig) -> Result<RunningCoordinator> {
    let has_token = config.tokens.required();
    quiver_net::check_exposure(has_token, config.insecure, config.bind)?;
    if let Some(d) = config.dashboard {
        quiver_net::check_exposure(has_token, config.insecure, d)?;
    }
    if !config.tokens.required() {
        info!(
            "no token configured: every caller that can reach the coordinator is trusted (see docs/security.md)"
        );
    }
    let listener = GuardedListener::bind(config.bind, config.connections).await?;
    let address = listener
        .local_addr()
        .map_err(|source| CoordinatorError::Io {
            what: "local address".into(),
            source,
        })?;
    let dialer = Dialer::new(config.tls.clone(), CallCredentials::none());
    let job_history = config.job_history.max(1);
    // The heartbeat timeout and the history are the coordinator's settings; the scheduler
    // applies them.
    let scheduler = Scheduler::new(SchedulerConfig {
        heartbeat_timeout: config.heartbeat_timeout,
        job_history,
        ..config.scheduler.clone()
    });
    let (log, recovered) = match &config.state_dir {
        Some(dir) => {
            let dir = dir.clone();
            let (log, recovered) =
                tokio::task::spawn_blocking(move || JobLog::open(&dir, job_history))
                    .await
                    .map_err(|e| {
                        CoordinatorError::Refused(format!("opening the job log: {e}"))
                    })??;
            (Some(LogWriter::spawn(log)?), recovered)
        }
        None => (None, Recovered::default()),
    };
    let state = CoordinatorState::with_log(
        scheduler,
        Arc::new(GrpcTaskLauncher::new(dialer.clone())),
        log,
        recovered.finished,
        job_history,
    );
    if recovered.dropped_tail {
        warn!(
            "the job log's tail was torn or corrupt and was dropped: jobs it recorded last may be missing"
        );
    }
    // Unfinished jobs run again, under their ids, once workers register. Their new
    // incarnations are on disk before anything is served: a second crash must not let a later
    // run reuse this run's attempt numbers.
    let mut resumed = Vec::new();
    for logged in &recovered.unfinished {
        match recovered_event(logged) {
            Ok(event) => match state.handle_durably(event) {
                (crate::scheduler::Reply::Recovered(Err(e)), _) => {
                    warn!(job = %logged.job_id, error = %e, "a logged job cannot be resumed");
                }
                (_, durable) => resumed.extend(durable),
            },
            Err(e) => warn!(job = %logged.job_id, error = %e, "a logged job cannot be resumed"),
        }
    }
    for durable in resumed {
        match durable.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(CoordinatorError::Refused(format!("resuming jobs: {e}"))),
            Err(_) => {
                return Err(CoordinatorError::Refused(
                    "resuming jobs: the job log stopped".into(),
                ));
            }
        }
    }
    let admission = Arc::new(Admission {
        limits: config.scheduler.limits,
        max_worker_slots: config.max_worker_slots.max(1),
        roots: config.allowed_roots.clone().deny_private(&[]),
        dialer,
    });
    // Workers fetch shuffle data with their token; drivers fetch results with the ticket's
    // grant as credential, so the client token never reaches a worker.
    let flight_tokens: Vec<_> = config.tokens.digest(Role::Worker).into_iter().collect();
    let access = Arc::new(CoordinatorAccess {
        tokens: config.tokens.clone(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut server_shutdown = shutdown_rx.clone();
    let service = CoordinatorServer::new(CoordinatorService::new(
        state.clone(),
        admission,
        config.heartbeat_interval,
        flight_tokens,
        // An hour beyond the results' retention: a worker's clock may run ahead.
        config.scheduler.result_retention + Duration::from_secs(3600),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let server = config
        .tls
        .grpc_server_builder()?
        .layer(AuthLayer::new(access.clone()))
        .add_service(service)
        .serve_with_incoming_shutdown(listener.into_incoming(), async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        });
    let server_task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "coordinator server failed");
        }
    });
    let mut tasks = vec![server_task];
    let mut dashboard = None;
    if let Some(bind) = config.dashboard {
        let listener = GuardedListener::bind(bind, config.connections)
            .await
            .map_err(|e| CoordinatorError::Refused(format!("{e} (use --dashboard-bind)")))?;
        let at = listener
            .local_addr()
            .map_err(|source| CoordinatorError::Io {
                what: "dashboard address".into(),
                source,
            })?;
        let tls = config.tls.http_server()?;
        info!(dashboard = %format!("{}://{at}", config.tls.scheme()), "dashboard and /metrics serving");
        dashboard = Some(at);
        let access = crate::dashboard::DashboardAccess {
            policy: access,
            metrics_public: config.metrics_public,
        };
        tasks.push(tokio::spawn(crate::dashboard::serve(
            listener,
            tls,
            state.clone(),
            access,
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(heartbeat_monitor::run(
        state,
        config.heartbeat_timeout,
        shutdown_rx,
    )));
    info!(%address, "coordinator started");
    Ok(RunningCoordinator {
        address,
        scheme: config.tls.scheme(),
        dashboard,
        shutdown: shutdown_tx,
        tasks,
    })
}
