//! Process wiring: binds the coordinator's port, serves the gRPC service, runs the heartbeat
//! monitor, and returns a handle that stops them. Used by the `quiver-coordinator` binary and
//! by the SDK's `LocalCluster`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::MAX_MESSAGE_BYTES;
use quiver_proto::v1::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::coordinator_service::CoordinatorService;
use crate::coordinator_state::CoordinatorState;
use crate::error::{CoordinatorError, Result};
use crate::heartbeat_monitor;
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
    pub scheduler: SchedulerConfig,
    /// Where to serve the dashboard and `/metrics` (none: not served).
    pub dashboard: Option<SocketAddr>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 50050)),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            scheduler: SchedulerConfig::default(),
            dashboard: None,
        }
    }
}

/// A started coordinator.
pub struct RunningCoordinator {
    address: SocketAddr,
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

    /// The URL clients and workers connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
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
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| CoordinatorError::Io {
            what: format!("cannot bind {}", config.bind),
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| CoordinatorError::Io {
            what: "local address".into(),
            source,
        })?;
    let state = CoordinatorState::new(
        Scheduler::new(config.scheduler.clone()),
        Arc::new(GrpcTaskLauncher::default()),
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut server_shutdown = shutdown_rx.clone();
    let service = CoordinatorServer::new(CoordinatorService::new(
        state.clone(),
        config.heartbeat_interval,
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // Nagle's algorithm off on every accepted connection: tonic's `tcp_nodelay` applies only
    // to listeners it binds itself, and small RPCs would otherwise wait for delayed ACKs.
    let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |conn| {
        conn.and_then(|s| s.set_nodelay(true).map(|()| s))
    });
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move {
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
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| CoordinatorError::Io {
                what: format!("cannot bind the dashboard to {bind} (use --dashboard-bind)"),
                source,
            })?;
        let at = listener
            .local_addr()
            .map_err(|source| CoordinatorError::Io {
                what: "dashboard address".into(),
                source,
            })?;
        info!(dashboard = %format!("http://{at}"), "dashboard and /metrics serving");
        dashboard = Some(at);
        tasks.push(tokio::spawn(crate::dashboard::serve(
            listener,
            state.clone(),
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
        dashboard,
        shutdown: shutdown_tx,
        tasks,
    })
}
