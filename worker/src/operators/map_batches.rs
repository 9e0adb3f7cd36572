//! The map_batches operator: a registered user batch function turns each input batch into
//! one output batch.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::batch_stream::{BatchIter, check_cancelled};
use crate::functions::FunctionRegistry;

/// The batch function `function` applied to every batch of `input`.
pub fn map_batches(
    input: BatchIter,
    function: String,
    functions: Arc<FunctionRegistry>,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    Box::new(input.map(move |b| {
        let b = b?;
        check_cancelled(&cancelled)?;
        functions.eval_batch(&function, b)
    }))
}
