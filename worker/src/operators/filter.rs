//! The filter operator: keeps the rows of each batch for which the predicate is true; batches
//! left empty are not passed on.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quiver_plan::Expr;

use super::batch_stream::{BatchIter, check_cancelled};
use crate::expr::expr_eval::filter as filter_batch;
use crate::functions::FunctionRegistry;

/// The rows of `input` for which `predicate` is true.
pub fn filter(
    input: BatchIter,
    predicate: Expr,
    functions: Arc<FunctionRegistry>,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    Box::new(input.filter_map(move |b| {
        let out = b.and_then(|b| {
            check_cancelled(&cancelled)?;
            filter_batch(&b, &predicate, &functions)
        });
        match out {
            Ok(b) if b.num_rows() == 0 => None,
            other => Some(other),
        }
    }))
}
