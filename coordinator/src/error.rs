//! [`CoordinatorError`]: why the coordinator refused a request or could not start.

use quiver_plan::{JobId, PlanError};

/// A refused request or a failed start.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` message says what it means
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
    /// A cancel that came after the job's output commit began.
    #[error(
        "job {0} is committing its output: too late to cancel it (it ends when the commit does)"
    )]
    Committing(JobId),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A request that is malformed or asks for more than the coordinator allows.
    #[error("{0}")]
    Refused(String),
    /// A path outside the allowed roots.
    #[error(transparent)]
    Path(#[from] quiver_net::PathRefused),
    /// A worker id that is not the one of the session key given (a worker's id follows from
    /// its key, so no one can claim another worker's id).
    #[error(
        "worker id {0} does not belong to the session key given; a worker registers with the id its own key makes"
    )]
    WorkerImpersonation(String),
    /// A worker address another live worker holds.
    #[error(
        "address {address} is registered by live worker {holder}; each worker needs an address of its own"
    )]
    AddressTaken { address: String, holder: String },
    /// A worker of another Quiver release.
    #[error(
        "the worker speaks wire protocol {worker} and this coordinator {coordinator} (0: a release from before the check); run the same Quiver release on the coordinator and every worker"
    )]
    ProtocolMismatch { worker: u32, coordinator: u32 },
    /// Settings the coordinator cannot start with.
    #[error(transparent)]
    Net(#[from] quiver_net::NetError),
}

impl CoordinatorError {
    /// The gRPC status a caller gets for this error.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            CoordinatorError::UnknownJob(_) => tonic::Status::not_found(message),
            CoordinatorError::Path(_) | CoordinatorError::WorkerImpersonation(_) => {
                tonic::Status::permission_denied(message)
            }
            CoordinatorError::AddressTaken { .. } => tonic::Status::already_exists(message),
            CoordinatorError::Committing(_) | CoordinatorError::ProtocolMismatch { .. } => {
                tonic::Status::failed_precondition(message)
            }
            CoordinatorError::Plan(PlanError::LimitExceeded { .. }) => {
                tonic::Status::resource_exhausted(message)
            }
            CoordinatorError::Io { .. } | CoordinatorError::Net(_) => {
                tonic::Status::internal(message)
            }
            CoordinatorError::Plan(_)
            | CoordinatorError::MissingFunctions { .. }
            | CoordinatorError::Refused(_) => tonic::Status::invalid_argument(message),
        }
    }
}

/// Result with [`CoordinatorError`] as the default error.
pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;
