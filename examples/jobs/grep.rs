//! Grep: the lines of text files that match a regular expression, with file and line number.
//!
//! The job finds matching lines and the byte offset where each starts (a text split does not
//! know how many lines precede it, so workers cannot number lines). The driver then turns
//! offsets into line numbers by counting newlines in each file that has a match, up to its
//! last match; for the rare patterns grep is used with, that is a fraction of the input.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use quiver::Dataset;
use quiver::functions::{col, regexp_like};

/// One matching line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub path: String,
    /// 1-based.
    pub line_number: u64,
    pub line: String,
}

/// The job: matching lines with their file and byte offset.
pub fn grep_job(inputs: &[PathBuf], pattern: &str) -> quiver::Result<Dataset> {
    Dataset::read_text_with_positions(inputs)?
        .filter(regexp_like(col("line"), pattern))?
        .select([
            col("path").cast(DataType::Utf8).alias("path"),
            col("offset"),
            col("line"),
        ])
}

/// The job's rows as matches with line numbers, sorted by file and line.
pub fn number_lines(batches: &[RecordBatch]) -> anyhow::Result<Vec<Match>> {
    let mut by_file: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for b in batches {
        let (path, offset, line) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            by_file
                .entry(path.value(i).to_string())
                .or_default()
                .push((offset.value(i), line.value(i).to_string()));
        }
    }
    let mut out = Vec::new();
    for (path, mut hits) in by_file {
        hits.sort();
        let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
        let mut buf = vec![0u8; 1 << 20];
        let (mut pos, mut newlines) = (0u64, 0u64);
        for (offset, line) in hits {
            let offset = offset as u64;
            while pos < offset {
                let want = ((offset - pos) as usize).min(buf.len());
                let n = file.read(&mut buf[..want])?;
                if n == 0 {
                    break;
                }
                newlines += buf[..n].iter().filter(|&&c| c == b'\n').count() as u64;
                pos += n as u64;
            }
            out.push(Match {
                path: path.clone(),
                line_number: newlines + 1,
                line,
            });
        }
    }
    Ok(out)
}

/// The reference: every matching line of `files`, read line by line on one thread.
pub fn grep_reference(
    files: &[PathBuf],
    matches: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<Match>> {
    use std::io::BufRead;
    let mut out = Vec::new();
    for f in files {
        let reader = std::io::BufReader::new(std::fs::File::open(f)?);
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if matches(line) {
                out.push(Match {
                    path: absolute(f),
                    line_number: i as u64 + 1,
                    line: line.to_string(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .into_owned()
}
