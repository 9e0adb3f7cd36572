//! What clients are shown of the cluster, as the protocol's messages: every job (`ListJobs`),
//! every worker (`ListWorkers`), and one job. The gRPC service and the dashboard both read the
//! cluster through here, so that `quiver jobs` and the dashboard list the same jobs in the
//! same order, and describe workers alike.

use quiver_plan::JobId;
use quiver_proto::v1 as pb;

use crate::coordinator_state::CoordinatorState;
use crate::job_status::{job_status, job_status_with_attempts};
use crate::worker_registry::Liveness;

/// Every job the coordinator knows, oldest first (without result tickets: listing jobs is not
/// fetching their results).
pub fn jobs(state: &CoordinatorState) -> Vec<pb::JobStatus> {
    let now = state.now();
    // Jobs that finished under an earlier coordinator first: they are the oldest.
    let mut jobs: Vec<pb::JobStatus> = state.past_jobs().iter().cloned().collect();
    jobs.extend(
        state
            .scheduler()
            .jobs()
            .map(|job| job_status(job, None, now)),
    );
    jobs
}

/// One job's status with every task attempt (`GetJob` with `include_attempts`), without
/// result tickets — whether it runs now, or finished under this coordinator or an earlier one
/// (whose attempts are not kept); `None` for a job it does not know.
pub fn job(state: &CoordinatorState, id: &JobId) -> Option<pb::JobStatus> {
    let now = state.now();
    let current = state
        .scheduler()
        .job(id)
        .map(|job| job_status_with_attempts(job, None, now));
    current.or_else(|| state.past_job(id))
}

/// Every worker the coordinator knows, alive or lost, by address.
pub fn workers(state: &CoordinatorState) -> Vec<pb::WorkerStatus> {
    let now = state.now();
    state
        .scheduler()
        .workers()
        .snapshot()
        .into_iter()
        .map(|(id, w)| pb::WorkerStatus {
            // As the worker itself reported it: what really runs there.
            running_tasks: w.running_tasks,
            worker_id: id.0,
            address: w.address,
            slots: w.slots,
            state: match (w.liveness, w.draining) {
                (Liveness::Lost, _) => pb::WorkerState::Lost,
                (Liveness::Left, _) => pb::WorkerState::Left,
                (Liveness::Alive, true) => pb::WorkerState::Draining,
                (Liveness::Alive, false) => pb::WorkerState::Alive,
            } as i32,
            last_heartbeat_ms_ago: now.since(w.last_heartbeat).as_millis() as u64,
            hostname: w.hostname,
            tasks_completed: w.tasks_completed,
            functions: w.functions,
            memory_reserved_bytes: w.load.memory_reserved_bytes,
            shuffle_bytes_served: w.load.shuffle_bytes_served,
        })
        .collect()
}
