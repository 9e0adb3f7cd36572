//! [`TaskLauncher`]: how the coordinator reaches workers. Behind a trait so that scheduler
//! tests can use virtual workers; [`GrpcTaskLauncher`] is the real one.
//!
//! A worker obeys only calls that carry its session key as their bearer token (it chose the
//! key and told only the coordinator, at registration), so the launcher keeps each worker's
//! key beside its channel — by worker id, not by address: a registration naming another
//! worker's address must not change what that worker is sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use quiver_net::{AuthChannel, CallCredentials, Dialer};
use quiver_plan::{JobId, StageId, TaskAttempt, TaskDefinition, WorkerId};
use quiver_proto::MAX_MESSAGE_BYTES;
use quiver_proto::v1 as pb;
use quiver_proto::v1::worker_client::WorkerClient;

/// Why a launch failed.
#[derive(Clone, Debug)]
pub struct LaunchError {
    /// Nothing answered at the worker's address: it is gone, not just failing.
    pub unreachable: bool,
    pub message: String,
}

impl From<tonic::Status> for LaunchError {
    fn from(status: tonic::Status) -> Self {
        LaunchError {
            // No answer from the worker's service: it is gone (or frozen), not just refusing.
            unreachable: quiver_net::connection_failed(&status),
            message: status.message().to_string(),
        }
    }
}

/// Sends instructions to workers.
#[tonic::async_trait]
pub trait TaskLauncher: Send + Sync + 'static {
    /// `worker` registered at `address` with `session_key`: calls to it carry the key from now
    /// on.
    fn worker_registered(&self, _worker: &WorkerId, _address: &str, _session_key: &str) {}
    /// Starts a task attempt on `worker`, at `address`.
    async fn launch(
        &self,
        worker: &WorkerId,
        address: &str,
        task: &TaskDefinition,
    ) -> Result<(), LaunchError>;
    /// Cancels running attempts.
    async fn cancel(
        &self,
        worker: &WorkerId,
        address: &str,
        attempts: &[TaskAttempt],
    ) -> Result<(), String>;
    /// Deletes a job's shuffle files, except those of `keep` stages.
    async fn remove_job_data(
        &self,
        worker: &WorkerId,
        address: &str,
        job: &JobId,
        keep: &[StageId],
    ) -> Result<(), String>;
}

/// How to reach one registered worker.
struct WorkerLink {
    address: String,
    session_key: String,
    /// Connected on first use.
    channel: Option<AuthChannel>,
}

/// The gRPC launcher: one lazily connected channel per registered worker, carrying its
/// session key.
#[derive(Default)]
pub struct GrpcTaskLauncher {
    dialer: Dialer,
    workers: Mutex<HashMap<WorkerId, WorkerLink>>,
}

impl GrpcTaskLauncher {
    /// A launcher dialing workers with `dialer`'s TLS settings.
    pub fn new(dialer: Dialer) -> Self {
        GrpcTaskLauncher {
            dialer,
            workers: Mutex::default(),
        }
    }

    fn client(
        &self,
        worker: &WorkerId,
        address: &str,
    ) -> Result<WorkerClient<AuthChannel>, String> {
        let mut map = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(link) = map.get_mut(worker).filter(|l| l.address == address) else {
            return Err(format!("worker {worker} is not registered at {address}"));
        };
        let channel = match &link.channel {
            Some(c) => c.clone(),
            None => {
                let credentials =
                    CallCredentials::bearer(Some(&link.session_key)).map_err(|e| e.to_string())?;
                let c = self
                    .dialer
                    .with_credentials(credentials)
                    .lazy(address, Some(Duration::from_secs(30)))
                    .map_err(|e| e.to_string())?;
                link.channel = Some(c.clone());
                c
            }
        };
        Ok(WorkerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

fn task_ref(a: &TaskAttempt) -> pb::TaskRef {
    pb::TaskRef {
        job_id: a.job.0.clone(),
        stage_id: a.stage.0,
        partition: a.partition,
        attempt: a.attempt,
    }
}

#[tonic::async_trait]
impl TaskLauncher for GrpcTaskLauncher {
    fn worker_registered(&self, worker: &WorkerId, address: &str, session_key: &str) {
        let mut map = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let unchanged = map
            .get(worker)
            .is_some_and(|l| l.address == address && l.session_key == session_key);
        if !unchanged {
            map.insert(
                worker.clone(),
                WorkerLink {
                    address: address.to_string(),
                    session_key: session_key.to_string(),
                    channel: None,
                },
            );
        }
    }

    async fn launch(
        &self,
        worker: &WorkerId,
        address: &str,
        task: &TaskDefinition,
    ) -> Result<(), LaunchError> {
        let request = pb::LaunchTaskRequest {
            task: Some(task.into()),
        };
        let mut client = self
            .client(worker, address)
            .map_err(|message| LaunchError {
                unreachable: true,
                message,
            })?;
        client
            .launch_task(request)
            .await
            .map(|_| ())
            .map_err(LaunchError::from)
    }

    async fn cancel(
        &self,
        worker: &WorkerId,
        address: &str,
        attempts: &[TaskAttempt],
    ) -> Result<(), String> {
        let request = pb::CancelTasksRequest {
            tasks: attempts.iter().map(task_ref).collect(),
        };
        self.client(worker, address)?
            .cancel_tasks(request)
            .await
            .map(|_| ())
            .map_err(|e| e.message().to_string())
    }

    async fn remove_job_data(
        &self,
        worker: &WorkerId,
        address: &str,
        job: &JobId,
        keep: &[StageId],
    ) -> Result<(), String> {
        let request = pb::RemoveJobDataRequest {
            job_id: job.0.clone(),
            keep_stages: keep.iter().map(|s| s.0).collect(),
        };
        self.client(worker, address)?
            .remove_job_data(request)
            .await
            .map(|_| ())
            .map_err(|e| e.message().to_string())
    }
}
