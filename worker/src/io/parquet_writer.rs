//! Writes a task's output batches into one Parquet file.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Result, WorkerError};

/// An open Parquet file being written (snappy-compressed).
pub struct ParquetFileWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
}

impl ParquetFileWriter {
    /// Creates `path` (and its parent directories).
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| WorkerError::io(parent, e))?;
        }
        let file = File::create(path).map_err(|e| WorkerError::io(path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| WorkerError::Parquet {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(ParquetFileWriter {
            path: path.to_path_buf(),
            writer,
        })
    }

    fn error(&self, e: parquet::errors::ParquetError) -> WorkerError {
        WorkerError::Parquet {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| self.error(e))
    }

    /// Writes the footer and closes the file; returns its size in bytes.
    pub fn close(self) -> Result<u64> {
        let path = self.path.clone();
        self.writer.close().map_err(|e| WorkerError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(fs::metadata(&path)
            .map_err(|e| WorkerError::io(&path, e))?
            .len())
    }
}
