//! [`CoordinatorError`]: why the coordinator refused a request or could not start.

use quiver_plan::{JobId, PlanError};

/// A refused request or a failed start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("invalid plan: {0}")]
    Plan(#[from] PlanError),
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result with [`CoordinatorError`] as the default error.
pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;
