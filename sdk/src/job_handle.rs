//! [`JobHandle`]: follow a submitted job, wait for it, fetch its results.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use quiver_net::fetch_bucket;
use quiver_plan::proto_conversion::{enum_value, required, schema_from_bytes, unspecified};
use quiver_plan::{SchemaRef, StageOutput};
use quiver_proto::v1 as pb;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::task_attempt::TaskAttempt;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Submitted; not started (for example, no worker has registered yet).
    Queued,
    /// Tasks are running.
    Running,
    /// Finished with every task done.
    Succeeded,
    /// A task failed too often, or could not run.
    Failed,
    /// Cancelled by request.
    Cancelled,
}

impl JobState {
    /// Succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Where a stage is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageState {
    /// Its inputs are not complete yet.
    Waiting,
    /// Some tasks were launched.
    Running,
    /// Every task is done.
    Complete,
    /// The job failed while the stage ran.
    Failed,
    /// The job was cancelled while the stage ran.
    Cancelled,
    /// The job ended before the stage started.
    Skipped,
}

/// The progress of one stage.
#[derive(Clone, Debug)]
pub struct StageProgress {
    /// The stage's number within the job.
    pub id: u32,
    /// The stages whose output it reads.
    pub inputs: Vec<u32>,
    /// Where its rows go (a hash shuffle, or the job's sink).
    pub output: StageOutput,
    /// Its pipeline, in words.
    pub description: String,
    /// Adaptive execution, in words: what it decided about this stage from the measured
    /// sizes of its inputs (e.g. "coalesced 8 shuffle partitions into 2 tasks"), or, before
    /// that, what it may decide. `None`: nothing adaptive applies to it.
    pub adaptive: Option<String>,
    /// Its state.
    pub state: StageState,
    /// Number of tasks (partitions).
    pub tasks_total: u32,
    /// Tasks finished.
    pub tasks_done: u32,
    /// Tasks running now.
    pub tasks_running: u32,
    /// Rows written by finished tasks.
    pub rows_out: u64,
    /// Bytes written by finished tasks.
    pub bytes_out: u64,
    /// Bytes finished tasks spilled to disk to stay within their workers' memory limit.
    pub spilled_bytes: u64,
    /// Time since its first task started (to its end, once complete).
    pub elapsed: Duration,
    /// Every attempt of its tasks, by partition, oldest first; filled by
    /// [`JobHandle::details`] only (empty in [`JobHandle::status`] and progress updates).
    pub attempts: Vec<TaskAttempt>,
}

impl TryFrom<&pb::StageStatus> for StageProgress {
    type Error = Error;
    fn try_from(st: &pb::StageStatus) -> Result<Self> {
        Ok(StageProgress {
            id: st.stage_id,
            inputs: st.input_stages.clone(),
            output: required("stage.output", &st.output)?.try_into()?,
            description: st.description.clone(),
            adaptive: (!st.adaptive.is_empty()).then(|| st.adaptive.clone()),
            state: match enum_value("stage.state", st.state)? {
                pb::StageState::Unspecified => return Err(unspecified("stage.state").into()),
                pb::StageState::Waiting => StageState::Waiting,
                pb::StageState::Running => StageState::Running,
                pb::StageState::Complete => StageState::Complete,
                pb::StageState::Failed => StageState::Failed,
                pb::StageState::Cancelled => StageState::Cancelled,
                pb::StageState::Skipped => StageState::Skipped,
            },
            tasks_total: st.partitions,
            tasks_done: st.tasks_done,
            tasks_running: st.tasks_running,
            rows_out: st.rows_out,
            bytes_out: st.bytes_out,
            spilled_bytes: st.spilled_bytes,
            elapsed: Duration::from_millis(st.elapsed_ms),
            attempts: st
                .attempts
                .iter()
                .map(TaskAttempt::try_from)
                .collect::<Result<_>>()?,
        })
    }
}

/// A snapshot of a job's progress.
#[derive(Clone, Debug)]
pub struct JobProgress {
    /// The job id.
    pub job_id: String,
    /// The job's name.
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Why it is not running yet, when queued.
    pub waiting_reason: Option<String>,
    /// Its stages (empty until it starts).
    pub stages: Vec<StageProgress>,
    /// Time since submission (to its end, once finished).
    pub elapsed: Duration,
    /// The schema of its result rows.
    pub result_schema: SchemaRef,
    results: Vec<pb::ResultPartition>,
    results_unavailable: bool,
}

impl JobProgress {
    /// Tasks done and total over all stages.
    pub fn tasks(&self) -> (u32, u32) {
        self.stages
            .iter()
            .fold((0, 0), |(d, t), s| (d + s.tasks_done, t + s.tasks_total))
    }
}

impl TryFrom<pb::JobStatus> for JobProgress {
    type Error = Error;
    fn try_from(s: pb::JobStatus) -> Result<Self> {
        let state = match enum_value("job.state", s.state)? {
            pb::JobState::Unspecified => return Err(unspecified("job.state").into()),
            pb::JobState::Queued => JobState::Queued,
            pb::JobState::Running => JobState::Running,
            pb::JobState::Succeeded => JobState::Succeeded,
            pb::JobState::Failed => JobState::Failed,
            pb::JobState::Cancelled => JobState::Cancelled,
        };
        let stages = s
            .stages
            .iter()
            .map(StageProgress::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(JobProgress {
            job_id: s.job_id,
            name: s.name,
            state,
            error: s.error,
            waiting_reason: s.waiting_reason,
            stages,
            elapsed: Duration::from_millis(s.elapsed_ms),
            result_schema: schema_from_bytes(&s.result_schema)?,
            results: s.results,
            results_unavailable: s.results_unavailable,
        })
    }
}

/// A submitted job.
#[derive(Clone, Debug)]
pub struct JobHandle {
    id: String,
    client: Client,
}

impl JobHandle {
    pub(crate) fn new(id: String, client: Client) -> Self {
        JobHandle { id, client }
    }

    /// The job id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The job's current progress.
    pub async fn status(&self) -> Result<JobProgress> {
        self.get(false).await
    }

    /// The job's current progress with every attempt of every task
    /// ([`StageProgress::attempts`]): where and when each ran, how it ended, what it wrote and
    /// read. For a finished job too, while the coordinator that ran it is up and keeps it in
    /// its history; a job that finished under an earlier coordinator lists no attempts.
    ///
    /// ```no_run
    /// # async fn show(client: quiver::Client, id: &str) -> quiver::Result<()> {
    /// let job = client.job(id).details().await?;
    /// for stage in &job.stages {
    ///     for a in &stage.attempts {
    ///         println!("stage {} task {} on {}: {:?} in {:?}", stage.id, a.partition, a.worker_id, a.state, a.elapsed);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn details(&self) -> Result<JobProgress> {
        self.get(true).await
    }

    async fn get(&self, include_attempts: bool) -> Result<JobProgress> {
        let status = self
            .client
            .grpc()
            .get_job(pb::GetJobRequest {
                job_id: self.id.clone(),
                include_attempts,
            })
            .await
            .map_err(|e| Error::rpc("GetJob", e))?
            .into_inner();
        JobProgress::try_from(status)
    }

    /// Progress updates until the job finishes (the last item is the final state).
    ///
    /// When the connection to the coordinator breaks — it restarted, or the network failed —
    /// the stream reconnects with backoff for up to the client's reconnect timeout
    /// ([`crate::ClientOptions::reconnect_timeout`], 60 s by default) and goes on from the
    /// job's current state. It ends with an error if the coordinator cannot be reached in
    /// that time, or if it answers but no longer knows the job.
    pub async fn progress(&self) -> Result<impl Stream<Item = Result<JobProgress>> + use<>> {
        // A first call that meets an outage (the coordinator restarting just then) is
        // followed like a connection lost later; a refusal is an error at once.
        let (stream, outage_since) = match self.watch().await {
            Ok(first) => (Some(first), None),
            Err(status) if is_outage(&status) => (None, Some(tokio::time::Instant::now())),
            Err(status) => return Err(Error::rpc("WatchJob", status)),
        };
        let follower = ProgressFollower {
            handle: self.clone(),
            stream,
            finished: false,
            outage_since,
            broken_streams: 0,
        };
        Ok(futures::stream::unfold(follower, |mut f| async move {
            f.next().await.map(|item| (item, f))
        }))
    }

    async fn watch(&self) -> std::result::Result<tonic::Streaming<pb::JobStatus>, tonic::Status> {
        Ok(self
            .client
            .grpc()
            .watch_job(pb::WatchJobRequest {
                job_id: self.id.clone(),
            })
            .await?
            .into_inner())
    }

    /// Waits for the job to finish; an error if it failed or was cancelled.
    pub async fn wait(&self) -> Result<JobProgress> {
        self.wait_observing(|_| {}).await
    }

    /// [`JobHandle::wait`], calling `observe` with every update on the way.
    pub(crate) async fn wait_observing(
        &self,
        observe: impl FnMut(&JobProgress),
    ) -> Result<JobProgress> {
        let last = self.follow(observe).await?;
        match last.state {
            JobState::Succeeded => Ok(last),
            JobState::Failed => Err(Error::JobFailed {
                job: self.id.clone(),
                message: last.error.unwrap_or_default(),
            }),
            JobState::Cancelled => Err(Error::JobCancelled {
                job: self.id.clone(),
            }),
            _ => Err(Error::Rpc {
                request: "WatchJob",
                message: "the progress stream ended before the job finished".into(),
            }),
        }
    }

    /// Follows the job until it ends, calling `observe` with every update, and returns its
    /// last status — whether it succeeded, failed or was cancelled (unlike
    /// [`JobHandle::wait`], which makes the last two errors). Errors are those of following
    /// it: the coordinator unreachable past the reconnect timeout, or the job unknown.
    ///
    /// ```no_run
    /// # async fn example(job: quiver::JobHandle) -> quiver::Result<()> {
    /// let last = job
    ///     .follow(|p| println!("{:?}: {}/{} tasks", p.state, p.tasks().0, p.tasks().1))
    ///     .await?;
    /// println!("ended {:?}: {}", last.state, last.error.unwrap_or_default());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn follow(&self, mut observe: impl FnMut(&JobProgress)) -> Result<JobProgress> {
        let mut last = None;
        let mut stream = Box::pin(self.progress().await?);
        while let Some(p) = stream.next().await {
            let p = p?;
            observe(&p);
            let done = p.state.is_terminal();
            last = Some(p);
            if done {
                break;
            }
        }
        // The stream can end early if the coordinator closes it; ask once more.
        match last {
            Some(p) if p.state.is_terminal() => Ok(p),
            _ => self.status().await,
        }
    }

    /// Waits for the job, then fetches its result rows from the workers that hold them
    /// (directly, over Arrow Flight; the coordinator never carries them).
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        let done = self.wait().await?;
        if done.results_unavailable {
            return Err(Error::Fetch {
                job: self.id.clone(),
                address: self.client.url().to_string(),
                message: "the job succeeded, but its coordinator restarted since and no longer knows where its results are; run the job again".into(),
            });
        }
        let peers = self.client.workers();
        let mut partitions = done.results.clone();
        partitions.sort_by_key(|r| r.partition);
        let mut batches = Vec::new();
        for part in partitions {
            let fetch_error = |message: String| Error::Fetch {
                job: self.id.clone(),
                address: part.address.clone(),
                message,
            };
            let ticket = part
                .ticket
                .ok_or_else(|| fetch_error("the result partition has no ticket".into()))?;
            // The ticket's grant is the credential: the client token never goes to a worker.
            let bearer = ticket.grant.as_ref().map(quiver_net::grant_bearer);
            let stream = fetch_bucket(peers, &part.address, &ticket, bearer.as_deref())
                .await
                .map_err(fetch_error)?;
            let mut stream = Box::pin(stream);
            while let Some(batch) = stream.next().await {
                batches.push(batch.map_err(fetch_error)?);
            }
        }
        // The workers may delete the results now; if this fails they go after the
        // coordinator's retention period anyway.
        let _ = self
            .client
            .grpc()
            .release_results(pb::ReleaseResultsRequest {
                job_id: self.id.clone(),
            })
            .await;
        Ok(batches)
    }

    /// Cancels the job; false if it had already finished. A `write_parquet` job whose output
    /// commit has begun cannot be cancelled any more: that is an error saying so.
    pub async fn cancel(&self) -> Result<bool> {
        Ok(self
            .client
            .grpc()
            .cancel_job(pb::CancelJobRequest {
                job_id: self.id.clone(),
            })
            .await
            .map_err(|e| Error::rpc("CancelJob", e))?
            .into_inner()
            .cancelled)
    }
}

/// Follows one job's `WatchJob` stream across broken connections (see [`JobHandle::progress`]).
struct ProgressFollower {
    handle: JobHandle,
    /// The open stream; `None` after the connection broke.
    stream: Option<tonic::Streaming<pb::JobStatus>>,
    /// The job ended, or following it failed: nothing more comes.
    finished: bool,
    /// Since when the coordinator has given no update (set when a connection breaks, cleared
    /// by the next update): the reconnect timeout runs from here, across however many
    /// reconnections, so a coordinator that keeps closing streams cannot keep us forever.
    outage_since: Option<tokio::time::Instant>,
    /// Streams that opened and broke again without an update, in this outage.
    broken_streams: u32,
}

/// The first pause before reconnecting, doubled after each failed try up to
/// [`RECONNECT_BACKOFF_MAX`].
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

impl ProgressFollower {
    async fn next(&mut self) -> Option<Result<JobProgress>> {
        if self.finished {
            return None;
        }
        loop {
            if self.stream.is_none() {
                let since = *self
                    .outage_since
                    .get_or_insert_with(tokio::time::Instant::now);
                // A stream that opened but broke before any update is part of the same
                // outage: pause as between failed connects, and keep to the deadline.
                if self.broken_streams > 0 {
                    let pause = RECONNECT_BACKOFF_MIN
                        .saturating_mul(1 << self.broken_streams.min(5))
                        .min(RECONNECT_BACKOFF_MAX);
                    tokio::time::sleep(pause).await;
                }
                match self.reconnect(since).await {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match stream.message().await {
                Ok(Some(status)) => {
                    self.outage_since = None;
                    self.broken_streams = 0;
                    let progress = JobProgress::try_from(status);
                    self.finished = progress.as_ref().map_or(true, |p| p.state.is_terminal());
                    return Some(progress);
                }
                // The coordinator ends the stream when the job ends; ending it before that means
                // it is going away (a restart): follow the job on the next connection.
                Ok(None) => {
                    tokio::time::sleep(RECONNECT_BACKOFF_MIN).await;
                    self.stream = None;
                    self.broken_streams += 1;
                }
                // A stream that breaks mid-way is a connection lost, whatever code the transport
                // gave it (h2 resets surface as `Internal`); the reconnect sorts out refusals.
                Err(status) if is_outage(&status) => {
                    tracing::warn!(job = %self.handle.id, error = %crate::error::status_text(&status), "lost the coordinator; reconnecting");
                    self.stream = None;
                    self.broken_streams += 1;
                }
                Err(status) => {
                    self.finished = true;
                    return Some(Err(Error::rpc("WatchJob", status)));
                }
            }
        }
    }

    /// Opens a new `WatchJob` stream, retrying with backoff while the coordinator cannot be
    /// reached, until the client's reconnect timeout after `outage_since`.
    async fn reconnect(
        &self,
        outage_since: tokio::time::Instant,
    ) -> Result<tonic::Streaming<pb::JobStatus>> {
        let client = &self.handle.client;
        let timeout = client.reconnect_timeout();
        let deadline = outage_since + timeout;
        let mut backoff = RECONNECT_BACKOFF_MIN;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Connect {
                    url: client.url().to_string(),
                    message: format!(
                        "lost while following job {} and its updates not back within {timeout:?}",
                        self.handle.id
                    ),
                });
            }
            let last_error = match self.handle.watch().await {
                Ok(stream) => return Ok(stream),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(Error::JobLost {
                        job: self.handle.id.clone(),
                        url: client.url().to_string(),
                    });
                }
                Err(status) if is_outage(&status) => status,
                Err(status) => return Err(Error::rpc("WatchJob", status)),
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Connect {
                    url: client.url().to_string(),
                    message: format!(
                        "lost while following job {} and not back within {timeout:?}: {}",
                        self.handle.id,
                        crate::error::status_text(&last_error)
                    ),
                });
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }
}

/// Whether a failed `WatchJob` call or stream is an outage — retried until the client's
/// reconnect timeout — rather than an answer that ends following. An outage is what the
/// transport says on this side (nothing listening, a connection reset or broken mid-stream:
/// such statuses carry their local cause, whatever code tonic gave them, e.g. `Internal` for
/// an h2 reset) or what a peer says while it cannot serve (`Unavailable`, ...). A status the
/// coordinator sent on purpose (the job is unknown, the caller is not allowed, an internal
/// error) ends following at once.
fn is_outage(status: &tonic::Status) -> bool {
    quiver_net::connection_failed(status) || std::error::Error::source(status).is_some()
}
