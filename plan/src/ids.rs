//! Newtype identifiers, so that a stage id can never be passed where a partition is expected.

use std::fmt;

use crate::error::{PlanError, Result};

/// Whether `s` is a UUID in its canonical form (36 characters, lowercase hex and hyphens):
/// ids of that shape are safe to use as file names.
fn is_canonical_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// A job, named by a UUID the coordinator assigns at submission.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub String);

impl JobId {
    /// A fresh random id.
    pub fn random() -> Self {
        JobId(uuid::Uuid::new_v4().to_string())
    }

    /// A job id received from a peer. Job ids name directories on workers, so anything but a
    /// canonical UUID (such as `../x` or `/tmp/x`) is refused.
    pub fn parse(s: &str) -> Result<Self> {
        if is_canonical_uuid(s) {
            Ok(JobId(s.to_string()))
        } else {
            Err(PlanError::invalid_id(
                "job id",
                s,
                "job ids are UUIDs such as 3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b",
            ))
        }
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

    /// A worker id received from a peer: a canonical UUID, as every worker chooses.
    pub fn parse(s: &str) -> Result<Self> {
        if is_canonical_uuid(s) {
            Ok(WorkerId(s.to_string()))
        } else {
            Err(PlanError::invalid_id(
                "worker id",
                s,
                "worker ids are UUIDs, chosen by each worker at start",
            ))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_are_ids() {
        let id = JobId::random();
        assert_eq!(JobId::parse(&id.0).unwrap(), id);
        for bad in [
            "../../x",
            "/tmp/x",
            "",
            "3F2B8C1E-5D4A-4E2F-9B7C-0A1D2E3F4A5B",
            "3f2b8c1e5d4a4e2f9b7c0a1d2e3f4a5b",
            "urn:uuid:3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b",
            "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b/..",
        ] {
            let err = JobId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("job id"), "{err}");
            assert!(WorkerId::parse(bad).is_err());
        }
    }
}
