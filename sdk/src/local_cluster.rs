//! [`LocalCluster`]: a coordinator and N workers inside this process, on loopback ports,
//! talking the same gRPC and Flight as a real cluster — with a random token of its own, so
//! that other users of the machine cannot use it.
//!
//! Only with the `local-cluster` feature: it links the worker and the coordinator into the
//! driver, which a driver of a real cluster does not need.

use std::path::PathBuf;
use std::time::Duration;

use quiver_coordinator::{CoordinatorConfig, RunningCoordinator};
use std::sync::Arc;

use quiver_worker::{FunctionRegistry, RunningWorker, WorkerConfig};

use quiver_net::{ClusterTokens, Token};

use crate::client::Client;
use crate::client_options::ClientOptions;
use crate::error::{Error, Result};

/// Settings of a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    workers: usize,
    slots_per_worker: Option<usize>,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    worker_wait_timeout: Duration,
    functions: Arc<FunctionRegistry>,
    memory_limit: Option<usize>,
    http: bool,
}

impl LocalClusterBuilder {
    /// Also serve the coordinator's dashboard and `/metrics`, and each worker's `/healthz`,
    /// `/readyz` and `/metrics`, on loopback ports chosen at start (see
    /// [`LocalCluster::dashboard_url`] and [`LocalCluster::worker_http_url`]). Off by default.
    /// They need the cluster's [token](LocalCluster::token), as on a real cluster.
    pub fn serve_http(mut self, on: bool) -> Self {
        self.http = on;
        self
    }

    /// Bytes of operator state each worker's tasks may hold before spilling to disk
    /// (default: half of the machine's memory, divided among the workers).
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Number of workers to start.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Task slots per worker (default: the machine's cores divided among the workers).
    pub fn slots_per_worker(mut self, n: usize) -> Self {
        self.slots_per_worker = Some(n.max(1));
        self
    }

    /// The user functions every worker of the cluster has.
    pub fn functions(mut self, functions: FunctionRegistry) -> Self {
        self.functions = Arc::new(functions);
        self
    }

    /// How often workers heartbeat.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long a job waits while no worker is registered before it fails.
    pub fn worker_wait_timeout(mut self, timeout: Duration) -> Self {
        self.worker_wait_timeout = timeout;
        self
    }

    /// Silence after which the coordinator declares a worker lost.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Starts the cluster and waits until every worker has registered.
    pub async fn start(self) -> Result<LocalCluster> {
        let token = Token::random();
        let coordinator = quiver_coordinator::start(CoordinatorConfig {
            bind: ([127, 0, 0, 1], 0).into(),
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            scheduler: quiver_coordinator::SchedulerConfig {
                worker_wait_timeout: self.worker_wait_timeout,
                ..Default::default()
            },
            dashboard: self.http.then(|| ([127, 0, 0, 1], 0).into()),
            tokens: ClusterTokens::shared(&token),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Cluster(e.to_string()))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = self
            .slots_per_worker
            .unwrap_or_else(|| (cores / self.workers.max(1)).max(1));
        let mut cluster = LocalCluster {
            url: coordinator.url(),
            token,
            coordinator: Some(coordinator),
            workers: Vec::new(),
            slots_per_worker: slots,
            http: self.http,
            heartbeat_interval: self.heartbeat_interval,
            functions: self.functions.clone(),
            memory_limit: self
                .memory_limit
                .unwrap_or_else(|| quiver_worker::default_memory_limit() / self.workers.max(1)),
            work_dir: std::env::temp_dir().join(format!("quiver-local-{}", uuid::Uuid::new_v4())),
        };
        for _ in 0..self.workers {
            cluster.add_worker().await?;
        }
        if self.workers > 0 {
            cluster.wait_for_workers(self.workers).await?;
        }
        Ok(cluster)
    }
}

/// A whole cluster in this process.
///
/// ```no_run
/// # async fn run() -> quiver::Result<()> {
/// let cluster = quiver::LocalCluster::start(2).await?;
/// let client = cluster.client().await?;
/// // ... build datasets and run them with `client` ...
/// cluster.shutdown().await;
/// # Ok(()) }
/// ```
pub struct LocalCluster {
    url: String,
    token: Token,
    coordinator: Option<RunningCoordinator>,
    workers: Vec<Option<RunningWorker>>,
    slots_per_worker: usize,
    memory_limit: usize,
    /// Workers serve their HTTP endpoint.
    http: bool,
    heartbeat_interval: Duration,
    functions: Arc<FunctionRegistry>,
    work_dir: PathBuf,
}

impl LocalCluster {
    /// Starts a coordinator and `workers` workers sharing this machine's cores.
    pub async fn start(workers: usize) -> Result<Self> {
        Self::builder().workers(workers).start().await
    }

    /// A builder for other settings.
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder {
            workers: 2,
            slots_per_worker: None,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            worker_wait_timeout: Duration::from_secs(300),
            functions: Arc::default(),
            memory_limit: None,
            http: false,
        }
    }

    /// The coordinator's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the coordinator's dashboard and `/metrics`, when the cluster was built with
    /// [`LocalClusterBuilder::serve_http`].
    pub fn dashboard_url(&self) -> Option<String> {
        self.coordinator.as_ref()?.dashboard_url()
    }

    /// The URL of worker `index`'s `/healthz`, `/readyz` and `/metrics`, when the cluster was
    /// built with [`LocalClusterBuilder::serve_http`] (and the worker runs).
    pub fn worker_http_url(&self, index: usize) -> Option<String> {
        let worker = self.workers.get(index)?.as_ref()?;
        worker.health_address().map(|a| format!("http://{a}"))
    }

    /// The cluster's token (random, made at start): what workers you start yourself, or other
    /// clients, must present — e.g. through `QUIVER_TOKEN`.
    pub fn token(&self) -> &str {
        self.token.expose()
    }

    /// How to connect to this cluster: its token, no TLS.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions::new().token(self.token.expose())
    }

    /// A client connected to this cluster's coordinator.
    pub async fn client(&self) -> Result<Client> {
        Client::connect_with(&self.url, self.client_options()).await
    }

    /// Starts one more worker; returns its index.
    pub async fn add_worker(&mut self) -> Result<usize> {
        let worker = quiver_worker::start(WorkerConfig {
            coordinator_url: self.url.clone(),
            slots: self.slots_per_worker,
            work_dir: self.work_dir.clone(),
            heartbeat_interval: self.heartbeat_interval,
            functions: self.functions.clone(),
            memory_limit: self.memory_limit,
            token: Some(self.token.clone()),
            health_bind: self.http.then(|| ([127, 0, 0, 1], 0).into()),
            ..WorkerConfig::default()
        })
        .await
        .map_err(|e| Error::Cluster(e.to_string()))?;
        self.workers.push(Some(worker));
        Ok(self.workers.len() - 1)
    }

    /// Stops worker `index` (its tasks are cancelled and its files removed).
    pub async fn stop_worker(&mut self, index: usize) {
        if let Some(w) = self.workers.get_mut(index).and_then(Option::take) {
            w.shutdown().await;
        }
    }

    /// The directory under which the workers keep their shuffle files.
    pub fn work_dir(&self) -> &std::path::Path {
        &self.work_dir
    }

    /// Workers started and not stopped.
    pub fn worker_count(&self) -> usize {
        self.workers.iter().flatten().count()
    }

    /// Waits (up to 10 s) until the coordinator lists `n` alive workers.
    pub async fn wait_for_workers(&self, n: usize) -> Result<()> {
        let client = self.client().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let alive = client
                .list_workers()
                .await?
                .iter()
                .filter(|w| w.state == quiver_proto::v1::WorkerState::Alive as i32)
                .count();
            if alive >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Cluster(format!(
                    "only {alive} of {n} workers registered within 10 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every worker and the coordinator, and removes the workers' files.
    pub async fn shutdown(mut self) {
        for i in 0..self.workers.len() {
            self.stop_worker(i).await;
        }
        if let Some(c) = self.coordinator.take() {
            c.shutdown().await;
        }
        let _ = tokio::fs::remove_dir_all(&self.work_dir).await;
    }
}
