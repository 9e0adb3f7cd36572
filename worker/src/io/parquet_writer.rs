//! Writes a task's output batches into one Parquet file: a local file, or an object in a
//! store (uploaded in blocks by `quiver_storage::ObjectWriter`, visible once closed).
//!
//! Columns are snappy-compressed and dictionary-encoded, as Parquet writers do by default,
//! except a binary or string column whose first batch is all (99%+) distinct values over
//! thousands of rows: a dictionary of distinct values saves nothing, and a large one passes
//! the 1 MiB page limit and is abandoned, after every value was hashed and copied into it;
//! such a column is written plain from the start (see [`dictionary_is_hopeless`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use quiver_storage::ObjectWriter;

use crate::error::{Result, WorkerError};

/// Where the bytes go.
enum Target {
    File(File),
    // Boxed: the upload's state is much larger than a file handle.
    Object(Box<ObjectWriter>),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Target::File(f) => f.write(buf),
            Target::Object(o) => o.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Target::File(f) => f.flush(),
            Target::Object(o) => o.flush(),
        }
    }
}

/// A Parquet file being written (snappy-compressed).
pub struct ParquetFileWriter {
    /// The file's path or URL, for errors.
    name: PathBuf,
    state: State,
}

/// The Parquet writer starts with the first batch, whose columns choose its properties.
enum State {
    Waiting {
        target: Target,
        schema: SchemaRef,
    },
    // Boxed: the writer's state is much larger than the waiting variant's.
    Writing(Box<ArrowWriter<Target>>),
    /// Only while switching from one to the other, or after a failure.
    Failed,
}

/// Rows of a first batch that say a column has too many distinct values for a dictionary:
/// 99% distinct over this many rows is a column of unique values (a grouped or keyed
/// output) or of hundreds of thousands of values drawn at random, which (with their 4-byte
/// lengths) pass the 1 MiB dictionary page limit.
const DISTINCT_SAMPLE_ROWS: usize = 5000;

impl ParquetFileWriter {
    /// Creates the local file `path` (and its parent directories).
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| WorkerError::io(parent, e))?;
        }
        let file = File::create(path).map_err(|e| WorkerError::io(path, e))?;
        Self::over(Target::File(file), path.to_path_buf(), schema)
    }

    /// Writes through `object` (named `name` in errors).
    pub fn create_object(object: ObjectWriter, name: String, schema: SchemaRef) -> Result<Self> {
        Self::over(
            Target::Object(Box::new(object)),
            PathBuf::from(name),
            schema,
        )
    }

    fn over(target: Target, name: PathBuf, schema: SchemaRef) -> Result<Self> {
        Ok(ParquetFileWriter {
            name,
            state: State::Waiting { target, schema },
        })
    }

    fn error(&self, e: impl ToString) -> WorkerError {
        WorkerError::Parquet {
            path: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// The writer, started with properties chosen from `first` (if any) when not yet.
    fn writer(&mut self, first: Option<&RecordBatch>) -> Result<&mut ArrowWriter<Target>> {
        if let State::Waiting { .. } = self.state {
            let State::Waiting { target, schema } =
                std::mem::replace(&mut self.state, State::Failed)
            else {
                unreachable!("matched above");
            };
            let props = properties(&schema, first);
            let writer =
                ArrowWriter::try_new(target, schema, Some(props)).map_err(|e| self.error(e))?;
            self.state = State::Writing(Box::new(writer));
        }
        let name = &self.name;
        match &mut self.state {
            State::Writing(w) => Ok(w),
            _ => Err(WorkerError::Parquet {
                path: name.clone(),
                message: "an earlier write failed".into(),
            }),
        }
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let result = self.writer(Some(batch))?.write(batch);
        result.map_err(|e| self.error(e))
    }

    /// Writes the footer and closes the file (completing the upload of an object); returns
    /// its size in bytes.
    pub fn close(mut self) -> Result<u64> {
        self.writer(None)?;
        let State::Writing(writer) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(self.error("an earlier write failed"));
        };
        let name = self.name;
        let target = writer.into_inner().map_err(|e| WorkerError::Parquet {
            path: name.clone(),
            message: e.to_string(),
        })?;
        match target {
            Target::File(file) => Ok(file
                .metadata()
                .map_err(|e| WorkerError::io(&name, e))?
                .len()),
            Target::Object(object) => object.finish().map_err(|e| WorkerError::Parquet {
                path: name,
                message: e.to_string(),
            }),
        }
    }
}

/// Snappy for every column, and a dictionary for every column but those `first` shows to
/// be hopeless for one.
fn properties(schema: &SchemaRef, first: Option<&RecordBatch>) -> WriterProperties {
    let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
    if let Some(batch) = first {
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if dictionary_is_hopeless(column.as_ref()) {
                props = props
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
    }
    props.build()
}

/// Whether a top-level binary or string column's values are 99% distinct over at least
/// [`DISTINCT_SAMPLE_ROWS`] non-null rows (counted over the first such rows).
fn dictionary_is_hopeless(column: &dyn Array) -> bool {
    fn distinct<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> bool {
        let values: Vec<&[u8]> = values.flatten().take(DISTINCT_SAMPLE_ROWS).collect();
        if values.len() < DISTINCT_SAMPLE_ROWS {
            return false;
        }
        let set: HashSet<&[u8]> = values.iter().copied().collect();
        set.len() * 100 >= values.len() * 99
    }
    match column.data_type() {
        DataType::Binary => distinct(column.as_binary::<i32>().iter()),
        DataType::LargeBinary => distinct(column.as_binary::<i64>().iter()),
        DataType::Utf8 => distinct(
            column
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::as_bytes)),
        ),
        DataType::LargeUtf8 => distinct(
            column
                .as_string::<i64>()
                .iter()
                .map(|v| v.map(str::as_bytes)),
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use arrow::array::{ArrayRef, BinaryArray, StringArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;
    use std::sync::Arc;

    /// A column of all-distinct values is written without a dictionary, one of few values
    /// with one; both read back as written.
    #[test]
    fn only_columns_with_few_distinct_values_get_a_dictionary() {
        let rows = 6000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("unique", DataType::Binary, false),
            Field::new("few", DataType::Utf8, true),
        ]));
        let unique: Vec<Vec<u8>> = (0..rows).map(|i: u32| i.to_be_bytes().repeat(3)).collect();
        let few: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 7 != 0).then(|| format!("v{}", i % 13)))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(unique.iter())),
            Arc::new(StringArray::from(few.clone())),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut writer = ParquetFileWriter::create(&path, schema).unwrap();
        writer.write(&batch).unwrap();
        writer.write(&batch.slice(10, 100)).unwrap();
        writer.close().unwrap();

        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let chunk = builder.metadata().row_group(0);
        let dictionary = |c: usize| {
            chunk.column(c).dictionary_page_offset().is_some()
                || chunk
                    .column(c)
                    .encodings()
                    .any(|e| e == Encoding::RLE_DICTIONARY)
        };
        assert!(!dictionary(0), "the all-distinct column has no dictionary");
        assert!(dictionary(1), "the column of 13 values has one");
        let read: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        let expected =
            arrow::compute::concat_batches(&batch.schema(), &[batch.clone(), batch.slice(10, 100)])
                .unwrap();
        assert_eq!(read, expected);
        // Fewer rows than the sample needs: the default (a dictionary) stays.
        assert!(!dictionary_is_hopeless(
            batch.slice(0, 100).column(0).as_ref()
        ));
        assert!(dictionary_is_hopeless(batch.column(0).as_ref()));
        assert!(!dictionary_is_hopeless(batch.column(1).as_ref()));
    }
}
