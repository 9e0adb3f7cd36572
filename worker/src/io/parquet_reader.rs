//! Reads the row groups of one Parquet split as batches conforming to the plan's schema, from
//! a local file or, through an [`ObjectChunkReader`], from an object store URL (the footer in
//! one GET, then the split's column chunks fetched together).
//!
//! A column that `schema` asks for as `Dictionary(Int32, Utf8)` where the file stores strings
//! is decoded as a dictionary: the file's dictionary pages are kept, not expanded into one
//! string per row (the scan asks for this for string group keys; see
//! [`crate::operators::dictionary_keys`]).

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
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

/// Like `read_parquet_split`, reading object store URLs through `storage`. From an object
/// store, the footer is fetched in one GET, then every column chunk the split decodes (its row
/// groups, the plan's columns; up to [`PREFETCH_LIMIT_BYTES`]) together — concurrent,
/// coalesced GETs — instead of one GET after another as the decoder reaches each chunk.
pub fn read_parquet_split_in(
    split: &FileSplit,
    schema: SchemaRef,
    batch_size: usize,
    storage: &InputStorage,
) -> Result<ParquetBatches> {
    let path = PathBuf::from(&split.path);
    let parquet_error = parquet_error(&path);
    match storage.open_remote(&split.path)? {
        Some(object) => {
            let mut input = ObjectChunkReader::new(object);
            input
                .prefetch_footer()
                .map_err(|e| parquet_error(e.to_string()))?;
            let read = SplitRead::plan(&input, &path, split, &schema)?;
            input
                .prefetch(&read.column_chunks(PREFETCH_LIMIT_BYTES))
                .map_err(|e| parquet_error(e.to_string()))?;
            read.batches(input, path, schema, batch_size)
        }
        None => {
            let local = InputStorage::local_path(&split.path);
            let file = File::open(&local).map_err(|e| WorkerError::io(&path, e))?;
            let read = SplitRead::plan(&file, &path, split, &schema)?;
            read.batches(file, path, schema, batch_size)
        }
    }
}

/// Most bytes of column chunks prefetched for one split from an object store; chunks beyond
/// it are fetched when the decoder reaches them.
pub const PREFETCH_LIMIT_BYTES: u64 = 256 << 20;

/// An error about the Parquet file at `path`.
fn parquet_error(path: &std::path::Path) -> impl Fn(String) -> WorkerError + use<> {
    let path = path.to_path_buf();
    move |message: String| WorkerError::Parquet {
        path: path.clone(),
        message,
    }
}

/// What reading one split decodes: the file's metadata, the plan's columns, its row groups.
struct SplitRead {
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    row_groups: Vec<usize>,
}

impl SplitRead {
    /// Reads `input`'s footer and checks the split against it: a file whose columns differ
    /// from `schema`, or that lacks a row group the split names, is an error naming it.
    fn plan<T: ChunkReader>(
        input: &T,
        path: &std::path::Path,
        split: &FileSplit,
        schema: &SchemaRef,
    ) -> Result<SplitRead> {
        let parquet_error = parquet_error(path);
        let metadata = ArrowReaderMetadata::load(input, Default::default())
            .map_err(|e| parquet_error(e.to_string()))?;
        // Decode only the plan's columns (the coordinator prunes unused ones from the schema).
        let roots = schema
            .fields()
            .iter()
            .map(|f| {
                metadata.schema().index_of(f.name()).map_err(|_| {
                    parquet_error(format!("has no column '{}' (the first file has)", f.name()))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let groups = metadata.metadata().num_row_groups();
        if let Some(bad) = split.row_groups.iter().find(|&&g| g as usize >= groups) {
            return Err(parquet_error(format!(
                "has {groups} row groups; row group {bad} was asked for"
            )));
        }
        let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
        let metadata = with_dictionaries(metadata, schema);
        Ok(SplitRead {
            metadata,
            mask,
            row_groups: split.row_groups.iter().map(|&g| g as usize).collect(),
        })
    }

    /// The byte ranges of the column chunks this read decodes, in file order, up to `limit`
    /// bytes in all.
    fn column_chunks(&self, limit: u64) -> Vec<Range<u64>> {
        let mut ranges = Vec::new();
        let mut total = 0u64;
        for &g in &self.row_groups {
            let group = self.metadata.metadata().row_group(g);
            for (leaf, column) in group.columns().iter().enumerate() {
                if !self.mask.leaf_included(leaf) {
                    continue;
                }
                let (start, length) = column.byte_range();
                total = total.saturating_add(length);
                if total > limit {
                    return ranges;
                }
                ranges.push(start..start.saturating_add(length));
            }
        }
        ranges
    }

    /// The batches, decoded from `input`.
    fn batches<T: ChunkReader + 'static>(
        self,
        input: T,
        path: PathBuf,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<ParquetBatches> {
        let parquet_error = parquet_error(&path);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input, self.metadata)
            .with_projection(self.mask)
            .with_row_groups(self.row_groups)
            .with_batch_size(batch_size.max(1))
            .build()
            .map_err(|e| parquet_error(e.to_string()))?;
        Ok(Box::new(reader.map(move |batch| {
            let batch = batch.map_err(|e| parquet_error(e.to_string()))?;
            // A dictionary the reader could not keep (see `with_dictionaries`) is built here.
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| match f.data_type() {
                    t @ DataType::Dictionary(..) if c.data_type() != t => cast(c, t),
                    _ => Ok(c.clone()),
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| parquet_error(format!("reading a column as a dictionary: {e}")))?;
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| parquet_error(format!("schema differs from the first file's: {e}")))
        })))
    }
}

/// `metadata` with the string columns that `schema` asks for as dictionaries decoded as
/// such. Where the reader refuses that schema, `metadata` as it was: the batches are then
/// cast to the dictionaries asked for, so the result is the same, only slower.
fn with_dictionaries(metadata: ArrowReaderMetadata, schema: &SchemaRef) -> ArrowReaderMetadata {
    let wanted = |name: &str| {
        schema
            .field_with_name(name)
            .ok()
            .map(|f| f.data_type())
            .filter(|t| matches!(t, DataType::Dictionary(..)))
    };
    let file_schema = metadata.schema();
    if !file_schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Utf8 && wanted(f.name()).is_some())
    {
        return metadata;
    }
    let fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .map(|f| match wanted(f.name()) {
            Some(t) if f.data_type() == &DataType::Utf8 => {
                f.as_ref().clone().with_data_type(t.clone())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let supplied = Arc::new(Schema::new_with_metadata(
        fields,
        file_schema.metadata().clone(),
    ));
    let options = ArrowReaderOptions::new().with_schema(supplied);
    ArrowReaderMetadata::try_new(metadata.metadata().clone(), options).unwrap_or(metadata)
}
