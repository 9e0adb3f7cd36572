//! [`Sources`]: the `Dataset::read_*` constructors with per-job object store settings.

use std::path::Path;

use quiver_plan::{CsvOptions, SourceFormat};
use quiver_storage::StorageOptions;

use crate::dataset::Dataset;
use crate::error::Result;

/// Reads sources whose object store URLs need credentials or endpoints other than the
/// environment's (`AWS_*`, `GOOGLE_*`, `AZURE_*`). The driver lists the inputs with these
/// options; give the same options to the [`Client`](crate::Client) that submits the job
/// ([`Client::with_storage_options`](crate::Client::with_storage_options)) so that the workers
/// read them with it too.
///
/// ```no_run
/// # fn run() -> quiver::Result<()> {
/// use quiver::{Sources, StorageOptions};
/// let storage = StorageOptions::from_pairs([
///     ("aws_endpoint", "http://127.0.0.1:9000"),
///     ("aws_access_key_id", "minio"),
///     ("aws_secret_access_key", "minio-secret"),
///     ("aws_allow_http", "true"),
/// ])
/// .expect("known settings");
/// let sales = Sources::with_storage(storage).read_parquet(&["s3://warehouse/sales/"])?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Sources {
    storage: StorageOptions,
}

impl Sources {
    /// Sources listed and read with `storage` on top of the environment.
    pub fn with_storage(storage: StorageOptions) -> Self {
        Sources { storage }
    }

    /// The options.
    pub fn storage(&self) -> &StorageOptions {
        &self.storage
    }

    fn read(
        &self,
        format: SourceFormat,
        paths: &[impl AsRef<Path>],
        csv: CsvOptions,
        positions: bool,
    ) -> Result<Dataset> {
        Dataset::source_with(format, paths, csv, positions, &self.storage)
    }

    /// As [`Dataset::read_text`].
    pub fn read_text(&self, paths: &[impl AsRef<Path>]) -> Result<Dataset> {
        self.read(SourceFormat::Text, paths, CsvOptions::default(), false)
    }

    /// As [`Dataset::read_text_with_positions`].
    pub fn read_text_with_positions(&self, paths: &[impl AsRef<Path>]) -> Result<Dataset> {
        self.read(SourceFormat::Text, paths, CsvOptions::default(), true)
    }

    /// As [`Dataset::read_parquet`].
    pub fn read_parquet(&self, paths: &[impl AsRef<Path>]) -> Result<Dataset> {
        self.read(SourceFormat::Parquet, paths, CsvOptions::default(), false)
    }

    /// As [`Dataset::read_csv`].
    pub fn read_csv(&self, paths: &[impl AsRef<Path>]) -> Result<Dataset> {
        self.read(SourceFormat::Csv, paths, CsvOptions::default(), false)
    }

    /// As [`Dataset::read_csv_with`].
    pub fn read_csv_with(
        &self,
        paths: &[impl AsRef<Path>],
        options: CsvOptions,
    ) -> Result<Dataset> {
        self.read(SourceFormat::Csv, paths, options, false)
    }
}
