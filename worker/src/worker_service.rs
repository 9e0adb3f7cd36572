//! [`WorkerService`]: the worker's gRPC service. It only decodes requests, checks them
//! against the coordinator's limits, calls the [`TaskExecutor`] or the map output store, and
//! encodes the answer. Only the coordinator gets here (see [`crate::cluster_trust`]).

use std::sync::Arc;

use quiver_plan::{JobId, StageId, TaskAttempt, TaskDefinition};
use quiver_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::cluster_trust::ClusterTrust;
use crate::task_executor::TaskExecutor;

/// The `quiver.v1.Worker` service.
pub struct WorkerService {
    executor: Arc<TaskExecutor>,
    trust: Arc<ClusterTrust>,
}

impl WorkerService {
    /// A service that runs tasks on `executor`, within the limits `trust` holds.
    pub fn new(executor: Arc<TaskExecutor>, trust: Arc<ClusterTrust>) -> Self {
        WorkerService { executor, trust }
    }
}

fn job_id(s: &str) -> Result<JobId, Status> {
    JobId::parse(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl pb::worker_server::Worker for WorkerService {
    async fn launch_task(
        &self,
        request: Request<pb::LaunchTaskRequest>,
    ) -> Result<Response<pb::LaunchTaskResponse>, Status> {
        let task = request
            .into_inner()
            .task
            .ok_or_else(|| Status::invalid_argument("LaunchTask: task is missing"))?;
        let task = TaskDefinition::try_from(&task)
            .map_err(|e| Status::invalid_argument(format!("LaunchTask: {e}")))?;
        self.trust
            .task_limits()
            .await?
            .check_task(&task)
            .map_err(|e| Status::invalid_argument(format!("LaunchTask: {e}")))?;
        self.executor.launch(task);
        Ok(Response::new(pb::LaunchTaskResponse {}))
    }

    async fn cancel_tasks(
        &self,
        request: Request<pb::CancelTasksRequest>,
    ) -> Result<Response<pb::CancelTasksResponse>, Status> {
        let attempts: Vec<TaskAttempt> = request
            .into_inner()
            .tasks
            .into_iter()
            .map(|t| {
                Ok(TaskAttempt {
                    job: job_id(&t.job_id)?,
                    stage: StageId(t.stage_id),
                    partition: t.partition,
                    attempt: t.attempt,
                })
            })
            .collect::<Result<_, Status>>()?;
        self.executor.cancel(&attempts);
        Ok(Response::new(pb::CancelTasksResponse {}))
    }

    async fn remove_job_data(
        &self,
        request: Request<pb::RemoveJobDataRequest>,
    ) -> Result<Response<pb::RemoveJobDataResponse>, Status> {
        let request = request.into_inner();
        let job = job_id(&request.job_id)?;
        let keep: Vec<StageId> = request.keep_stages.into_iter().map(StageId).collect();
        if keep.is_empty() {
            info!(job = %job, "removing job data");
        } else {
            let kept: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
            info!(job = %job, keep_stages = %kept.join(","), "removing job data");
        }
        let store = self.executor.store().clone();
        tokio::task::spawn_blocking(move || store.remove_job(&job, &keep))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::RemoveJobDataResponse {}))
    }
}
