//! The explode operator: one output row per element of a list column, the other columns
//! repeated; rows whose list is null or empty produce no row, and batches left empty are not
//! passed on.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::batch_stream::{BatchIter, check_cancelled};
use crate::error::Result;

/// Every batch of `input` exploded on `column`, as batches of `schema`.
pub fn explode(
    input: BatchIter,
    column: String,
    schema: SchemaRef,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    Box::new(input.filter_map(move |b| {
        let out = b.and_then(|b| {
            check_cancelled(&cancelled)?;
            explode_batch(&b, &column, &schema)
        });
        match out {
            Ok(b) if b.num_rows() == 0 => None,
            other => Some(other),
        }
    }))
}

/// One row per element of the list column `column`, other columns repeated.
fn explode_batch(batch: &RecordBatch, column: &str, schema: &SchemaRef) -> Result<RecordBatch> {
    let index = batch.schema().index_of(column)?;
    let list = batch.column(index).as_list::<i32>();
    let offsets = list.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[list.len()] as usize);
    let only_column = batch.num_columns() == 1;
    if list.null_count() == 0 && only_column {
        // The common case (word count): the exploded column is just the list's values.
        let values = list.values().slice(first, last - first);
        return Ok(RecordBatch::try_new(schema.clone(), vec![values])?);
    }
    let mut rows = Vec::with_capacity(last - first);
    let mut elements = Vec::with_capacity(last - first);
    for i in 0..list.len() {
        if list.is_valid(i) {
            for e in offsets[i]..offsets[i + 1] {
                rows.push(i as u32);
                elements.push(e as u32);
            }
        }
    }
    let (rows, elements) = (UInt32Array::from(rows), UInt32Array::from(elements));
    let columns = (0..batch.num_columns())
        .map(|c| -> Result<ArrayRef> {
            Ok(if c == index {
                take(list.values().as_ref(), &elements, None)?
            } else {
                take(batch.column(c).as_ref(), &rows, None)?
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
