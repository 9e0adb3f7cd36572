//! The coordinator's side of the job-level output commit: checking a `write_parquet` job's
//! output at submit, committing it when every task finished, aborting it when the job failed.
//! The protocol itself — where attempts write, what becomes visible and when — is
//! `quiver_storage::OutputCommit`'s; this module only applies it to a job.
//!
//! It does I/O (on the output's store) and is called from `coordinator_service` and
//! `coordinator_state`, never from the scheduler.

use quiver_plan::{JobId, WriteMode};
use quiver_storage::{ObjectStores, OutputCommit, StorageOptions, TaskFile};

/// At submit: the output can be written and, unless overwriting or appending, is empty.
pub async fn check(
    stores: &ObjectStores,
    job: &JobId,
    directory: &str,
    mode: WriteMode,
    options: &StorageOptions,
) -> quiver_storage::Result<()> {
    OutputCommit::new(stores, directory, &job.0, options)?
        .check_destination(mode)
        .await
}

/// Makes exactly `files` visible and completes the output.
pub async fn commit(
    stores: &ObjectStores,
    job: &JobId,
    directory: &str,
    mode: WriteMode,
    files: &[TaskFile],
    resumed: bool,
    options: &StorageOptions,
) -> quiver_storage::Result<()> {
    OutputCommit::new(stores, directory, &job.0, options)?
        .commit(files, mode, resumed)
        .await
}

/// Deletes a failed or cancelled job's temporary files.
pub async fn abort(
    stores: &ObjectStores,
    job: &JobId,
    directory: &str,
    options: &StorageOptions,
) -> quiver_storage::Result<()> {
    OutputCommit::new(stores, directory, &job.0, options)?
        .abort()
        .await
}
