//! Quiver's storage layer: where job input is read from and job output is written to.
//!
//! Every source and sink names a [`Location`]: a plain local path, `file://`, `s3://` (any
//! S3-compatible endpoint), `gs://`, `az://`/`abfs://`, or `http(s)://` (read only). The
//! [`ObjectStores`] of a process turn a location into an `object_store` client, with credentials
//! and endpoints taken from the standard environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...) and
//! overridden per job by [`StorageOptions`], whose values never appear in `Debug` output.
//!
//! Task code runs on rayon threads and is synchronous; [`block_on`] runs a storage future on
//! this crate's own small tokio runtime, so no caller needs a runtime of its own.
//!
//! This crate owns URLs, credentials and the bytes on the store. It knows nothing of plans,
//! tasks, workers or the network protocol between Quiver's processes.

mod blocking;
mod error;
pub mod glob;
mod listing;
mod location;
mod object_reader;
mod object_stores;
mod object_writer;
mod output_commit;
#[cfg(feature = "test-server")]
mod s3_test_server;
mod storage_options;

pub use blocking::block_on;
pub use error::StorageError;
pub use listing::{ListedObject, list_objects};
pub use location::{Location, Scheme};
pub use object_reader::{
    FOOTER_PREFETCH_BYTES, ObjectChunkReader, ObjectReader, READ_CHUNK_BYTES, StoredObject,
};
pub use object_stores::ObjectStores;
pub use object_writer::ObjectWriter;
pub use output_commit::{OutputCommit, SUCCESS_MARKER, TEMPORARY_DIR, TaskFile, WriteMode};
#[cfg(feature = "test-server")]
pub use s3_test_server::S3TestServer;
pub use storage_options::StorageOptions;

/// The `object_store` crate, re-exported so that users of this crate name the same version.
pub use object_store;

/// A result whose error names the location it is about.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
