//! The scan source: this task's input splits read one after the other, by the reader of the
//! source's format (text, Parquet or CSV), from local files or object store URLs.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quiver_plan::{FileSplit, ScanNode, SourceFormat};

use super::batch_stream::{BatchIter, check_cancelled};
use crate::io::input_storage::InputStorage;
use crate::io::{csv_reader, parquet_reader, text_reader::TextSplitReader};

/// The batches of `splits`, read as `scan` says. A split that cannot be opened yields its
/// error in its place.
#[cfg(any(test, feature = "internals"))]
pub fn scan(
    scan: &ScanNode,
    splits: Vec<FileSplit>,
    batch_size: usize,
    cancelled: Arc<AtomicBool>,
) -> BatchIter {
    scan_in(scan, splits, batch_size, cancelled, InputStorage::default())
}

/// Like `scan`, reading object store URLs through `storage` (the worker's stores and the
/// job's options).
pub fn scan_in(
    scan: &ScanNode,
    splits: Vec<FileSplit>,
    batch_size: usize,
    cancelled: Arc<AtomicBool>,
    storage: InputStorage,
) -> BatchIter {
    let schema = scan.schema.clone();
    let format = scan.format;
    let csv = scan.csv.clone();
    let batches = splits.into_iter().flat_map(move |split| -> BatchIter {
        let opened: crate::Result<BatchIter> = match format {
            SourceFormat::Text => {
                TextSplitReader::open_in(&split, schema.clone(), batch_size, &storage)
                    .map(|r| Box::new(r) as BatchIter)
            }
            SourceFormat::Parquet => {
                parquet_reader::read_parquet_split_in(&split, schema.clone(), batch_size, &storage)
            }
            SourceFormat::Csv => {
                csv_reader::read_csv_split_in(&split, schema.clone(), &csv, batch_size, &storage)
                    .map(|r| Box::new(r) as BatchIter)
            }
        };
        opened.unwrap_or_else(|e| Box::new(std::iter::once(Err(e))))
    });
    Box::new(batches.map(move |b| {
        let b = b?;
        check_cancelled(&cancelled)?;
        Ok(b)
    }))
}
