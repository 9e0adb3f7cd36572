//! [`CoordinatorError`]: why the coordinator refused a request or could not start.

use quiver_plan::{JobId, PlanError};

/// A refused request or a failed start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("invalid plan: {0}")]
    Plan(#[from] PlanError),
    #[error("no registered worker has every user function this job calls (missing: {}); workers have: {}; run workers from a binary that registers them", missing.join(", "), if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    MissingFunctions {
        missing: Vec<String>,
        available: Vec<String>,
    },
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
