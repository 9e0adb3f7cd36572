//! Lists a source's input files and infers their schema when a dataset is built, so that a
//! missing path, an empty directory, a corrupt Parquet file or an unknown column is reported on
//! the driver before anything is submitted. Reading the files is the workers' business; this
//! module only looks at names, sizes, Parquet footers and the first CSV records.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::csv::reader::Format;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_plan::{CsvOptions, InputFile};

/// Why a source's inputs cannot be listed or their schema inferred.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet footer cannot be read, or the files' schemas differ.
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A CSV schema cannot be inferred.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// No paths, a missing path, or an empty directory.
    #[error("no input: {message}")]
    NoInput {
        /// What is missing.
        message: String,
    },
}

impl InputError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        InputError::Io {
            path: path.into(),
            source,
        }
    }
}

type Result<T> = std::result::Result<T, InputError>;

/// Expands files and directories (recursively, in name order) into the files they hold.
/// Hidden files and names starting with `_` (such as `_SUCCESS`) are skipped inside
/// directories, as every Hadoop-family tool does.
pub(crate) fn list_files(paths: &[PathBuf]) -> Result<Vec<InputFile>> {
    if paths.is_empty() {
        return Err(InputError::NoInput {
            message: "no input paths were given".into(),
        });
    }
    let mut out = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                InputError::NoInput {
                    message: format!("input path {} does not exist", path.display()),
                }
            } else {
                InputError::io(path, e)
            }
        })?;
        if meta.is_dir() {
            let before = out.len();
            walk(path, &mut out)?;
            if out.len() == before {
                return Err(InputError::NoInput {
                    message: format!("directory {} contains no files", path.display()),
                });
            }
        } else {
            out.push(input_file(path, meta.len()));
        }
    }
    Ok(out)
}

fn input_file(path: &Path, size: u64) -> InputFile {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    InputFile {
        path: absolute.to_string_lossy().into_owned(),
        size,
        row_groups: 0,
    }
}

fn walk(dir: &Path, out: &mut Vec<InputFile>) -> Result<()> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| InputError::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| InputError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|e| InputError::io(&path, e))?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(input_file(&path, meta.len()));
        }
    }
    Ok(())
}

/// Reads every file's Parquet footer: the schema (which all files must share) and the row
/// group counts the coordinator splits by.
pub(crate) fn inspect_parquet(files: &mut [InputFile]) -> Result<SchemaRef> {
    let mut schema: Option<SchemaRef> = None;
    for f in files.iter_mut() {
        let path = PathBuf::from(&f.path);
        let file = File::open(&path).map_err(|e| InputError::io(&path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| InputError::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })?;
        f.row_groups = builder.metadata().num_row_groups() as u32;
        let this = Arc::new(
            builder
                .schema()
                .as_ref()
                .clone()
                .with_metadata(std::collections::HashMap::new()),
        );
        match &schema {
            None => schema = Some(this),
            Some(first) if first.fields() != this.fields() => {
                return Err(InputError::Parquet {
                    path,
                    message: format!(
                        "its schema {this} differs from the first file's schema {first}"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    schema.ok_or_else(|| InputError::NoInput {
        message: "no Parquet files".into(),
    })
}

/// Infers a CSV schema from the first 1000 records of the first file.
pub(crate) fn infer_csv_schema(files: &[InputFile], options: &CsvOptions) -> Result<SchemaRef> {
    let first = files.first().ok_or_else(|| InputError::NoInput {
        message: "no CSV files".into(),
    })?;
    let path = PathBuf::from(&first.path);
    let file = File::open(&path).map_err(|e| InputError::io(&path, e))?;
    let (schema, _) = Format::default()
        .with_header(options.has_header)
        .with_delimiter(options.delimiter)
        .infer_schema(file, Some(1000))
        .map_err(|e| InputError::Csv {
            path,
            message: e.to_string(),
        })?;
    Ok(Arc::new(schema))
}
