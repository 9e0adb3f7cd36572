//! [`TextSplitReader`]: the lines of one byte range of a text file, as batches of a Utf8
//! column `line` (and, when the scan's schema asks for them, the file's `path` and the byte
//! `offset` where each line starts).
//!
//! A split `[start, end)` owns every line whose first byte lies in it, so that splits cut at
//! arbitrary byte offsets give every line exactly once: a reader starting mid-file skips the
//! partial line it lands in, and reads past `end` to finish its last line. The trailing `\n`
//! (and a `\r` before it) are not part of the row.
//!
//! A local file is read with `std::fs`; an object store URL through an
//! [`ObjectReader`](quiver_storage::ObjectReader), which fetches the split (and the end of its
//! last line) in large ranged GETs. Both go through the same code, so splits cut the same way.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use quiver_plan::FileSplit;

use crate::error::{Result, WorkerError};
use crate::io::input_storage::InputStorage;

/// Stop filling a batch once its text reaches this many bytes, whatever the row count.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Bytes read from the file at a time (the buffer grows for longer lines).
const READ_BYTES: usize = 4 << 20;

/// The lines of one batch: their bytes back to back, offsets, and file offsets.
struct LineBatch {
    values: Vec<u8>,
    offsets: Vec<i32>,
    starts: Vec<u64>,
}

impl LineBatch {
    /// Appends a line (without its '\n'; a '\r' before it is dropped) starting at `start`.
    fn push(&mut self, line: &[u8], start: u64, path: &std::path::Path) -> Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.values.extend_from_slice(line);
        let end = i32::try_from(self.values.len()).map_err(|_| WorkerError::LineTooLong {
            path: path.to_path_buf(),
            bytes: line.len() as u64,
        })?;
        self.offsets.push(end);
        self.starts.push(start);
        Ok(())
    }
}

/// Reads the lines of one split.
///
/// The file is read in large blocks and line ends are found with a SIMD `memchr` over each
/// block; each line is copied once, into the batch's value buffer.
pub struct TextSplitReader {
    path: PathBuf,
    file: Box<dyn Read + Send>,
    /// Bytes read and not yet consumed are `buf[buf_pos..buf_len]`.
    buf: Vec<u8>,
    buf_pos: usize,
    buf_len: usize,
    /// File offset of `buf[buf_pos]`.
    pos: u64,
    eof: bool,
    end: u64,
    batch_size: usize,
    schema: SchemaRef,
    done: bool,
}

impl TextSplitReader {
    /// Opens `split` and positions the reader at the first line it owns.
    #[cfg(any(test, feature = "internals"))]
    pub fn open(split: &FileSplit, schema: SchemaRef, batch_size: usize) -> Result<Self> {
        Self::open_in(split, schema, batch_size, &InputStorage::default())
    }

    /// Like `TextSplitReader::open`, reading object store URLs through `storage`.
    pub fn open_in(
        split: &FileSplit,
        schema: SchemaRef,
        batch_size: usize,
        storage: &InputStorage,
    ) -> Result<Self> {
        let path = PathBuf::from(&split.path);
        // Start on the byte before the split: if it is '\n', a line starts exactly at
        // `start`; otherwise the rest of the line that began in the previous split is skipped.
        let first = split.start.saturating_sub(1);
        let (file, size): (Box<dyn Read + Send>, u64) = match storage.open_remote(&split.path)? {
            Some(object) => (Box::new(object.reader(first)), object.size()),
            None => {
                let local = InputStorage::local_path(&split.path);
                let mut file = File::open(&local).map_err(|e| WorkerError::io(&path, e))?;
                let size = file
                    .metadata()
                    .map_err(|e| WorkerError::io(&path, e))?
                    .len();
                file.seek(SeekFrom::Start(first.min(size)))
                    .map_err(|e| WorkerError::io(&path, e))?;
                (Box::new(file), size)
            }
        };
        // The offsets came over the network: they must lie in the file as it is.
        if split.start > split.end || split.start > size {
            return Err(WorkerError::BadSplit {
                path,
                start: split.start,
                end: split.end,
                size,
            });
        }
        let mut reader = TextSplitReader {
            path,
            file,
            buf: vec![0; READ_BYTES],
            buf_pos: 0,
            buf_len: 0,
            pos: first,
            eof: false,
            end: split.end,
            batch_size: batch_size.max(1),
            schema,
            done: false,
        };
        if split.start > 0 {
            reader.skip_line()?;
        }
        Ok(reader)
    }

    /// Consumes everything up to and including the next '\n'.
    fn skip_line(&mut self) -> Result<()> {
        loop {
            let avail = &self.buf[self.buf_pos..self.buf_len];
            if let Some(nl) = memchr::memchr(b'\n', avail) {
                self.consume(nl + 1);
                return Ok(());
            }
            let n = avail.len();
            self.consume(n);
            if !self.refill()? {
                return Ok(());
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf_pos += n;
        self.pos += n as u64;
    }

    /// Moves the unconsumed bytes to the front and reads more; false at the end of the file.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.buf_pos..self.buf_len, 0);
        self.buf_len -= self.buf_pos;
        self.buf_pos = 0;
        if self.buf_len == self.buf.len() {
            // One line fills the buffer: make room for more of it.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .file
            .read(&mut self.buf[self.buf_len..])
            .map_err(|e| WorkerError::io(&self.path, e))?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf_len += n;
        Ok(true)
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut lines = LineBatch {
            values: Vec::with_capacity(256 * 1024),
            offsets: Vec::with_capacity(self.batch_size + 1),
            starts: Vec::with_capacity(self.batch_size),
        };
        lines.offsets.push(0);
        'batch: loop {
            // Every complete line in the buffer, until the batch is full or the split ends.
            let avail = &self.buf[self.buf_pos..self.buf_len];
            let mut consumed = 0;
            let mut stop = false;
            for nl in memchr::memchr_iter(b'\n', avail) {
                let start = self.pos + consumed as u64;
                if start >= self.end {
                    self.done = true;
                    stop = true;
                    break;
                }
                lines.push(&avail[consumed..nl], start, &self.path)?;
                consumed = nl + 1;
                if lines.starts.len() >= self.batch_size || lines.values.len() >= MAX_BATCH_BYTES {
                    stop = true;
                    break;
                }
            }
            self.buf_pos += consumed;
            self.pos += consumed as u64;
            if stop {
                break 'batch;
            }
            if self.pos >= self.end {
                self.done = true;
                break;
            }
            if !self.refill()? {
                // The file's last line has no '\n'.
                if self.buf_pos < self.buf_len {
                    let start = self.pos;
                    let rest = self.buf_len - self.buf_pos;
                    lines.push(&self.buf[self.buf_pos..self.buf_len], start, &self.path)?;
                    self.buf_pos += rest;
                    self.pos += rest as u64;
                }
                self.done = true;
                break;
            }
        }
        let LineBatch {
            values,
            offsets,
            starts: line_starts,
        } = lines;
        if line_starts.is_empty() {
            return Ok(None);
        }
        // `try_new` validates the UTF-8; only when that fails is the text scanned again, to
        // name the file offset of the first bad byte. (Arrow buffers clone by reference.)
        let values = Buffer::from_vec(values);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let lines = match StringArray::try_new(offsets.clone(), values.clone(), None) {
            Ok(lines) => lines,
            Err(_) => {
                let bad = std::str::from_utf8(values.as_slice())
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                let line = offsets.partition_point(|&o| o as usize <= bad) - 1;
                let offset = line_starts[line] + (bad - offsets[line] as usize) as u64;
                return Err(WorkerError::InvalidUtf8 {
                    path: self.path.clone(),
                    offset,
                });
            }
        };
        let mut columns: Vec<arrow::array::ArrayRef> = vec![Arc::new(lines)];
        if self.schema.fields().len() == 3 {
            // One dictionary entry for the whole batch: 4 bytes a row, not a copy of the path.
            let path = StringArray::from(vec![self.path.to_string_lossy().into_owned()]);
            let keys = arrow::array::Int32Array::from(vec![0; line_starts.len()]);
            columns.push(Arc::new(arrow::array::DictionaryArray::try_new(
                keys,
                Arc::new(path),
            )?));
            columns.push(Arc::new(arrow::array::Int64Array::from_iter_values(
                line_starts.iter().map(|&o| o as i64),
            )));
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

impl Iterator for TextSplitReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
