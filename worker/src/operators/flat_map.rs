//! The flat_map operator: a registered user flat-map function turns each input row into zero
//! or more output rows (a batch at a time); batches left empty are not passed on.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::batch_stream::{BatchIter, check_cancelled};
use crate::functions::FunctionRegistry;

/// The flat-map function `function` applied to every batch of `input`.
pub fn flat_map(
    input: BatchIter,
    function: String,
    functions: Arc<FunctionRegistry>,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    Box::new(input.filter_map(move |b| {
        let out = b.and_then(|b| {
            check_cancelled(&cancelled)?;
            functions.eval_flat_map(&function, &b)
        });
        match out {
            Ok(b) if b.num_rows() == 0 => None,
            other => Some(other),
        }
    }))
}
