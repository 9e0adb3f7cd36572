//! [`WorkerError`]: what can go wrong while a worker runs a task or serves shuffle data.

use std::path::PathBuf;

use quiver_plan::{PlanError, StageId, WorkerId};

/// A task or service failure, naming the file, worker or stage involved.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` message says what it means
pub enum WorkerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not valid UTF-8 (first invalid byte at offset {offset}); read_text needs UTF-8 text"
    )]
    InvalidUtf8 { path: PathBuf, offset: u64 },
    #[error("{path}: a line of {bytes} bytes is longer than the 2 GiB a text row can hold")]
    LineTooLong { path: PathBuf, bytes: u64 },
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    MemoryLimit(#[from] crate::memory::memory_pool::MemoryLimitTooSmall),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "could not fetch shuffle data of stage {stage} map partition {map_partition} from worker {worker} at {address}: {message}"
    )]
    FetchFailed {
        worker: WorkerId,
        address: String,
        stage: StageId,
        map_partition: u32,
        message: String,
    },
    #[error("map output of stage {stage} partition {map_partition} is not on this worker")]
    MissingMapOutput { stage: StageId, map_partition: u32 },
    #[error(
        "buckets {first}..{end} of stage {stage} partition {map_partition} asked for; the output's buckets are 0..{buckets}"
    )]
    BucketsOutOfRange {
        stage: StageId,
        map_partition: u32,
        first: u32,
        end: u32,
        buckets: usize,
    },
    #[error("stored shuffle data of stage {stage} partition {map_partition} is corrupt: {message}")]
    CorruptMapOutput {
        stage: StageId,
        map_partition: u32,
        message: String,
    },
    #[error("user function '{name}' failed: {message}")]
    UserFunction { name: String, message: String },
    #[error("task was cancelled")]
    Cancelled,
    #[error("task panicked: {0}")]
    Panicked(String),
    #[error("coordinator at {url}: {message}")]
    Coordinator { url: String, message: String },
    #[error("{0} (on this worker)")]
    PathRefused(#[from] quiver_net::PathRefused),
    #[error(transparent)]
    Net(#[from] quiver_net::NetError),
    #[error(
        "sum '{aggregate}' overflows Int64 (it reached {value}); cast the input to float64 to sum larger values"
    )]
    SumOverflow { aggregate: String, value: i128 },
    #[error(
        "work directory {} is in use by another worker (it holds {}); give each worker its own --work-dir (QUIVER_WORK_DIR)",
        dir.display(),
        lock.display()
    )]
    WorkDirInUse { dir: PathBuf, lock: PathBuf },
    #[error("{flag}: {message}")]
    Config { flag: &'static str, message: String },
    #[error(transparent)]
    Storage(#[from] quiver_storage::StorageError),
    #[error("{path}: split [{start}, {end}) does not fit the file's {size} bytes")]
    BadSplit {
        path: PathBuf,
        start: u64,
        end: u64,
        size: u64,
    },
}

impl WorkerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WorkerError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether running the task again (maybe elsewhere) could succeed. Bad input data and plan
    /// errors fail the same way every time; I/O, network and panics may not.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            WorkerError::InvalidUtf8 { .. }
                | WorkerError::LineTooLong { .. }
                | WorkerError::Parquet { .. }
                | WorkerError::Csv { .. }
                | WorkerError::Plan(_)
                | WorkerError::Arrow(_)
                | WorkerError::PathRefused(_)
                | WorkerError::BadSplit { .. }
                | WorkerError::SumOverflow { .. }
                | WorkerError::Storage(
                    quiver_storage::StorageError::NotFound { .. }
                        | quiver_storage::StorageError::BadLocation { .. }
                        | quiver_storage::StorageError::BadOption { .. }
                )
                | WorkerError::Cancelled
        )
    }
}

/// Result with [`WorkerError`] as the default error.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;
