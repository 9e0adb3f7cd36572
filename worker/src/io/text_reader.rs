//! [`TextSplitReader`]: the lines of one byte range of a text file, as batches of a Utf8
//! column `line` (and, when the scan's schema asks for them, the file's `path` and the byte
//! `offset` where each line starts).
//!
//! A split `[start, end)` owns every line whose first byte lies in it, so that splits cut at
//! arbitrary byte offsets give every line exactly once: a reader starting mid-file skips the
//! partial line it lands in, and reads past `end` to finish its last line. The trailing `\n`
//! (and a `\r` before it) are not part of the row.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use quiver_plan::FileSplit;

use crate::error::{Result, WorkerError};

/// Stop filling a batch once its text reaches this many bytes, whatever the row count.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Reads the lines of one split.
pub struct TextSplitReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// File offset of the next unread byte.
    pos: u64,
    end: u64,
    batch_size: usize,
    schema: SchemaRef,
    done: bool,
}

impl TextSplitReader {
    /// Opens `split` and positions the reader at the first line it owns.
    pub fn open(split: &FileSplit, schema: SchemaRef, batch_size: usize) -> Result<Self> {
        let path = PathBuf::from(&split.path);
        let file = File::open(&path).map_err(|e| WorkerError::io(&path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut pos = split.start;
        if split.start > 0 {
            // Land on the byte before the split: if it is '\n', a line starts exactly at
            // `start`; otherwise skip the rest of the line that began in the previous split.
            reader
                .seek(SeekFrom::Start(split.start - 1))
                .map_err(|e| WorkerError::io(&path, e))?;
            let skipped = reader
                .skip_until(b'\n')
                .map_err(|e| WorkerError::io(&path, e))?;
            pos = split.start - 1 + skipped as u64;
        }
        Ok(TextSplitReader {
            path,
            reader,
            pos,
            end: split.end,
            batch_size: batch_size.max(1),
            schema,
            done: false,
        })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut values: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut offsets: Vec<i32> = Vec::with_capacity(self.batch_size + 1);
        let mut line_starts: Vec<u64> = Vec::with_capacity(self.batch_size);
        offsets.push(0);
        while offsets.len() <= self.batch_size && values.len() < MAX_BATCH_BYTES {
            if self.pos >= self.end {
                self.done = true;
                break;
            }
            let line_start = self.pos;
            let n = self
                .reader
                .read_until(b'\n', &mut values)
                .map_err(|e| WorkerError::io(&self.path, e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.pos += n as u64;
            if values.last() == Some(&b'\n') {
                values.pop();
                if values.last() == Some(&b'\r') {
                    values.pop();
                }
            }
            let end = i32::try_from(values.len()).map_err(|_| WorkerError::LineTooLong {
                path: self.path.clone(),
                bytes: n as u64,
            })?;
            offsets.push(end);
            line_starts.push(line_start);
        }
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
            let path = self.path.to_string_lossy();
            columns.push(Arc::new(StringArray::from_iter_values(
                std::iter::repeat_n(path.as_ref(), line_starts.len()),
            )));
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
