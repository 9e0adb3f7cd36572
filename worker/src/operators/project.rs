//! The project operator (`select`): evaluates one expression per output column over each
//! batch.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use quiver_plan::Expr;

use super::batch_stream::{BatchIter, check_cancelled};
use crate::error::Result;
use crate::expr::expr_eval::evaluate;
use crate::functions::FunctionRegistry;

/// `exprs` evaluated over every batch of `input`, as batches of `schema`.
pub fn project(
    input: BatchIter,
    exprs: Vec<Expr>,
    schema: SchemaRef,
    functions: Arc<FunctionRegistry>,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    Box::new(input.map(move |b| {
        let b = b?;
        check_cancelled(&cancelled)?;
        let columns = exprs
            .iter()
            .map(|e| evaluate(e, &b, &functions))
            .collect::<Result<Vec<_>>>()?;
        // The row count is explicit: a projection of no columns keeps its rows.
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?)
    }))
}
