//! Process wiring: binds the worker's port, starts its gRPC + Flight server (behind the
//! worker's access policy, and TLS when configured), the heartbeat and report loops, and
//! returns a handle that shuts it all down. Used by the `quiver-worker` binary and by the
//! SDK's `LocalCluster`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use quiver_net::{
    AllowedRoots, AuthLayer, CallCredentials, ConnectionLimits, Dialer, GuardedListener,
    TlsSettings, Token,
};
use quiver_plan::WorkerId;
use quiver_proto::MAX_MESSAGE_BYTES;
use quiver_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::info;

use crate::cluster_trust::{ClusterTrust, WorkerAccess};
use crate::coordinator_link::CoordinatorLink;
use crate::error::{Result, WorkerError};
use crate::functions::FunctionRegistry;
use crate::memory::memory_pool::MemoryPool;
use crate::shuffle::flight_server::ShuffleFlightService;
use crate::shuffle::map_output_store::MapOutputStore;
use crate::task_executor::TaskExecutor;
use crate::work_dir::{WORKER_DIR_PREFIX, WorkDirLock};
use crate::worker_metrics::WorkerMetrics;
use crate::worker_service::WorkerService;
use quiver_net::{AdvertiseAddr, PeerChannels};

/// Largest Flight request a worker reads (a ticket is a few hundred bytes).
const MAX_TICKET_BYTES: usize = 64 * 1024;

/// How a worker is started.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The coordinator's URL, e.g. `http://127.0.0.1:50050`.
    pub coordinator_url: String,
    /// Task slots (concurrent tasks); each runs on its own rayon thread.
    pub slots: usize,
    /// Directory for shuffle files; the worker works in a subdirectory of its own.
    pub work_dir: PathBuf,
    /// Address for the worker's gRPC + Flight server (port 0 picks a free port).
    pub bind: SocketAddr,
    /// The `HOST[:PORT]` other processes dial to reach this worker (without a port: the
    /// bound one). Defaults to the bound address; a worker bound to every interface
    /// (`0.0.0.0`) needs one unless its coordinator is on this host (then 127.0.0.1).
    pub advertise: Option<AdvertiseAddr>,
    /// Lock `work_dir` for this worker alone, and remove what a dead predecessor left there
    /// (the `quiver-worker` binary does; in-process workers of a `LocalCluster` share one
    /// directory, each in its own subdirectory, and do not).
    pub exclusive_work_dir: bool,
    /// Where to serve the plain-HTTP `/healthz` and `/readyz` probes and `/metrics` (none:
    /// not served).
    pub health_bind: Option<SocketAddr>,
    /// Serve `/metrics` without the worker token.
    pub metrics_public: bool,
    /// How often the worker heartbeats to the coordinator.
    pub heartbeat_interval: Duration,
    /// The user functions this worker can run (advertised to the coordinator).
    pub functions: Arc<FunctionRegistry>,
    /// Bytes of operator state (hash tables, sort and join buffers, shuffle buckets) the
    /// worker's tasks may hold together before they spill to disk; split evenly among slots.
    pub memory_limit: usize,
    /// The worker token, presented to the coordinator and to other workers.
    pub token: Option<Token>,
    /// Certificates: the worker's server speaks TLS when set; `https://` peers are dialed
    /// with its CA.
    pub tls: TlsSettings,
    /// Serve without a token on a non-loopback address.
    pub insecure: bool,
    /// Bounds on the server's connections.
    pub connections: ConnectionLimits,
    /// Where tasks may read and write (the work directory, `/proc`, `/sys`, `/dev` and
    /// `private_files` are always refused).
    pub allowed_roots: AllowedRoots,
    /// Files no task may read: the worker's token file, TLS key and certificate.
    pub private_files: Vec<PathBuf>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            coordinator_url: "http://127.0.0.1:50050".into(),
            slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
            work_dir: std::env::temp_dir().join("quiver"),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            exclusive_work_dir: false,
            health_bind: None,
            metrics_public: false,
            heartbeat_interval: Duration::from_secs(1),
            functions: Arc::default(),
            memory_limit: crate::memory::memory_pool::default_memory_limit(),
            token: None,
            tls: TlsSettings::none(),
            insecure: false,
            connections: ConnectionLimits::default(),
            allowed_roots: AllowedRoots::anywhere(),
            private_files: vec![],
        }
    }
}

/// A started worker.
pub struct RunningWorker {
    id: WorkerId,
    address: String,
    work_dir: PathBuf,
    health: Option<SocketAddr>,
    /// Held while the worker runs (released after its files are removed).
    work_dir_lock: Option<WorkDirLock>,
    executor: Arc<TaskExecutor>,
    link: Arc<CoordinatorLink>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Ends only when every sender (the executor) is gone, so it is aborted at shutdown.
    report_task: JoinHandle<()>,
}

impl RunningWorker {
    /// The worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.id
    }

    /// The URL of the worker's gRPC + Flight endpoint.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Where the `/healthz` and `/readyz` probes and `/metrics` are served, if they are.
    pub fn health_address(&self) -> Option<SocketAddr> {
        self.health
    }

    /// Resolves, with the reason, if the coordinator turns out to be one this worker cannot
    /// work for (another wire protocol): the worker then stops registering, and its process
    /// should exit.
    pub fn incompatible_coordinator(&self) -> impl std::future::Future<Output = String> + 'static {
        self.link.incompatible()
    }

    /// Whether the worker is registered with its coordinator.
    pub fn is_registered(&self) -> bool {
        self.link.is_registered()
    }

    /// Graceful shutdown, as on SIGTERM: take no new tasks, let the running ones finish, keep
    /// serving shuffle data until the coordinator says nothing needs this worker any more (or
    /// `max_wait` passes), then stop.
    /// `interrupted` cuts the wait short (a second signal: stop now).
    pub async fn drain(
        self,
        max_wait: Duration,
        interrupted: impl std::future::Future<Output = ()>,
    ) {
        info!(worker = %self.id, "draining: no new tasks; waiting for running tasks and shuffle readers");
        self.link.start_draining();
        let deadline = tokio::time::Instant::now() + max_wait;
        tokio::pin!(interrupted);
        while !(self.link.is_released() && self.executor.running_count() == 0) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(worker = %self.id, "drain timed out; stopping anyway");
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = &mut interrupted => {
                    tracing::warn!(worker = %self.id, "interrupted while draining; stopping now");
                    break;
                }
            }
        }
        self.shutdown().await;
    }

    /// Cancels running tasks, stops serving and removes the worker's files.
    pub async fn shutdown(self) {
        self.executor.cancel_all();
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                tracing::warn!("worker task did not stop within 5 s");
            }
        }
        self.report_task.abort();
        let _ = tokio::fs::remove_dir_all(&self.work_dir).await;
        drop(self.work_dir_lock);
        info!(worker = %self.id, "worker stopped");
    }
}

/// Starts a worker inside the current tokio runtime.
pub async fn start(config: WorkerConfig) -> Result<RunningWorker> {
    quiver_net::check_exposure(config.token.is_some(), config.insecure, config.bind)?;
    // Settings are checked before the work directory is claimed (and cleared).
    let slots = config.slots.max(1);
    let memory = MemoryPool::new(config.memory_limit, slots)?;
    let advertise = |local: SocketAddr| {
        quiver_net::advertise::advertised(
            local,
            config.advertise.as_ref(),
            quiver_net::advertise::url_is_loopback(&config.coordinator_url),
            "--advertise-addr",
        )
        .map_err(|message| WorkerError::Config {
            flag: "--advertise-addr",
            message,
        })
    };
    advertise(config.bind)?;
    let work_dir_lock = if config.exclusive_work_dir {
        let dir = config.work_dir.clone();
        let lock = tokio::task::spawn_blocking(move || WorkDirLock::claim(&dir))
            .await
            .map_err(|e| WorkerError::Config {
                flag: "--work-dir",
                message: format!("locking the work directory: {e}"),
            })??;
        for stale in &lock.reclaimed {
            info!(path = %stale.display(), "removed the data a previous worker of this work directory left");
        }
        Some(lock)
    } else {
        None
    };
    let listener = GuardedListener::bind(config.bind, config.connections).await?;
    let local = listener
        .local_addr()
        .map_err(|e| WorkerError::io("local address", e))?;
    let advertised = advertise(local)?;
    let address = format!("{}://{advertised}", config.tls.scheme());
    let health_listener = match config.health_bind {
        Some(at) => {
            Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|e| WorkerError::Config {
                        flag: "--health-bind",
                        message: format!("cannot bind {at}: {e}"),
                    })?,
            )
        }
        None => None,
    };
    let trust = Arc::new(ClusterTrust::new());
    // The id follows from the session key, so that no one without the key can claim it.
    let id = WorkerId(quiver_net::worker_id_for(trust.session_key()));
    let work_dir = config
        .work_dir
        .join(format!("{WORKER_DIR_PREFIX}{}", id.short()));
    let credentials = CallCredentials::token(config.token.as_ref())?;
    // Other workers are fetched from with the worker token; the coordinator is also told who
    // this worker is (its session key) on every call.
    let peer_dialer = Dialer::new(config.tls.clone(), credentials.clone());
    let coordinator_dialer =
        peer_dialer.with_credentials(credentials.with_worker_key(trust.session_key())?);

    let store = Arc::new(MapOutputStore::new(work_dir.clone()));
    let metrics = Arc::new(WorkerMetrics::default());
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let executor = Arc::new(
        TaskExecutor::new(
            id.clone(),
            slots,
            store.clone(),
            tokio::runtime::Handle::current(),
            report_tx,
            config.functions.clone(),
            memory,
            work_dir.join("spill"),
            Arc::new(PeerChannels::new(peer_dialer)),
            // Other jobs' shuffle and spill files live in the work directory.
            config
                .allowed_roots
                .clone()
                .deny(&config.work_dir)
                .deny_private(&config.private_files),
            metrics.clone(),
        )
        .map_err(|e| WorkerError::io("rayon pool", e))?,
    );
    let link = Arc::new(CoordinatorLink::new(
        &config.coordinator_url,
        &coordinator_dialer,
        pb::RegisterWorkerRequest {
            worker_id: id.0.clone(),
            address: address.clone(),
            slots: slots as u32,
            hostname: hostname(),
            functions: config.functions.names(),
            session_key: trust.session_key().to_string(),
            held_outputs: vec![],
            running_attempts: vec![],
            protocol_version: quiver_proto::PROTOCOL_VERSION,
        },
        store.clone(),
        trust.clone(),
    )?);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut server_shutdown = shutdown_rx.clone();
    let shutdown_rx_health = shutdown_rx.clone();
    let server = config
        .tls
        .grpc_server_builder()?
        .layer(AuthLayer::new(Arc::new(WorkerAccess {
            trust: trust.clone(),
        })))
        .add_service(
            pb::worker_server::WorkerServer::new(WorkerService::new(
                executor.clone(),
                trust.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            FlightServiceServer::new(ShuffleFlightService::new(store.clone(), trust, metrics))
                // A DoGet request is one small ticket: nothing bigger is buffered.
                .max_decoding_message_size(MAX_TICKET_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(listener.into_incoming(), async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        });
    let server_task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "worker server failed");
        }
    });
    let heartbeat_task = tokio::spawn(link.clone().heartbeat_loop(
        executor.clone(),
        config.heartbeat_interval,
        shutdown_rx,
    ));
    let report_task = tokio::spawn(link.clone().report_loop(report_rx));
    let mut tasks = vec![server_task, heartbeat_task];
    let mut health = None;
    if let Some(listener) = health_listener {
        health = listener.local_addr().ok();
        let endpoint = crate::health::HealthEndpoint {
            link: link.clone(),
            executor: executor.clone(),
            metrics_token: match (&config.token, config.metrics_public) {
                (Some(token), false) => Some(token.digest()),
                _ => None,
            },
        };
        tasks.push(tokio::spawn(crate::health::serve(
            listener,
            Arc::new(endpoint),
            shutdown_rx_health,
        )));
    }
    info!(worker = %id, %address, slots, coordinator = %config.coordinator_url, "worker started");
    Ok(RunningWorker {
        id,
        address,
        work_dir,
        health,
        work_dir_lock,
        executor,
        link,
        shutdown: shutdown_tx,
        tasks,
        report_task,
    })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
