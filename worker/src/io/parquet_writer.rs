//! Writes a task's output batches into one Parquet file: a local file, or an object in a
//! store (uploaded in blocks by `quiver_storage::ObjectWriter`, visible once closed).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
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
    writer: ArrowWriter<Target>,
}

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
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(target, schema, Some(props)).map_err(|e| {
            WorkerError::Parquet {
                path: name.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(ParquetFileWriter { name, writer })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| WorkerError::Parquet {
            path: self.name.clone(),
            message: e.to_string(),
        })
    }

    /// Writes the footer and closes the file (completing the upload of an object); returns
    /// its size in bytes.
    pub fn close(self) -> Result<u64> {
        let name = self.name;
        let target = self.writer.into_inner().map_err(|e| WorkerError::Parquet {
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
