//! [`TaskLauncher`]: how the coordinator reaches workers. Behind a trait so that scheduler
//! tests can use virtual workers; [`GrpcTaskLauncher`] is the real one.
//!
//! A worker obeys only calls that carry its session key as their bearer token (it chose the
//! key and told only the coordinator, at registration), so the launcher keeps each worker
//! address's key beside its channel.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use quiver_net::{AuthChannel, CallCredentials, Dialer};
use quiver_plan::{JobId, StageId, TaskAttempt, TaskDefinition};
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
            unreachable: status.code() == tonic::Code::Unavailable,
            message: status.message().to_string(),
        }
    }
}

/// Sends instructions to workers.
#[tonic::async_trait]
pub trait TaskLauncher: Send + Sync + 'static {
    /// A worker registered at `address` with `session_key`: calls to that address carry it
    /// from now on.
    fn worker_registered(&self, _address: &str, _session_key: &str) {}
    /// Starts a task attempt on the worker at `address`.
    async fn launch(&self, address: &str, task: &TaskDefinition) -> Result<(), LaunchError>;
    /// Cancels running attempts.
    async fn cancel(&self, address: &str, attempts: &[TaskAttempt]) -> Result<(), String>;
    /// Deletes a job's shuffle files, except those of `keep` stages.
    async fn remove_job_data(
        &self,
        address: &str,
        job: &JobId,
        keep: &[StageId],
    ) -> Result<(), String>;
}

/// The gRPC launcher: one lazily connected channel per worker address, with the session key
/// of the worker registered there.
#[derive(Default)]
pub struct GrpcTaskLauncher {
    dialer: Dialer,
    channels: Mutex<HashMap<String, (String, Option<AuthChannel>)>>,
}

impl GrpcTaskLauncher {
    /// A launcher dialing workers with `dialer`'s TLS settings.
    pub fn new(dialer: Dialer) -> Self {
        GrpcTaskLauncher {
            dialer,
            channels: Mutex::default(),
        }
    }

    fn client(&self, address: &str) -> Result<WorkerClient<AuthChannel>, String> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some((key, channel)) = map.get_mut(address) else {
            return Err(format!("no worker registered at {address}"));
        };
        let channel = match channel {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .dialer
                    .with_credentials(
                        CallCredentials::bearer(Some(key)).map_err(|e| e.to_string())?,
                    )
                    .lazy(address, Some(Duration::from_secs(30)))
                    .map_err(|e| e.to_string())?;
                *channel = Some(c.clone());
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
    fn worker_registered(&self, address: &str, session_key: &str) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(address) {
            Some((key, _)) if key == session_key => {}
            // A new worker at this address (or the first): a new channel with its key.
            _ => {
                map.insert(address.to_string(), (session_key.to_string(), None));
            }
        }
    }

    async fn launch(&self, address: &str, task: &TaskDefinition) -> Result<(), LaunchError> {
        let request = pb::LaunchTaskRequest {
            task: Some(task.into()),
        };
        let mut client = self.client(address).map_err(|message| LaunchError {
            unreachable: true,
            message,
        })?;
        client
            .launch_task(request)
            .await
            .map(|_| ())
            .map_err(LaunchError::from)
    }

    async fn cancel(&self, address: &str, attempts: &[TaskAttempt]) -> Result<(), String> {
        let request = pb::CancelTasksRequest {
            tasks: attempts.iter().map(task_ref).collect(),
        };
        self.client(address)?
            .cancel_tasks(request)
            .await
            .map(|_| ())
            .map_err(|e| e.message().to_string())
    }

    async fn remove_job_data(
        &self,
        address: &str,
        job: &JobId,
        keep: &[StageId],
    ) -> Result<(), String> {
        let request = pb::RemoveJobDataRequest {
            job_id: job.0.clone(),
            keep_stages: keep.iter().map(|s| s.0).collect(),
        };
        self.client(address)?
            .remove_job_data(request)
            .await
            .map(|_| ())
            .map_err(|e| e.message().to_string())
    }
}
