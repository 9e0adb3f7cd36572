//! Reads one CSV file (local, or an object store URL read front to back in large ranged GETs)
//! with the schema inferred when the dataset was built.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use arrow::csv::ReaderBuilder;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use quiver_plan::{CsvOptions, FileSplit};

use crate::error::{Result, WorkerError};
use crate::io::input_storage::InputStorage;

/// The batches of the CSV file of `split` (CSV splits are whole files: quoted fields may
/// contain newlines, so a byte range cannot be cut safely).
#[cfg(any(test, feature = "internals"))]
pub fn read_csv_split(
    split: &FileSplit,
    schema: SchemaRef,
    options: &CsvOptions,
    batch_size: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send + use<>> {
    read_csv_split_in(split, schema, options, batch_size, &InputStorage::default())
}

/// Like `read_csv_split`, reading object store URLs through `storage`.
pub fn read_csv_split_in(
    split: &FileSplit,
    schema: SchemaRef,
    options: &CsvOptions,
    batch_size: usize,
    storage: &InputStorage,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send + use<>> {
    let path = PathBuf::from(&split.path);
    let file: Box<dyn Read + Send> = match storage.open_remote(&split.path)? {
        Some(object) => Box::new(object.reader(0)),
        None => {
            let local = InputStorage::local_path(&split.path);
            Box::new(File::open(&local).map_err(|e| WorkerError::io(&path, e))?)
        }
    };
    let reader = ReaderBuilder::new(schema)
        .with_header(options.has_header)
        .with_delimiter(options.delimiter)
        .with_batch_size(batch_size.max(1))
        .build(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| WorkerError::Csv {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(reader.map(move |b| {
        b.map_err(|e| WorkerError::Csv {
            path: path.clone(),
            message: e.to_string(),
        })
    }))
}
