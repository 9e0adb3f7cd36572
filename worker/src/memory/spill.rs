//! Spill files: batches an operator moved out of memory, as Arrow IPC streams in the task's
//! own spill directory.
//!
//! [`SpillDir`] creates the directory on the first spill and removes it, with everything in
//! it, when dropped, which happens when the task ends however it ends (success, error,
//! cancellation or panic). A [`SpillRun`] also deletes its own file as soon as it is dropped,
//! so disk is given back as soon as a run has been merged ([`SpillFile`] does the same for
//! files an operator lays out itself).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use crate::error::{Result, WorkerError};

/// A task's spill directory.
#[derive(Debug)]
pub struct SpillDir {
    parent: PathBuf,
    name: String,
    dir: OnceLock<tempfile::TempDir>,
    next_file: AtomicU32,
    spilled: Arc<AtomicU64>,
}

impl SpillDir {
    /// A directory named after `name` under `parent`, created when first needed.
    pub fn new(parent: PathBuf, name: String) -> Self {
        SpillDir {
            parent,
            name,
            dir: OnceLock::new(),
            next_file: AtomicU32::new(0),
            spilled: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes written to spill files so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    fn path(&self) -> Result<PathBuf> {
        if let Some(d) = self.dir.get() {
            return Ok(d.path().to_path_buf());
        }
        std::fs::create_dir_all(&self.parent).map_err(|e| WorkerError::io(&self.parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", self.name))
            .tempdir_in(&self.parent)
            .map_err(|e| WorkerError::io(&self.parent, e))?;
        Ok(self.dir.get_or_init(|| dir).path().to_path_buf())
    }

    /// A new, not yet created, file name in the directory; the file is deleted when the
    /// returned value is dropped.
    pub fn create_file(&self, prefix: &str) -> Result<SpillFile> {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        Ok(SpillFile {
            path: self.path()?.join(format!("{prefix}-{n}.arrows")),
        })
    }

    /// Counts bytes a caller wrote into a [`SpillFile`] itself.
    pub fn add_spilled(&self, bytes: u64) {
        self.spilled.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A new spill file for batches of `schema`.
    pub fn create(&self, schema: &SchemaRef) -> Result<SpillWriter> {
        let file = self.create_file("run")?;
        let out = File::create(file.path()).map_err(|e| WorkerError::io(file.path(), e))?;
        let writer = StreamWriter::try_new(BufWriter::with_capacity(1 << 20, out), schema)?;
        Ok(SpillWriter {
            file,
            writer,
            rows: 0,
            spilled: self.spilled.clone(),
        })
    }
}

/// A file in a spill directory, deleted when dropped.
#[derive(Debug)]
pub struct SpillFile {
    path: PathBuf,
}

impl SpillFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An open spill file.
pub struct SpillWriter {
    file: SpillFile,
    writer: StreamWriter<BufWriter<File>>,
    rows: u64,
    spilled: Arc<AtomicU64>,
}

impl SpillWriter {
    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows() as u64;
            self.writer.write(batch)?;
        }
        Ok(())
    }

    /// Closes the file.
    pub fn finish(mut self) -> Result<SpillRun> {
        self.writer.finish()?;
        let path = self.file.path();
        let bytes = std::fs::metadata(path)
            .map_err(|e| WorkerError::io(path, e))?
            .len();
        self.spilled.fetch_add(bytes, Ordering::Relaxed);
        Ok(SpillRun { file: self.file })
    }
}

/// A finished spill file of batches; deleted when dropped.
#[derive(Debug)]
pub struct SpillRun {
    file: SpillFile,
}

impl SpillRun {
    /// The run's batches, read back one at a time.
    pub fn read(&self) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send + use<>> {
        let path = self.file.path();
        let file = File::open(path).map_err(|e| WorkerError::io(path, e))?;
        let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None)?;
        Ok(reader.map(|b| b.map_err(WorkerError::from)))
    }
}
