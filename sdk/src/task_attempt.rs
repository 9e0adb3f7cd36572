//! [`TaskAttempt`]: one attempt of one task, as the coordinator saw it — where and when it
//! ran, how it ended, what it wrote and read. [`JobHandle::details`](crate::JobHandle::details)
//! lists them per stage.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quiver_plan::proto_conversion::{enum_value, unspecified};
use quiver_proto::v1 as pb;

use crate::error::{Error, Result};

/// How an attempt of a task ended (or that it still runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskAttemptState {
    /// Running now.
    Running,
    /// Finished; its output is what the task produced (unless its worker was lost since).
    Succeeded,
    /// Failed; [`TaskAttempt::error`] says why. The task may have been retried.
    Failed,
    /// Stopped: its job ended, or another attempt of the task won.
    Cancelled,
    /// Its worker was lost while it ran.
    Lost,
}

/// One attempt of one task.
#[derive(Clone, Debug)]
pub struct TaskAttempt {
    /// The task's partition within its stage.
    pub partition: u32,
    /// The attempt's number (unique within the task).
    pub attempt: u32,
    /// The worker it ran on.
    pub worker_id: String,
    /// How it ended.
    pub state: TaskAttemptState,
    /// When the coordinator launched it.
    pub started_at: SystemTime,
    /// How long it ran (so far, while it runs).
    pub elapsed: Duration,
    /// A speculative copy of a slow attempt.
    pub speculative: bool,
    /// Rows a succeeded attempt wrote.
    pub rows_out: u64,
    /// Bytes a succeeded attempt wrote (shuffle, result or file bytes).
    pub bytes_out: u64,
    /// Bytes a succeeded attempt spilled to disk to stay within its worker's memory limit.
    pub spilled_bytes: u64,
    /// Map output bytes a succeeded attempt read as its input, from any worker.
    pub shuffle_bytes_read: u64,
    /// The part of [`shuffle_bytes_read`](Self::shuffle_bytes_read) fetched from other
    /// workers over the network.
    pub shuffle_bytes_fetched: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl TryFrom<&pb::TaskAttemptStatus> for TaskAttempt {
    type Error = Error;
    fn try_from(a: &pb::TaskAttemptStatus) -> Result<Self> {
        let state = match enum_value("attempt.state", a.state)? {
            pb::TaskAttemptState::Unspecified => return Err(unspecified("attempt.state").into()),
            pb::TaskAttemptState::Running => TaskAttemptState::Running,
            pb::TaskAttemptState::Succeeded => TaskAttemptState::Succeeded,
            pb::TaskAttemptState::Failed => TaskAttemptState::Failed,
            pb::TaskAttemptState::Cancelled => TaskAttemptState::Cancelled,
            pb::TaskAttemptState::Lost => TaskAttemptState::Lost,
        };
        Ok(TaskAttempt {
            partition: a.partition,
            attempt: a.attempt,
            worker_id: a.worker_id.clone(),
            state,
            started_at: UNIX_EPOCH + Duration::from_millis(a.started_at_ms),
            elapsed: Duration::from_millis(a.elapsed_ms),
            speculative: a.speculative,
            rows_out: a.rows_out,
            bytes_out: a.bytes_out,
            spilled_bytes: a.spilled_bytes,
            shuffle_bytes_read: a.shuffle_bytes_read,
            shuffle_bytes_fetched: a.shuffle_bytes_fetched,
            error: a.error.clone(),
        })
    }
}
