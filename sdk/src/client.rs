//! [`Client`]: a driver's connection to a coordinator.

use std::sync::Arc;
use std::time::Duration;

use quiver_net::{AuthChannel, Dialer, PeerChannels};
use quiver_plan::{Sink, StorageOptions};
use quiver_proto::MAX_MESSAGE_BYTES;
use quiver_proto::v1 as pb;
use quiver_proto::v1::coordinator_client::CoordinatorClient;

use crate::client_options::ClientOptions;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::job_handle::{JobHandle, JobProgress, StageProgress};

/// How long [`Client::connect`] waits for the coordinator to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options a job may set. What is left at its default here is left out of the request, and
/// the coordinator chooses.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobOptions {
    /// Reduce-side partitions of every shuffle. `None`: twice the cluster's total slots when
    /// the job starts.
    pub shuffle_partitions: Option<u32>,
    /// Rows per batch inside tasks. `None`: the coordinator's default, 8192.
    pub batch_size: Option<u32>,
    /// Joins whose right side reads at most this many bytes of input broadcast it instead of
    /// shuffling both sides. `None`: the default, 10 MiB; `Some(0)`: never broadcast.
    pub broadcast_threshold: Option<u64>,
}

impl From<&JobOptions> for pb::JobOptions {
    fn from(o: &JobOptions) -> Self {
        // The same meaning on the wire: absent for the default (and for the threshold, 0
        // for never).
        pb::JobOptions {
            shuffle_partitions: o.shuffle_partitions,
            batch_size: o.batch_size,
            broadcast_threshold: o.broadcast_threshold,
        }
    }
}

/// A connection to a coordinator. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    url: String,
    inner: CoordinatorClient<AuthChannel>,
    /// Connections to workers, for fetching results (same token and TLS settings).
    workers: Arc<PeerChannels>,
    /// How long a job handle keeps reconnecting to a lost coordinator.
    reconnect_timeout: Duration,
    /// Object store credentials and endpoints sent with every job (for its input URLs).
    storage: StorageOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url).finish()
    }
}

impl Client {
    /// Connects to the coordinator at `url` (e.g. `http://127.0.0.1:50050`) with the
    /// credentials and TLS settings of the environment ([`ClientOptions::from_env`]). Fails
    /// within a few seconds if nothing answers there.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, ClientOptions::from_env()).await
    }

    /// Connects to the coordinator at `url` with `options`: the token to present and the TLS
    /// settings for `https://` URLs.
    ///
    /// ```no_run
    /// # async fn run() -> quiver::Result<()> {
    /// use quiver::{Client, ClientOptions};
    /// let client = Client::connect_with(
    ///     "https://coordinator.example:50050",
    ///     ClientOptions::new().token_file("client-token").tls_ca("ca.pem"),
    /// )
    /// .await?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Self> {
        let connect_error = |message: String| Error::Connect {
            url: url.to_string(),
            message,
        };
        let dialer: Dialer = options.dialer()?;
        let endpoint = dialer
            .endpoint(url)
            .map_err(|e| Error::Config(e.to_string()))?;
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect_error(crate::error::error_chain(&e)))?;
        Ok(Client {
            url: url.to_string(),
            inner: CoordinatorClient::new(dialer.authenticate(channel))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            // Results are fetched with each ticket's grant as credential, never the client
            // token: a worker is trusted with data, not with the client API.
            workers: Arc::new(PeerChannels::new(
                dialer.with_credentials(quiver_net::CallCredentials::none()),
            )),
            reconnect_timeout: options.reconnect_timeout_or_default(),
            storage: StorageOptions::new(),
        })
    }

    /// This client, sending `storage` with every job it submits: the credentials and
    /// endpoints the workers use to read the jobs' object store inputs (`s3://`, `gs://`,
    /// `az://`, ...), on top of their own environment. List the inputs with the same options
    /// ([`crate::Sources::with_storage`]). The values travel to the workers with each task and
    /// are never logged or shown in a job's status.
    ///
    /// ```no_run
    /// # async fn run() -> quiver::Result<()> {
    /// use quiver::{Client, Sources, StorageOptions};
    /// let storage = StorageOptions::from_pairs([
    ///     ("aws_endpoint", "http://127.0.0.1:9000"),
    ///     ("aws_allow_http", "true"),
    /// ])
    /// .expect("known settings");
    /// let client = Client::connect("http://127.0.0.1:50050")
    ///     .await?
    ///     .with_storage_options(storage.clone());
    /// let logs = Sources::with_storage(storage).read_text(&["s3://logs/2024/*.txt"])?;
    /// let lines = logs.count(&client).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_storage_options(mut self, storage: StorageOptions) -> Self {
        self.storage = storage;
        self
    }

    /// The coordinator's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn grpc(&self) -> CoordinatorClient<AuthChannel> {
        self.inner.clone()
    }

    pub(crate) fn reconnect_timeout(&self) -> Duration {
        self.reconnect_timeout
    }

    pub(crate) fn workers(&self) -> &PeerChannels {
        &self.workers
    }

    /// Submits `dataset` with `sink` and returns at once with a handle to the job.
    pub async fn submit(&self, dataset: &Dataset, sink: Sink) -> Result<JobHandle> {
        self.submit_with(dataset, sink, "job", JobOptions::default())
            .await
    }

    /// Submits with a job name and options.
    pub async fn submit_with(
        &self,
        dataset: &Dataset,
        sink: Sink,
        name: &str,
        options: JobOptions,
    ) -> Result<JobHandle> {
        let request = job_request(dataset, &sink, name, &options, &self.storage);
        let id = self
            .grpc()
            .submit_job(request)
            .await
            .map_err(|e| Error::rpc("SubmitJob", e))?
            .into_inner()
            .job_id;
        Ok(JobHandle::new(id, self.clone()))
    }

    /// How the coordinator would run `dataset` with `sink` and `options` on the cluster as it
    /// is now — its stages, each with its tasks, pipeline and output — without running
    /// anything. The plan is checked as a submission is (paths, limits, functions).
    ///
    /// ```no_run
    /// # async fn run(client: quiver::Client, ds: quiver::Dataset) -> quiver::Result<()> {
    /// let explained = client
    ///     .explain(&ds, quiver::Sink::Collect, quiver::JobOptions::default())
    ///     .await?;
    /// println!("{explained}");
    /// # Ok(()) }
    /// ```
    pub async fn explain(
        &self,
        dataset: &Dataset,
        sink: Sink,
        options: JobOptions,
    ) -> Result<Explanation> {
        let request = job_request(dataset, &sink, "", &options, &self.storage);
        let answer = self
            .grpc()
            .explain_job(request)
            .await
            .map_err(|e| Error::rpc("ExplainJob", e))?
            .into_inner();
        Ok(Explanation {
            logical_plan: dataset.plan().describe(),
            stages: answer
                .stages
                .iter()
                .map(StageProgress::try_from)
                .collect::<Result<_>>()?,
            total_slots: answer.total_slots,
        })
    }

    /// A handle to an existing job.
    pub fn job(&self, id: &str) -> JobHandle {
        JobHandle::new(id.to_string(), self.clone())
    }

    /// Every job the coordinator knows, oldest first.
    pub async fn list_jobs(&self) -> Result<Vec<JobProgress>> {
        let jobs = self
            .grpc()
            .list_jobs(pb::ListJobsRequest {})
            .await
            .map_err(|e| Error::rpc("ListJobs", e))?
            .into_inner()
            .jobs;
        jobs.into_iter().map(JobProgress::try_from).collect()
    }

    /// Every worker the coordinator knows, alive or lost.
    pub async fn list_workers(&self) -> Result<Vec<pb::WorkerStatus>> {
        Ok(self
            .grpc()
            .list_workers(pb::ListWorkersRequest {})
            .await
            .map_err(|e| Error::rpc("ListWorkers", e))?
            .into_inner()
            .workers)
    }
}

/// What `SubmitJob` and `ExplainJob` both take: the job as the coordinator sees it.
fn job_request(
    dataset: &Dataset,
    sink: &Sink,
    name: &str,
    options: &JobOptions,
    storage: &StorageOptions,
) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        name: name.to_string(),
        plan: Some(dataset.plan().into()),
        sink: Some(sink.into()),
        options: Some(options.into()),
        storage_options: quiver_plan::proto_conversion::storage_options_to_proto(storage),
    }
}

/// How a job would run: its logical plan as written, and the stages the coordinator cuts it
/// into for the cluster as it is (see [`Client::explain`]). `Display` prints both.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The dataset's steps, from the sources up (inputs of a join or union in parentheses).
    pub logical_plan: String,
    /// The stages in the order they would run; none has run.
    pub stages: Vec<StageProgress>,
    /// The task slots the stages were planned for.
    pub total_slots: u32,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "logical plan: {}", self.logical_plan)?;
        writeln!(
            f,
            "stages, as planned for {} task slot(s):",
            self.total_slots
        )?;
        for stage in &self.stages {
            let inputs = if stage.inputs.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = stage.inputs.iter().map(u32::to_string).collect();
                format!(" (reads stage {})", ids.join(", "))
            };
            writeln!(
                f,
                "  stage {} [{} tasks]{inputs}: {}",
                stage.id, stage.tasks_total, stage.description
            )?;
            if let Some(adaptive) = &stage.adaptive {
                writeln!(f, "    adaptive: {adaptive}")?;
            }
        }
        Ok(())
    }
}
