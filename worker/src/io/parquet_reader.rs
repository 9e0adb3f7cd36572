//! Reads the row groups of one Parquet split as batches conforming to the plan's schema, from
//! a local file or, through an [`ObjectChunkReader`] (one ranged GET for the footer, one per
//! column chunk), from an object store URL.

use std::fs::File;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_plan::FileSplit;

use parquet::file::reader::ChunkReader;
use quiver_storage::ObjectChunkReader;

use crate::error::{Result, WorkerError};
use crate::io::input_storage::InputStorage;

/// The batches of `split`'s row groups. A file whose columns differ from `schema` is an error
/// naming the file.
#[cfg(any(test, feature = "internals"))]
pub fn read_parquet_split(
    split: &FileSplit,
    schema: SchemaRef,
    batch_size: usize,
) -> Result<ParquetBatches> {
    read_parquet_split_in(split, schema, batch_size, &InputStorage::default())
}

/// The batches of a Parquet split.
pub type ParquetBatches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// Like `read_parquet_split`, reading object store URLs through `storage`.
pub fn read_parquet_split_in(
    split: &FileSplit,
    schema: SchemaRef,
    batch_size: usize,
    storage: &InputStorage,
) -> Result<ParquetBatches> {
    let path = PathBuf::from(&split.path);
    match storage.open_remote(&split.path)? {
        Some(object) => read_from(
            ObjectChunkReader::new(object),
            path,
            split,
            schema,
            batch_size,
        ),
        None => {
            let local = InputStorage::local_path(&split.path);
            let file = File::open(&local).map_err(|e| WorkerError::io(&path, e))?;
            read_from(file, path, split, schema, batch_size)
        }
    }
}

fn read_from<T: ChunkReader + 'static>(
    input: T,
    path: PathBuf,
    split: &FileSplit,
    schema: SchemaRef,
    batch_size: usize,
) -> Result<ParquetBatches> {
    let parquet_error = {
        let path = path.clone();
        move |message: String| WorkerError::Parquet {
            path: path.clone(),
            message,
        }
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(input)
        .map_err(|e| parquet_error(e.to_string()))?;
    // Decode only the plan's columns (the coordinator prunes unused ones from the schema).
    let roots = schema
        .fields()
        .iter()
        .map(|f| {
            builder.schema().index_of(f.name()).map_err(|_| {
                parquet_error(format!("has no column '{}' (the first file has)", f.name()))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    let groups = builder.metadata().num_row_groups();
    if let Some(bad) = split.row_groups.iter().find(|&&g| g as usize >= groups) {
        return Err(parquet_error(format!(
            "has {groups} row groups; row group {bad} was asked for"
        )));
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_row_groups(split.row_groups.iter().map(|&g| g as usize).collect())
        .with_batch_size(batch_size.max(1))
        .build()
        .map_err(|e| parquet_error(e.to_string()))?;
    Ok(Box::new(reader.map(move |batch| {
        let batch = batch.map_err(|e| parquet_error(e.to_string()))?;
        RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| parquet_error(format!("schema differs from the first file's: {e}")))
    })))
}
