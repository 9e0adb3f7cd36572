//! [`InputStorage`]: where a task's input splits are read from. A split's path is a plain
//! local path (read with `std::fs`, the fast path) or an object store URL, opened through the
//! worker's [`ObjectStores`] with the job's [`StorageOptions`].

use std::sync::Arc;

use quiver_storage::{Location, ObjectStores, StorageOptions, StoredObject};

use crate::error::Result;

/// The worker's object store clients (one set per worker process) and the job's options.
#[derive(Clone, Debug, Default)]
pub struct InputStorage {
    pub stores: Arc<ObjectStores>,
    pub options: StorageOptions,
}

impl InputStorage {
    /// `None` for a local path (plain or `file://` made plain by the driver); the object,
    /// looked up in its store, for a URL.
    pub fn open_remote(&self, path: &str) -> Result<Option<StoredObject>> {
        if !path.contains("://") {
            return Ok(None);
        }
        let location = Location::parse(path)?;
        if location.is_local() {
            return Ok(None);
        }
        Ok(Some(StoredObject::open(
            &self.stores,
            &location,
            &self.options,
        )?))
    }

    /// The local path of `path` (which may be a `file://` URL).
    pub fn local_path(path: &str) -> std::path::PathBuf {
        if path.starts_with("file://")
            && let Some(p) = Location::parse(path).ok().and_then(|l| l.local_path())
        {
            return p;
        }
        std::path::PathBuf::from(path)
    }
}
