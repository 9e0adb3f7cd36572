//! [`CoordinatorLink`]: everything a worker says to the coordinator — registration,
//! heartbeats and task results.
//!
//! Heartbeats run in their own tokio task on a timer, never in the work loop: a worker whose
//! every slot is busy with CPU work still heartbeats on time, because that work runs on rayon
//! threads. When the coordinator is unreachable the worker keeps trying; when a heartbeat
//! answers that the coordinator does not know this worker (it restarted, or declared the
//! worker lost), the worker registers again by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quiver_net::{AuthChannel, Dialer};
use quiver_proto::v1 as pb;
use quiver_proto::v1::coordinator_client::CoordinatorClient;
use quiver_proto::{MAX_HELD_OUTPUTS, MAX_MESSAGE_BYTES};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::cluster_trust::ClusterTrust;
use crate::error::{Result, WorkerError};
use crate::shuffle::map_output_store::MapOutputStore;
use crate::task_executor::{TaskExecutor, TaskReport};

/// How long to keep retrying a task report while the coordinator is unreachable.
const REPORT_RETRY_FOR: Duration = Duration::from_secs(60);

/// The worker's connection to its coordinator.
pub struct CoordinatorLink {
    url: String,
    store: Arc<MapOutputStore>,
    client: CoordinatorClient<AuthChannel>,
    registration: pb::RegisterWorkerRequest,
    trust: Arc<ClusterTrust>,
    registered: AtomicBool,
    draining: AtomicBool,
    released: AtomicBool,
    /// Why this worker cannot work for the coordinator (another wire protocol), once known:
    /// the worker stops registering, and its process exits saying so.
    incompatible: watch::Sender<Option<String>>,
}

impl CoordinatorLink {
    /// A link to `url` (connected lazily, so a worker may start before its coordinator),
    /// dialed by `dialer` (which carries the worker's token and session key).
    pub fn new(
        url: &str,
        dialer: &Dialer,
        registration: pb::RegisterWorkerRequest,
        store: Arc<MapOutputStore>,
        trust: Arc<ClusterTrust>,
    ) -> Result<Self> {
        let channel = dialer
            .lazy(url, Some(Duration::from_secs(30)))
            .map_err(|e| WorkerError::Coordinator {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(CoordinatorLink {
            url: url.to_string(),
            store,
            client: CoordinatorClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            registration,
            trust,
            registered: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            released: AtomicBool::new(false),
            incompatible: watch::channel(None).0,
        })
    }

    /// Whether the last exchange with the coordinator found this worker registered.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed)
    }

    /// From now on, heartbeats say this worker is draining: it gets no new tasks.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the coordinator said a draining worker is no longer needed.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Relaxed)
    }

    /// Why the coordinator is one this worker cannot work for, when it turns out to be: waits
    /// until then (never, for a coordinator of the same release).
    pub fn incompatible(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut found = self.incompatible.subscribe();
        async move {
            let message = found
                .wait_for(Option::is_some)
                .await
                .map(|m| m.clone().unwrap_or_default());
            match message {
                Ok(message) => message,
                // The link is gone (the worker stopped): nothing more will be found.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Whether this worker is draining (it takes no new tasks).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Registers, listing the map outputs this worker holds and the attempts it runs; then
    /// deletes the data of every job
    /// the coordinator no longer knows. Only
    /// jobs found on disk *before* registering are candidates: a task of a new job can only
    /// arrive after registration, so its files are never mistaken for garbage.
    async fn register(&self, executor: &TaskExecutor) -> std::result::Result<(), tonic::Status> {
        let store = self.store.clone();
        let (on_disk, held_outputs) =
            tokio::task::spawn_blocking(move || (store.jobs_on_disk(), store.held()))
                .await
                .unwrap_or_default();
        // What it holds: a restarted coordinator adopts the outputs its resumed jobs need.
        let request = pb::RegisterWorkerRequest {
            held_outputs: held_outputs
                .into_iter()
                .map(|h| pb::HeldMapOutput {
                    job_id: h.attempt.job.0,
                    stage: h.attempt.stage.0,
                    partition: h.attempt.partition,
                    attempt: h.attempt.attempt,
                    bucket_bytes: h.bucket_bytes,
                    rows: h.rows,
                })
                .collect(),
            running_attempts: executor
                .running_attempts()
                .into_iter()
                .take(MAX_HELD_OUTPUTS)
                .map(|a| pb::TaskRef {
                    job_id: a.job.0,
                    stage_id: a.stage.0,
                    partition: a.partition,
                    attempt: a.attempt,
                })
                .collect(),
            ..self.registration.clone()
        };
        let response = self
            .client
            .clone()
            .register_worker(request)
            .await?
            .into_inner();
        // A coordinator of another release (one from before the check sends 0, having
        // registered this worker anyway): fields one side added would be ignored by the other.
        if response.protocol_version != quiver_proto::PROTOCOL_VERSION {
            let message = format!(
                "the coordinator at {} speaks wire protocol {} and this worker {} (0: a release from before the check); run the same Quiver release on the coordinator and every worker",
                self.url,
                response.protocol_version,
                quiver_proto::PROTOCOL_VERSION
            );
            self.incompatible.send_replace(Some(message.clone()));
            return Err(tonic::Status::failed_precondition(message));
        }
        self.trust
            .registered(&response)
            .map_err(tonic::Status::failed_precondition)?;
        self.registered.store(true, Ordering::Relaxed);
        info!(worker = %self.registration.worker_id, coordinator = %self.url, "registered with coordinator");
        if response.lists_live_jobs {
            let live: std::collections::HashSet<&str> =
                response.live_jobs.iter().map(String::as_str).collect();
            let dead: Vec<_> = on_disk
                .into_iter()
                .filter(|j| !live.contains(j.0.as_str()))
                .collect();
            if !dead.is_empty() {
                info!(
                    jobs = dead.len(),
                    "deleting the data of jobs the coordinator no longer knows"
                );
                let store = self.store.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for job in &dead {
                        store.remove_job(job, &[]);
                    }
                })
                .await;
            }
        }
        Ok(())
    }

    /// Registers, then heartbeats every `interval` until `shutdown` flips to true.
    pub async fn heartbeat_loop(
        self: Arc<Self>,
        executor: Arc<TaskExecutor>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unreachable_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let outcome = if self.is_registered() {
                let running = executor.running_count();
                let request = pb::HeartbeatRequest {
                    worker_id: self.registration.worker_id.clone(),
                    running_tasks: running as u32,
                    free_slots: executor.slots().saturating_sub(running) as u32,
                    draining: self.draining.load(Ordering::Relaxed),
                    memory_reserved_bytes: Some(executor.memory_reserved() as u64),
                    shuffle_bytes_served: Some(executor.metrics().shuffle_bytes_served()),
                };
                match self.client.clone().heartbeat(request).await {
                    Ok(r) if r.get_ref().registered => {
                        self.released.store(r.get_ref().release, Ordering::Relaxed);
                        Ok(())
                    }
                    // Released while draining: the coordinator let this worker go and lists
                    // it as left; it must not come back while it finishes stopping.
                    Ok(_) if self.is_released() => Ok(()),
                    Ok(_) => {
                        info!("coordinator does not know this worker; registering again");
                        self.registered.store(false, Ordering::Relaxed);
                        self.register(&executor).await
                    }
                    Err(e) => Err(e),
                }
            } else {
                self.register(&executor).await
            };
            match outcome {
                Ok(()) => unreachable_since = None,
                Err(e) if self.incompatible.borrow().is_some() => {
                    tracing::error!(coordinator = %self.url, error = %e.message(), "this worker cannot work for the coordinator; it stops registering");
                    return;
                }
                Err(e) => {
                    // Log the first failure, then once every 10 s, not every tick.
                    let now = tokio::time::Instant::now();
                    let first = unreachable_since.is_none();
                    let since = *unreachable_since.get_or_insert(now);
                    if first || (now - since).as_secs().is_multiple_of(10) {
                        if quiver_net::connection_failed(&e) {
                            warn!(coordinator = %self.url, error = %e.message(), "coordinator unreachable; retrying")
                        } else {
                            tracing::error!(coordinator = %self.url, code = ?e.code(), error = %e.message(), "the coordinator refuses this worker; retrying")
                        }
                    }
                }
            }
        }
    }

    /// Sends each finished task's result to the coordinator.
    pub async fn report_loop(self: Arc<Self>, mut reports: mpsc::UnboundedReceiver<TaskReport>) {
        while let Some(report) = reports.recv().await {
            let this = self.clone();
            tokio::spawn(async move { this.report(report).await });
        }
    }

    async fn report(&self, report: TaskReport) {
        let TaskReport {
            attempt,
            result,
            elapsed_ms,
        } = report;
        let outcome = match result {
            Ok(out) => pb::task_result::Outcome::Success(pb::TaskSuccess {
                bucket_bytes: out.bucket_bytes,
                rows_out: out.rows_out,
                bytes_out: out.bytes_out,
                elapsed_ms,
                spilled_bytes: out.spilled_bytes,
            }),
            Err(e) => pb::task_result::Outcome::Failure(pb::TaskFailure {
                message: e.to_string(),
                retryable: e.retryable(),
                fetch_failure: match &e {
                    WorkerError::FetchFailed {
                        worker,
                        stage,
                        map_partition,
                        ..
                    } => Some(pb::FetchFailure {
                        worker_id: worker.0.clone(),
                        stage_id: stage.0,
                        map_partition: *map_partition,
                    }),
                    _ => None,
                },
            }),
        };
        let message = pb::TaskResult {
            job_id: attempt.job.0.clone(),
            stage_id: attempt.stage.0,
            partition: attempt.partition,
            attempt: attempt.attempt,
            worker_id: self.registration.worker_id.clone(),
            outcome: Some(outcome),
        };
        let deadline = tokio::time::Instant::now() + REPORT_RETRY_FOR;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.client.clone().report_task(message.clone()).await {
                Ok(response) => {
                    if response.into_inner().drop_output {
                        // A stale attempt (this worker was declared lost meanwhile): its
                        // output must not be served, and its files are garbage.
                        info!(task = %attempt, "coordinator did not expect this result; dropping its output");
                        let store = self.store.clone();
                        let attempt = attempt.clone();
                        let _ = tokio::task::spawn_blocking(move || store.remove_attempt(&attempt))
                            .await;
                    }
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    warn!(task = %attempt, error = %e.message(), "could not report task result; retrying");
                    tokio::time::sleep(backoff).await;
                    // At most a second apart: after a coordinator restart, the report is
                    // awaited as soon as this worker has registered again.
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    warn!(task = %attempt, error = %e.message(), "giving up reporting task result");
                    return;
                }
            }
        }
    }
}
