//! [`CoordinatorService`]: the coordinator's gRPC service. Each method decodes its request,
//! has [`Admission`] check it, calls [`CoordinatorState`] / the scheduler, and encodes the
//! answer; a malformed request is `invalid_argument` naming the field.
//!
//! Who may call which method is settled before a handler runs (see [`crate::access`]). The
//! handlers of worker methods also check that the caller is the worker it names: its calls
//! carry the session key it registered with.

use std::sync::Arc;
use std::time::Duration;

use quiver_net::{TokenDigest, WORKER_KEY_HEADER};
use quiver_plan::{JobId, PlanNode, Sink, StageId, TaskAttempt, WorkerId};
use quiver_proto::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::admission::{Admission, bounded_message};
use crate::cluster_status;
use crate::coordinator_state::{CoordinatorState, Durable};
use crate::error::CoordinatorError;
use crate::event::{Event, FetchFailure, HeldOutput, TaskOutcome};
use crate::job::JobOptions;
use crate::job_output;
use crate::job_status::{ResultGrants, job_status, job_status_with_attempts, planned_stage_status};
use crate::scheduler::{Reply, plan_job};
use crate::worker_registry::{AddressTaken, WorkerLoad};

/// Watchers get at most one status update per this interval.
const WATCH_THROTTLE: Duration = Duration::from_millis(100);

/// The `quiver.v1.Coordinator` service.
pub struct CoordinatorService {
    state: Arc<CoordinatorState>,
    admission: Arc<Admission>,
    heartbeat_interval: Duration,
    /// Digests of the tokens whose holders may fetch shuffle data from workers (sent to
    /// workers).
    flight_tokens: Vec<TokenDigest>,
    /// How long a result ticket given to a driver stays valid.
    result_grant_validity: Duration,
}

impl CoordinatorService {
    /// A service over `state`; workers are told to heartbeat every `heartbeat_interval`, and
    /// to serve Flight data to holders of the tokens in `flight_tokens` (none: to anyone).
    pub fn new(
        state: Arc<CoordinatorState>,
        admission: Arc<Admission>,
        heartbeat_interval: Duration,
        flight_tokens: Vec<TokenDigest>,
        result_grant_validity: Duration,
    ) -> Self {
        CoordinatorService {
            state,
            admission,
            heartbeat_interval,
            flight_tokens,
            result_grant_validity,
        }
    }

    /// Decodes a job's plan, sink and options and has [`Admission`] check them, as `SubmitJob`
    /// and `ExplainJob` both do; errors name the request (`rpc`) and the field.
    async fn checked_job(
        &self,
        rpc: &'static str,
        r: &pb::SubmitJobRequest,
    ) -> Result<(PlanNode, Sink, JobOptions), Status> {
        let plan = r
            .plan
            .as_ref()
            .ok_or_else(|| Status::invalid_argument(format!("{rpc}: plan is missing")))?;
        let plan = PlanNode::try_from(plan).map_err(|e| invalid(rpc, e))?;
        let sink = r
            .sink
            .as_ref()
            .ok_or_else(|| Status::invalid_argument(format!("{rpc}: sink is missing")))?;
        let sink = Sink::try_from(sink).map_err(|e| invalid(rpc, e))?;
        // Resolving paths touches the filesystem (maybe a slow one): off the async threads.
        let admission = self.admission.clone();
        let job_options = r.options;
        let (plan, sink, checked) = tokio::task::spawn_blocking(move || {
            let checked = admission.check_job(&plan, &sink, job_options.as_ref());
            (plan, sink, checked)
        })
        .await
        .map_err(|e| Status::internal(format!("{rpc}: checking the job failed: {e}")))?;
        let options = checked.map_err(|e| {
            let status = refused(e);
            Status::new(status.code(), format!("{rpc}: {}", status.message()))
        })?;
        Ok((plan, sink, options))
    }

    /// Job `id`'s status, with every task attempt if `attempts`.
    fn status_of(&self, id: &str, attempts: bool) -> Result<pb::JobStatus, Status> {
        let id = job_id(id)?;
        let grants = ResultGrants {
            key: &self.state.grant_key,
            valid_for: self.result_grant_validity,
        };
        let now = self.state.now();
        let current = self.state.scheduler().job(&id).map(|job| {
            if attempts {
                job_status_with_attempts(job, Some(&grants), now)
            } else {
                job_status(job, Some(&grants), now)
            }
        });
        current
            .or_else(|| self.state.past_job(&id))
            .ok_or_else(|| Status::not_found(format!("unknown job {id}")))
    }

    /// Waits until what an acknowledged request changed is in the job log.
    async fn durable(what: &str, durable: Option<Durable>) -> Result<(), Status> {
        let Some(durable) = durable else {
            return Ok(());
        };
        match durable.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Status::unavailable(format!(
                "{what}: done, but not recorded in the job log ({e}); it would not survive a coordinator restart"
            ))),
            Err(_) => Err(Status::unavailable(format!(
                "{what}: done, but the job log stopped before recording it"
            ))),
        }
    }

    /// Checks that a worker call comes from the worker it names. `Ok(false)`: the worker is
    /// not registered (it must register again).
    fn authenticate_worker<T>(&self, request: &Request<T>, id: &WorkerId) -> Result<bool, Status> {
        let presented = request
            .metadata()
            .get(WORKER_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match self.state.session_keys.verify(id, presented) {
            None => Ok(false),
            Some(true) => Ok(true),
            Some(false) => Err(Status::permission_denied(format!(
                "this call names worker {id} but does not carry its session key ({WORKER_KEY_HEADER})"
            ))),
        }
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{what}: {e}"))
}

/// The scheduler answered an event with a reply of another kind: a bug, not the caller's
/// fault.
fn unexpected(method: &str, reply: &Reply) -> Status {
    Status::internal(format!(
        "{method}: unexpected answer from the scheduler: {reply:?}"
    ))
}

fn refused(e: CoordinatorError) -> Status {
    e.to_status()
}

/// A job id from a request: a UUID, as the coordinator makes them.
fn job_id(s: &str) -> Result<JobId, Status> {
    JobId::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The map outputs a registering worker lists (admission bounded how many).
fn held_outputs(listed: &[pb::HeldMapOutput]) -> Result<Vec<HeldOutput>, Status> {
    listed
        .iter()
        .map(|h| {
            let job = JobId::parse(&h.job_id)
                .map_err(|e| invalid("RegisterWorker: a held output's job id", e))?;
            Ok(HeldOutput {
                attempt: task_attempt(job, h.stage, h.partition, h.attempt),
                bucket_bytes: h.bucket_bytes.clone(),
                rows: h.rows,
            })
        })
        .collect()
}

fn worker_id(s: &str) -> Result<WorkerId, Status> {
    WorkerId::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let r = request.into_inner();
        let id = self.admission.check_registration(&r).map_err(refused)?;
        let held_outputs = held_outputs(&r.held_outputs)?;
        let running_attempts = r
            .running_attempts
            .iter()
            .map(|t| {
                let job = JobId::parse(&t.job_id)
                    .map_err(|e| invalid("RegisterWorker: a running attempt's job id", e))?;
                Ok(task_attempt(job, t.stage_id, t.partition, t.attempt))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let event = Event::WorkerRegistered {
            worker: id,
            address: r.address.clone(),
            slots: r.slots,
            hostname: r.hostname,
            functions: r.functions,
            held_outputs,
            running_attempts,
        };
        match self.state.register_worker(event, &r.session_key) {
            Reply::Registered(Ok(())) => {}
            Reply::Registered(Err(AddressTaken { holder })) => {
                return Err(refused(CoordinatorError::AddressTaken {
                    address: r.address,
                    holder: holder.0,
                }));
            }
            other => return Err(unexpected("RegisterWorker", &other)),
        }
        Ok(Response::new(pb::RegisterWorkerResponse {
            protocol_version: quiver_proto::PROTOCOL_VERSION,
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            grant_key: self.state.grant_key.to_bytes(),
            flight_token_digests: self
                .flight_tokens
                .iter()
                .map(|d| d.as_bytes().to_vec())
                .collect(),
            limits: Some((&self.admission.limits).into()),
            live_jobs: self
                .state
                .scheduler()
                .live_jobs()
                .into_iter()
                .map(|j| j.0)
                .collect(),
            lists_live_jobs: true,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let id = worker_id(&request.get_ref().worker_id)?;
        let known = self.authenticate_worker(&request, &id)?;
        let r = request.into_inner();
        if !known {
            return Ok(Response::new(pb::HeartbeatResponse {
                registered: false,
                release: false,
            }));
        }
        let event = Event::Heartbeat {
            worker: id,
            running_tasks: r.running_tasks,
            load: WorkerLoad {
                memory_reserved_bytes: r.memory_reserved_bytes,
                shuffle_bytes_served: r.shuffle_bytes_served,
            },
            draining: r.draining,
        };
        let (registered, release) = match self.state.handle(event) {
            Reply::Heartbeat {
                registered,
                release,
            } => (registered, release),
            other => return Err(unexpected("Heartbeat", &other)),
        };
        Ok(Response::new(pb::HeartbeatResponse {
            registered,
            release,
        }))
    }

    async fn report_task(
        &self,
        request: Request<pb::TaskResult>,
    ) -> Result<Response<pb::ReportTaskResponse>, Status> {
        let worker = worker_id(&request.get_ref().worker_id)?;
        let known = self.authenticate_worker(&request, &worker)?;
        let r = request.into_inner();
        let attempt = task_attempt(job_id(&r.job_id)?, r.stage_id, r.partition, r.attempt);
        let outcome = match r.outcome {
            Some(pb::task_result::Outcome::Success(s)) => TaskOutcome::Success {
                bucket_bytes: s.bucket_bytes,
                rows_out: s.rows_out,
                bytes_out: s.bytes_out,
                elapsed_ms: s.elapsed_ms,
                spilled_bytes: s.spilled_bytes,
            },
            Some(pb::task_result::Outcome::Failure(f)) => TaskOutcome::Failure {
                message: bounded_message(f.message),
                retryable: f.retryable,
                fetch_failure: f.fetch_failure.map(|ff| FetchFailure {
                    worker: WorkerId(ff.worker_id),
                    stage: StageId(ff.stage_id),
                    map_partition: ff.map_partition,
                }),
            },
            None => return Err(Status::invalid_argument("TaskResult: outcome is missing")),
        };
        if !known {
            // Not registered (yet): after a coordinator restart, before the worker's next
            // heartbeat. It retries after registering again; whether to keep the output is
            // decided then (it may be adopted), not now.
            return Err(Status::unavailable(
                "ReportTask: this worker is not registered with this coordinator; register again, then report",
            ));
        }
        let succeeded = matches!(outcome, TaskOutcome::Success { .. });
        let expected = match self.state.handle(Event::TaskFinished {
            worker,
            attempt,
            outcome,
        }) {
            Reply::TaskReported { expected } => expected,
            other => return Err(unexpected("ReportTask", &other)),
        };
        Ok(Response::new(pb::ReportTaskResponse {
            drop_output: !expected && succeeded,
        }))
    }

    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let r = request.into_inner();
        let (plan, sink, options) = self.checked_job("SubmitJob", &r).await?;
        let id = JobId::random();
        let storage_options =
            quiver_plan::proto_conversion::storage_options_from_proto(r.storage_options.as_ref())
                .map_err(|e| invalid("SubmitJob", e))?;
        // A bad output fails the submission, not the finished job.
        if let Sink::WriteParquet { directory, mode } = &sink {
            job_output::check(
                &self.state.object_stores,
                &id,
                directory,
                *mode,
                &storage_options,
            )
            .await
            .map_err(|e| Status::failed_precondition(format!("SubmitJob: output directory {e}")))?;
        }
        let name = if r.name.is_empty() {
            "job".to_string()
        } else {
            r.name.chars().take(256).collect()
        };
        let event = Event::JobSubmitted {
            job: id.clone(),
            name,
            plan,
            sink,
            options,
            storage_options,
        };
        let (reply, durable) = self.state.handle_durably(event);
        match reply {
            Reply::Submitted(submitted) => submitted.map_err(|e| invalid("SubmitJob", e))?,
            other => return Err(unexpected("SubmitJob", &other)),
        }
        Self::durable("SubmitJob", durable).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id: id.0 }))
    }

    type WatchJobStream = ReceiverStream<Result<pb::JobStatus, Status>>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = request.into_inner().job_id;
        let first = self.status_of(&id, false)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let state = self.state.clone();
        let mut changes = state.subscribe();
        let valid_for = self.result_grant_validity;
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            loop {
                if terminal(&last) || changes.changed().await.is_err() {
                    return;
                }
                tokio::time::sleep(WATCH_THROTTLE).await;
                let grants = ResultGrants {
                    key: &state.grant_key,
                    valid_for,
                };
                let at = state.now();
                let Some(now) = state
                    .scheduler()
                    .job(&JobId(id.clone()))
                    .map(|job| job_status(job, Some(&grants), at))
                else {
                    return;
                };
                if now != last {
                    last = now;
                    if tx.send(Ok(last.clone())).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let request = request.into_inner();
        self.status_of(&request.job_id, request.include_attempts)
            .map(Response::new)
    }

    async fn list_jobs(
        &self,
        _: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let jobs = cluster_status::jobs(&self.state);
        Ok(Response::new(pb::ListJobsResponse { jobs }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let id = job_id(&request.into_inner().job_id)?;
        let (reply, durable) = self.state.handle_durably(Event::JobCancelled { job: id });
        let cancelled = match reply {
            Reply::Cancelled(cancelled) => cancelled.map_err(|e| e.to_status())?,
            other => return Err(unexpected("CancelJob", &other)),
        };
        Self::durable("CancelJob", durable).await?;
        Ok(Response::new(pb::CancelJobResponse { cancelled }))
    }

    async fn release_results(
        &self,
        request: Request<pb::ReleaseResultsRequest>,
    ) -> Result<Response<pb::ReleaseResultsResponse>, Status> {
        let id = job_id(&request.into_inner().job_id)?;
        match self.state.handle(Event::ResultsReleased { job: id }) {
            Reply::Released(released) => released.map_err(|e| Status::not_found(e.to_string()))?,
            other => return Err(unexpected("ReleaseResults", &other)),
        }
        Ok(Response::new(pb::ReleaseResultsResponse {}))
    }

    async fn explain_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::ExplainJobResponse>, Status> {
        let r = request.into_inner();
        let (plan, sink, options) = self.checked_job("ExplainJob", &r).await?;
        let (total_slots, limits) = {
            let scheduler = self.state.scheduler();
            (
                scheduler.workers().total_slots().max(1),
                scheduler.config().limits,
            )
        };
        // Planning reads no files, but a big plan is CPU work: off the async threads, and
        // outside the scheduler's lock.
        let stages = tokio::task::spawn_blocking(move || {
            plan_job(
                &JobId::random(),
                &plan,
                &sink,
                &options,
                total_slots,
                limits,
            )
        })
        .await
        .map_err(|e| Status::internal(format!("ExplainJob: planning failed: {e}")))?
        .map_err(|e| invalid("ExplainJob", e))?;
        Ok(Response::new(pb::ExplainJobResponse {
            stages: (0..stages.len())
                .map(|s| planned_stage_status(&stages, s, &options))
                .collect(),
            total_slots,
        }))
    }

    async fn list_workers(
        &self,
        _: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = cluster_status::workers(&self.state);
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }
}

fn task_attempt(job: JobId, stage_id: u32, partition: u32, attempt: u32) -> TaskAttempt {
    TaskAttempt {
        job,
        stage: StageId(stage_id),
        partition,
        attempt,
    }
}

/// Whether a status `job_status` wrote is final (it never writes an unspecified state).
fn terminal(status: &pb::JobStatus) -> bool {
    match pb::JobState::try_from(status.state) {
        Ok(pb::JobState::Succeeded | pb::JobState::Failed | pb::JobState::Cancelled) => true,
        Ok(pb::JobState::Queued | pb::JobState::Running | pb::JobState::Unspecified) | Err(_) => {
            false
        }
    }
}
