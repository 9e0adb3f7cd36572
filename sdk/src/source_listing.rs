//! Lists a source's input files and infers their schema when a dataset is built, so that a
//! missing path, an empty directory, a corrupt Parquet file or an unknown column is reported on
//! the driver before anything is submitted. Reading the files is the workers' business; this
//! module only looks at names, sizes, Parquet footers and the first CSV records.
//!
//! Local paths are listed with `std::fs`; object store URLs (`s3://bucket/dir/`,
//! `s3://b/logs/*.txt`) through `quiver-storage` (one `list` per URL, a ranged GET per
//! Parquet footer). Globs work for both. An input's `path` is the absolute local path or the
//! URL.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::csv::reader::Format;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;
use quiver_plan::{CsvOptions, InputFile};
use quiver_storage::{
    Location, ObjectChunkReader, ObjectStores, StorageError, StorageOptions, StoredObject, glob,
    list_objects,
};

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
    /// An object store refused or failed a request (the error names the location).
    #[error(transparent)]
    Storage(#[from] quiver_storage::StorageError),
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
pub(crate) fn list_files(paths: &[PathBuf], storage: &StorageOptions) -> Result<Vec<InputFile>> {
    if paths.is_empty() {
        return Err(InputError::NoInput {
            message: "no input paths were given".into(),
        });
    }
    let mut out = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        let local;
        let path = match text.strip_prefix("file://") {
            Some(rest) => {
                local = PathBuf::from(rest);
                &local
            }
            None if text.contains("://") => {
                list_remote(&text, storage, &mut out)?;
                continue;
            }
            None => path,
        };
        // A glob, unless a file or directory of that very name exists.
        if let Some((base, pattern)) = glob::split_glob(&path.to_string_lossy())
            && !path.exists()
        {
            list_local_glob(path, Path::new(&base), &pattern, &mut out)?;
            continue;
        }
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

/// The process's object store clients, for listing and footers.
fn stores() -> &'static ObjectStores {
    static STORES: OnceLock<ObjectStores> = OnceLock::new();
    STORES.get_or_init(ObjectStores::new)
}

/// Lists a URL (an object, a prefix or a glob) into `out`.
fn list_remote(text: &str, storage: &StorageOptions, out: &mut Vec<InputFile>) -> Result<()> {
    let listed = list_objects(stores(), text, storage).map_err(|e| match e {
        StorageError::NotFound { .. } if glob::is_glob(text) => InputError::NoInput {
            message: format!("{text} matches no files"),
        },
        StorageError::NotFound { .. } => InputError::NoInput {
            message: format!("input path {text} does not exist"),
        },
        StorageError::Store { message, .. } if message.starts_with("contains no files") => {
            InputError::NoInput {
                message: format!("directory {text} contains no files"),
            }
        }
        other => InputError::Storage(other),
    })?;
    out.extend(listed.into_iter().map(|o| InputFile {
        path: o.location.to_string(),
        size: o.size,
        row_groups: 0,
    }));
    Ok(())
}

/// The files under `base` (a local directory) whose path below it matches `pattern` (a file
/// in a matching directory matches).
fn list_local_glob(
    text: &Path,
    base: &Path,
    pattern: &[String],
    out: &mut Vec<InputFile>,
) -> Result<()> {
    if !base.is_dir() {
        return Err(InputError::NoInput {
            message: format!("input path {} does not exist", base.display()),
        });
    }
    let mut all = Vec::new();
    walk(base, &mut all)?;
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let before = out.len();
    out.extend(all.into_iter().filter(|f| {
        let Ok(rel) = Path::new(&f.path).strip_prefix(&base) else {
            return false;
        };
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.len() >= pattern.len() && pattern.iter().zip(&parts).all(|(p, n)| glob::matches(p, n))
    }));
    if out.len() == before {
        return Err(InputError::NoInput {
            message: format!("{} matches no files", text.display()),
        });
    }
    Ok(())
}

/// The object behind `path` when it is an object store URL; `None` for a local file.
fn remote_object(path: &str, storage: &StorageOptions) -> Result<Option<StoredObject>> {
    if !path.contains("://") {
        return Ok(None);
    }
    let location = Location::parse(path)?;
    if location.is_local() {
        return Ok(None);
    }
    Ok(Some(StoredObject::open(stores(), &location, storage)?))
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
pub(crate) fn inspect_parquet(
    files: &mut [InputFile],
    storage: &StorageOptions,
) -> Result<SchemaRef> {
    let mut schema: Option<SchemaRef> = None;
    for f in files.iter_mut() {
        let path = PathBuf::from(&f.path);
        let footer = match remote_object(&f.path, storage)? {
            Some(object) => parquet_footer(ObjectChunkReader::new(object)),
            None => {
                let file = File::open(&path).map_err(|e| InputError::io(&path, e))?;
                parquet_footer(file)
            }
        };
        let (row_groups, this) = footer.map_err(|e| InputError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        })?;
        f.row_groups = row_groups;
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

/// A Parquet file's row group count and Arrow schema (without metadata), from its footer.
fn parquet_footer<T: ChunkReader + 'static>(
    input: T,
) -> std::result::Result<(u32, SchemaRef), parquet::errors::ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(input)?;
    let schema = builder
        .schema()
        .as_ref()
        .clone()
        .with_metadata(std::collections::HashMap::new());
    Ok((builder.metadata().num_row_groups() as u32, Arc::new(schema)))
}

/// Infers a CSV schema from the first 1000 records of the first file.
pub(crate) fn infer_csv_schema(
    files: &[InputFile],
    options: &CsvOptions,
    storage: &StorageOptions,
) -> Result<SchemaRef> {
    let first = files.first().ok_or_else(|| InputError::NoInput {
        message: "no CSV files".into(),
    })?;
    let path = PathBuf::from(&first.path);
    let file: Box<dyn Read> = match remote_object(&first.path, storage)? {
        Some(object) => Box::new(object.reader(0)),
        None => Box::new(File::open(&path).map_err(|e| InputError::io(&path, e))?),
    };
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
