//! [`WorkDirLock`]: a worker's claim on its `--work-dir`. The worker holds an exclusive lock on
//! `<work-dir>/quiver-worker.lock` for as long as it runs, so two live workers never share one
//! directory (the second refuses to start), and, once it holds the lock, removes whatever a
//! previous worker of that directory left behind when it died (its `worker-*` directories
//! with their shuffle, result and spill files). Only `worker-*` entries are removed: a work
//! directory pointed at by mistake at a shared place loses nothing else.
//!
//! The lock is the kernel's (`flock`): it goes away with the process, however it ends, so a
//! worker killed with `kill -9` never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Result, WorkerError};

/// The lock file's name inside the work directory.
pub const LOCK_FILE: &str = "quiver-worker.lock";

/// Prefix of the directory each worker works in (`worker-<short id>`).
pub const WORKER_DIR_PREFIX: &str = "worker-";

/// An exclusive claim on a work directory, released when dropped (or the process ends).
#[derive(Debug)]
pub struct WorkDirLock {
    _file: File,
    /// What a previous worker left and this one removed (for the log).
    pub reclaimed: Vec<PathBuf>,
}

impl WorkDirLock {
    /// Creates `dir` if needed, locks it, and removes a previous worker's leftovers. Blocking
    /// file I/O: call it from a blocking thread.
    pub fn claim(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| WorkerError::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| WorkerError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(WorkerError::WorkDirInUse {
                    dir: dir.to_path_buf(),
                    lock: path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(WorkerError::io(&path, e)),
        }
        let mut reclaimed = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| WorkerError::io(dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_worker_dir = name
                .to_str()
                .is_some_and(|n| n.starts_with(WORKER_DIR_PREFIX))
                && entry.file_type().is_ok_and(|t| t.is_dir());
            if is_worker_dir {
                let stale = entry.path();
                std::fs::remove_dir_all(&stale).map_err(|e| WorkerError::io(&stale, e))?;
                reclaimed.push(stale);
            }
        }
        Ok(WorkDirLock {
            _file: file,
            reclaimed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_and_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("worker-dead0001/0a1b/stage-0");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("part-0-attempt-0.data"), b"x").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"mine").unwrap();
        let first = WorkDirLock::claim(dir.path()).unwrap();
        assert_eq!(first.reclaimed.len(), 1);
        assert!(!dir.path().join("worker-dead0001").exists());
        assert!(dir.path().join("keep.txt").exists());
        let err = WorkDirLock::claim(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another worker"), "{err}");
        drop(first);
        WorkDirLock::claim(dir.path()).unwrap();
    }
}
