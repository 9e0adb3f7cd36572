//! Newtype identifiers, so that a stage id can never be passed where a partition is expected.

use std::fmt;

/// A job, named by a UUID the coordinator assigns at submission.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub String);

impl JobId {
    /// A fresh random id.
    pub fn random() -> Self {
        JobId(uuid::Uuid::new_v4().to_string())
    }
}

/// A stage within one job; stages are numbered from 0 in the order the planner creates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(pub u32);

/// A worker, named by itself at start (a UUID) and kept across re-registrations, so that the
/// coordinator recognises a worker that comes back after the coordinator restarted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub String);

impl WorkerId {
    /// A fresh random id.
    pub fn random() -> Self {
        WorkerId(uuid::Uuid::new_v4().to_string())
    }

    /// The first 8 characters, for logs and tables.
    pub fn short(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

/// One attempt at one task: a partition of a stage of a job.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskAttempt {
    pub job: JobId,
    pub stage: StageId,
    pub partition: u32,
    pub attempt: u32,
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TaskAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {} stage {} partition {} attempt {}",
            self.job, self.stage, self.partition, self.attempt
        )
    }
}
