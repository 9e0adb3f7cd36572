//! What operators pass each other: a pull-based stream of batches ([`BatchIter`]), the check
//! every operator makes between batches for its task's cancellation ([`check_cancelled`], and
//! [`cancellable`] for the output phase of operators that emit many batches at the end), and
//! [`deferred`] for operators that consume their whole input before they emit.

use std::sync::atomic::{AtomicBool, Ordering};

use arrow::record_batch::RecordBatch;

use crate::error::{Result, WorkerError};

/// A stream of batches produced on the task's thread.
pub type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// `Err(Cancelled)` once the task's cancellation flag is set. Every operator calls it for each
/// batch it takes from its input (or, for a source, each batch it reads), so a cancelled task
/// stops within one batch wherever it is.
pub fn check_cancelled(cancelled: &AtomicBool) -> Result<()> {
    if cancelled.load(Ordering::Relaxed) {
        Err(WorkerError::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs `work` when the first batch is asked for, then yields the batches of the stream it
/// returned, or its error.
pub fn deferred(work: impl FnOnce() -> Result<BatchIter> + Send + 'static) -> BatchIter {
    Box::new(std::iter::once_with(work).flat_map(|r| -> BatchIter {
        match r {
            Ok(batches) => batches,
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }))
}

/// `stream`, checking the task's cancellation before each batch it yields and ending after the
/// first error: for the output phase of whole-input operators (an aggregation's groups, a
/// sort's merge of spilled runs), which can be long after the last input batch.
pub fn cancellable(
    stream: impl Iterator<Item = Result<RecordBatch>> + Send + 'static,
    cancelled: std::sync::Arc<AtomicBool>,
) -> BatchIter {
    let mut stream = Some(stream);
    Box::new(std::iter::from_fn(move || {
        let inner = stream.as_mut()?;
        let item = check_cancelled(&cancelled).and_then(|()| inner.next().transpose());
        match item {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                stream = None;
                None
            }
            Err(e) => {
                stream = None;
                Some(Err(e))
            }
        }
    }))
}
