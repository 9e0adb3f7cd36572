//! [`Error`]: everything the SDK can report to a driver.

use quiver_plan::PlanError;

use crate::source_listing::InputError;

/// An SDK error: it says what failed and on which input, job or coordinator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dataset cannot be built: unknown column, type mismatch, unknown function.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An input is missing, empty or unreadable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The coordinator could not be reached.
    #[error("cannot reach the coordinator at {url}: {message}")]
    Connect {
        /// The coordinator URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The coordinator answered a request with an error.
    #[error("{request} failed: {message}")]
    Rpc {
        /// The request, e.g. `SubmitJob`.
        request: &'static str,
        /// The coordinator's message.
        message: String,
    },
    /// The job failed; the message names the stage, partition and worker.
    #[error("job {job} failed: {message}")]
    JobFailed {
        /// The job id.
        job: String,
        /// The failing task's own error.
        message: String,
    },
    /// The coordinator came back after the connection broke, but no longer knows the job
    /// (it restarted without the job's state).
    #[error("job {job} was lost: the coordinator at {url} restarted and does not know it")]
    JobLost {
        /// The job id.
        job: String,
        /// The coordinator URL.
        url: String,
    },
    /// The job was cancelled.
    #[error("job {job} was cancelled")]
    JobCancelled {
        /// The job id.
        job: String,
    },
    /// Results could not be fetched from a worker.
    #[error("fetching results of job {job} from {address}: {message}")]
    Fetch {
        /// The job id.
        job: String,
        /// The worker holding them.
        address: String,
        /// Why.
        message: String,
    },
    /// Bad command-line flags (for example for `quiver::worker::run_worker`).
    #[error("{0}")]
    Usage(String),
    /// The local cluster could not start.
    #[error("local cluster: {0}")]
    Cluster(String),
    /// This process could not start or run as a worker (`quiver::worker::run_worker`).
    #[error("worker: {0}")]
    Worker(String),
    /// The client's token or TLS settings cannot be used (a missing file, an `https://` URL
    /// without a CA, ...).
    #[error("client settings: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn rpc(request: &'static str, status: tonic::Status) -> Self {
        Error::Rpc {
            request,
            message: status_text(&status),
        }
    }
}

/// A status as one line: its message, and for failures that arose on this side of the
/// connection (whose message is often only "transport error"), the code and the causes.
pub(crate) fn status_text(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        None => status.message().to_string(),
        Some(cause) => {
            let causes = error_chain(cause);
            if causes.contains(status.message()) {
                format!("{causes} ({:?})", status.code())
            } else {
                format!("{}: {causes} ({:?})", status.message(), status.code())
            }
        }
    }
}

/// An error with its sources, for transport errors whose top level says only "transport error".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Transport errors often repeat their source's text; say each thing once.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl From<quiver_net::NetError> for Error {
    fn from(e: quiver_net::NetError) -> Self {
        Error::Config(e.to_string())
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
