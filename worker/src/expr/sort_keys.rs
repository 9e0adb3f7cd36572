//! Sort keys in Arrow's row format: the row-format fields of a sort order, and a batch's key
//! columns. The sort and range partitioning both compare rows this way, so a range shuffle's
//! buckets follow exactly the order the reducers sort in.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use arrow::row::SortField;
use quiver_plan::SortExpr;

use super::expr_eval::evaluate;
use crate::error::Result;
use crate::functions::FunctionRegistry;

/// The row-format fields of a sort order over `schema`.
pub fn sort_fields(order: &[SortExpr], schema: &SchemaRef) -> Result<Vec<SortField>> {
    order
        .iter()
        .map(|o| {
            let t = o.expr.data_type(schema, "sort")?;
            Ok(SortField::new_with_options(
                t,
                SortOptions {
                    descending: o.descending,
                    nulls_first: o.nulls_first,
                },
            ))
        })
        .collect()
}

/// The sort key columns of `batch`, in `order`'s order.
pub fn sort_key_columns(
    order: &[SortExpr],
    batch: &RecordBatch,
    functions: &FunctionRegistry,
) -> Result<Vec<ArrayRef>> {
    order
        .iter()
        .map(|o| evaluate(&o.expr, batch, functions))
        .collect()
}
