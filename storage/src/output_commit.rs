//! [`OutputCommit`]: the job-level output commit — the one place that decides where a job's
//! files are written and when they become visible. Same protocol on local disk and on
//! object stores:
//!
//! 1. **At submit**, [`OutputCommit::check_destination`]: the output location must be
//!    writable (a probe object is written and deleted under `_temporary/<job>/`), must not be
//!    a file, and — unless the job says [`WriteMode::Overwrite`] or [`WriteMode::Append`] —
//!    must hold no data yet. A bad output fails the submission, not the finished job.
//! 2. **Each task attempt** writes its file at [`OutputCommit::attempt_file`], under
//!    `_temporary/<job>/`, which readers skip (names starting with `_`). Finishing a task
//!    commits nothing: the coordinator records which attempt of each partition finished
//!    first, and ignores the files of every other attempt (speculative backups, attempts whose
//!    worker was lost after writing).
//! 3. **When every task is done**, the coordinator records in its job log which attempt of
//!    each partition it keeps, then runs [`OutputCommit::commit`]: it moves exactly those files
//!    to their final names, removes the files of an earlier output (overwrite mode) — only
//!    now, with the new output complete —, writes `_SUCCESS` and deletes the temporaries.
//!    Every step can be repeated, so a coordinator that restarts during the commit runs it
//!    again to the same result: each partition appears exactly once.
//! 4. **A failed or cancelled job** is aborted ([`OutputCommit::abort`]): its temporaries are
//!    deleted and nothing of it becomes visible.
//!
//! On object stores a move is a copy and a delete (S3 has no rename); on local disk it is a
//! rename. Readers that look during step 3 may see part of the new files (and, when
//! overwriting, some old ones): `_SUCCESS` marks the end of the commit.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{Location, ObjectStores, Result, StorageError, StorageOptions};

/// What a job's output does with data already at its location (the plan's `Sink::WriteParquet`
/// carries it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Refuse the job if the location holds data (the default).
    #[default]
    ErrorIfExists,
    /// Replace an earlier output there (its `part-*` files; a directory holding anything else
    /// is refused); the old files are removed only once the new output is complete.
    Overwrite,
    /// Add files beside the data there (named with the job id, so nothing is replaced).
    Append,
}

/// The file a partition keeps: the attempt that finished it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskFile {
    /// The task's partition (its file's number).
    pub partition: u32,
    /// The attempt whose file is kept.
    pub attempt: u32,
}

/// The name of the marker written when a commit completes.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Where attempts write before the commit.
pub const TEMPORARY_DIR: &str = "_temporary";

/// Files a commit moves at once.
const CONCURRENT_MOVES: usize = 16;

/// One job's output at one location; see the module documentation.
pub struct OutputCommit {
    directory: Location,
    job: String,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for OutputCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputCommit({} for job {})", self.directory, self.job)
    }
}

impl OutputCommit {
    /// The output of job `job` at `directory` (a local path or a store URL).
    pub fn new(
        stores: &ObjectStores,
        directory: &str,
        job: &str,
        options: &StorageOptions,
    ) -> Result<Self> {
        let directory = Location::parse(directory)?;
        if directory.scheme() == crate::Scheme::Http {
            return Err(StorageError::BadLocation {
                location: directory.to_string(),
                reason: "HTTP locations are read only".into(),
            });
        }
        let safe = !job.is_empty()
            && job.len() <= 128
            && job
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !safe {
            return Err(StorageError::BadLocation {
                location: directory.to_string(),
                reason: format!("job id {job:?} cannot name a directory"),
            });
        }
        let store = stores.store(&directory, options)?;
        Ok(OutputCommit {
            directory,
            job: job.to_string(),
            store,
        })
    }

    /// The output location.
    pub fn directory(&self) -> &Location {
        &self.directory
    }

    /// The store the output lives in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `<directory>/_temporary/<job>`: everything of this job before its commit.
    pub fn temporary_dir(&self) -> Result<Location> {
        self.child(&format!("{TEMPORARY_DIR}/{}", self.job))
    }

    /// Where attempt `attempt` of partition `partition` writes its file.
    pub fn attempt_file(&self, partition: u32, attempt: u32) -> Result<Location> {
        self.child(&format!(
            "{TEMPORARY_DIR}/{}/part-{partition:05}-attempt-{attempt}.parquet",
            self.job
        ))
    }

    /// The visible name of partition `partition`'s file: `part-NNNNN.parquet`, or with the job
    /// id when appending (so that files of earlier jobs are never replaced).
    pub fn final_name(&self, partition: u32, mode: WriteMode) -> String {
        match mode {
            WriteMode::Append => format!("part-{partition:05}-{}.parquet", self.job),
            WriteMode::ErrorIfExists | WriteMode::Overwrite => {
                format!("part-{partition:05}.parquet")
            }
        }
    }

    /// `name` (built here, from a job id checked in `new`) under the output location.
    fn child(&self, name: &str) -> Result<Location> {
        self.directory.child(name)
    }

    fn failed(&self, what: &str) -> impl Fn(object_store::Error) -> StorageError + '_ {
        let location = format!("{} ({what})", self.directory);
        move |e| StorageError::from_store(&location, e)
    }

    /// Checks, at submit, that the output can be written and, in
    /// [`WriteMode::ErrorIfExists`], that it holds no data. See the module documentation.
    pub async fn check_destination(&self, mode: WriteMode) -> Result<()> {
        let refused = |reason: String| StorageError::BadLocation {
            location: self.directory.to_string(),
            reason,
        };
        if self.store.head(self.directory.object_path()).await.is_ok() {
            return Err(refused(
                "is a file; the output must be a directory (or a prefix in a bucket)".into(),
            ));
        }
        if mode == WriteMode::Overwrite {
            // Overwrite replaces an earlier output, never other data: deleting a directory
            // full of anything (a home directory, the coordinator's state) is refused.
            let foreign: Vec<String> = self
                .visible_entries()
                .await?
                .into_iter()
                .filter(|n| !is_output_file(n))
                .collect();
            if let Some(first) = foreign.first() {
                return Err(refused(format!(
                    "holds data that is not a job's output ({first}{}); Overwrite replaces only part-* files: choose another directory",
                    if foreign.len() > 1 {
                        format!(" and {} more", foreign.len() - 1)
                    } else {
                        String::new()
                    }
                )));
            }
        }
        if mode == WriteMode::ErrorIfExists {
            let visible = self.visible_entries().await?;
            if let Some(first) = visible.first() {
                return Err(refused(format!(
                    "already holds data ({first}{}); write with mode Overwrite to replace it or Append to add to it",
                    if visible.len() > 1 {
                        format!(" and {} more", visible.len() - 1)
                    } else {
                        String::new()
                    }
                )));
            }
        }
        let probe = self.child(&format!("{TEMPORARY_DIR}/{}/_probe", self.job))?;
        self.store
            .put(probe.object_path(), "".into())
            .await
            .map_err(|e| refused(format!("cannot be written: {e}")))?;
        // The commit deletes (moves are copies and deletes on object stores): check it may.
        self.store
            .delete(probe.object_path())
            .await
            .map_err(|e| refused(format!("cannot delete what was written there: {e}")))?;
        Ok(())
    }

    /// The names of the entries directly in the output location that readers would see
    /// (not starting with `_` or `.`).
    async fn visible_entries(&self) -> Result<Vec<String>> {
        let listing = self
            .store
            .list_with_delimiter(Some(self.directory.object_path()))
            .await;
        let listing = match listing {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(vec![]),
            Err(e) => return Err(self.failed("listing")(e)),
        };
        let mut names: Vec<String> = listing
            .objects
            .iter()
            .map(|o| &o.location)
            .chain(listing.common_prefixes.iter())
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|n| is_visible(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Makes exactly `files` visible (one per partition) and completes the output; see the
    /// module documentation. `resumed` says this commit was started before (by a coordinator
    /// that then restarted): files already moved are then taken as moved.
    pub async fn commit(&self, files: &[TaskFile], mode: WriteMode, resumed: bool) -> Result<()> {
        if mode == WriteMode::ErrorIfExists && !resumed {
            let visible = self.visible_entries().await?;
            if let Some(first) = visible.first() {
                return Err(StorageError::BadLocation {
                    location: self.directory.to_string(),
                    reason: format!(
                        "received other data ({first}) while the job ran; nothing of this job was made visible"
                    ),
                });
            }
        }
        // Readers that wait for `_SUCCESS` must not take a half-replaced directory for a
        // complete one: an earlier output's marker goes first.
        let success = self.child(SUCCESS_MARKER)?;
        match self.store.delete(success.object_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed(SUCCESS_MARKER)(e)),
        }
        // Moves are independent; on an object store each is a copy and a delete (tens of
        // milliseconds), so several run at once.
        let mut moves = Vec::with_capacity(files.len());
        let mut kept = HashSet::new();
        for f in files {
            let from = self.attempt_file(f.partition, f.attempt)?;
            let name = self.final_name(f.partition, mode);
            let to = self.child(&name)?;
            kept.insert(to.object_path().clone());
            moves.push((*f, from, name, to));
        }
        futures::stream::iter(moves)
            .map(|(f, from, name, to)| async move {
                let Err(e) = self
                    .store
                    .rename(from.object_path(), to.object_path())
                    .await
                else {
                    return Ok(());
                };
                let moved_before = matches!(e, object_store::Error::NotFound { .. })
                    && resumed
                    && self.store.head(to.object_path()).await.is_ok();
                if moved_before {
                    return Ok(());
                }
                Err(StorageError::Store {
                    location: from.to_string(),
                    message: format!(
                        "cannot move partition {}'s file (attempt {}) to {name}: {e}",
                        f.partition, f.attempt
                    ),
                })
            })
            .buffer_unordered(CONCURRENT_MOVES)
            .try_collect::<()>()
            .await?;
        if mode == WriteMode::Overwrite {
            self.remove_old_files(&kept).await?;
        }
        self.store
            .put(success.object_path(), "".into())
            .await
            .map_err(self.failed(SUCCESS_MARKER))?;
        self.abort().await
    }

    /// Deletes every visible object under the output location that is not in `kept`.
    async fn remove_old_files(&self, kept: &HashSet<ObjectPath>) -> Result<()> {
        if let Some(local) = self.directory.local_path() {
            // On disk, whole directories go (deleting objects would leave them empty).
            for name in self.visible_entries().await? {
                let path = local.join(&name);
                if !is_output_file(&name) || kept.contains(self.child(&name)?.object_path()) {
                    continue;
                }
                let removed = match tokio::fs::symlink_metadata(&path).await {
                    Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&path).await,
                    Ok(_) => tokio::fs::remove_file(&path).await,
                    Err(e) => Err(e),
                };
                match removed {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StorageError::Store {
                            location: path.display().to_string(),
                            message: format!("cannot remove the old output: {e}"),
                        });
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        let prefix = self.directory.object_path().clone();
        let old: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix))
            .try_filter(|meta| {
                let relative: Vec<_> = meta
                    .location
                    .prefix_match(&prefix)
                    .map(|parts| parts.collect())
                    .unwrap_or_default();
                // Only earlier output files directly in the directory.
                let old_output = relative.len() == 1 && is_output_file(relative[0].as_ref());
                futures::future::ready(old_output && !kept.contains(&meta.location))
            })
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(self.failed("listing the old output"))?;
        self.delete_all(old).await
    }

    async fn delete_all(&self, paths: Vec<ObjectPath>) -> Result<()> {
        let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        self.store
            .delete_stream(stream)
            .try_for_each(|_| futures::future::ready(Ok(())))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(e),
            })
            .map_err(self.failed("deleting"))
    }

    /// Deletes everything this job wrote under `_temporary/<job>/` (and `_temporary` itself
    /// on local disk, when no other job writes there). Nothing of the job stays visible.
    pub async fn abort(&self) -> Result<()> {
        let temporary = self.temporary_dir()?;
        if let Some(local) = temporary.local_path() {
            return match tokio::fs::remove_dir_all(&local).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::Store {
                    location: local.display().to_string(),
                    message: format!("cannot remove the job's temporary files: {e}"),
                }),
                _ => {
                    if let Some(parent) = local.parent() {
                        let _ = tokio::fs::remove_dir(parent).await;
                    }
                    Ok(())
                }
            };
        }
        let prefix = temporary.object_path().clone();
        let paths: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(self.failed("listing temporaries"))?;
        self.delete_all(paths).await
    }
}

/// Whether a name is one of a job's output files (`part-*`, as Quiver, Spark and Hadoop name
/// them): what Overwrite may replace.
fn is_output_file(name: &str) -> bool {
    name.starts_with("part-")
}

/// Whether readers see an entry of an output directory (Hadoop's convention: names starting
/// with `_` or `.` are hidden).
fn is_visible(name: &str) -> bool {
    !name.starts_with('_') && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on;

    fn commit_at(dir: &std::path::Path, job: &str) -> OutputCommit {
        OutputCommit::new(
            &ObjectStores::new(),
            &dir.to_string_lossy(),
            job,
            &StorageOptions::new(),
        )
        .unwrap()
    }

    fn write_attempt(c: &OutputCommit, partition: u32, attempt: u32, text: &str) {
        let path = c
            .attempt_file(partition, attempt)
            .unwrap()
            .local_path()
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn only_the_chosen_attempts_become_visible() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let c = commit_at(&out, "job-1");
        block_on(async move {
            c.check_destination(WriteMode::ErrorIfExists).await.unwrap();
            write_attempt(&c, 0, 1, "p0 a1");
            write_attempt(&c, 0, 2, "p0 a2 (backup that lost)");
            write_attempt(&c, 1, 1, "p1 a1");
            let files = [
                TaskFile {
                    partition: 0,
                    attempt: 1,
                },
                TaskFile {
                    partition: 1,
                    attempt: 1,
                },
            ];
            c.commit(&files, WriteMode::ErrorIfExists, false)
                .await
                .unwrap();
            // Run again, as a restarted coordinator would: same result.
            c.commit(&files, WriteMode::ErrorIfExists, true)
                .await
                .unwrap();
        });
        assert_eq!(
            names(&out),
            ["_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
        );
        assert_eq!(
            std::fs::read_to_string(out.join("part-00000.parquet")).unwrap(),
            "p0 a1"
        );
    }

    #[test]
    fn existing_data_is_refused_unless_overwriting_or_appending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-00000.parquet"), "old").unwrap();
        let c = commit_at(dir.path(), "j2");
        let e = block_on(async move {
            let e = c.check_destination(WriteMode::ErrorIfExists).await;
            c.check_destination(WriteMode::Overwrite).await.unwrap();
            c.check_destination(WriteMode::Append).await.unwrap();
            e
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("already holds data (part-00000.parquet)"), "{e}");

        let file = dir.path().join("part-00000.parquet");
        let c = commit_at(&file, "j3");
        let e = block_on(async move { c.check_destination(WriteMode::Overwrite).await })
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a file"), "{e}");
    }

    #[test]
    fn overwrite_replaces_and_append_adds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-00000.parquet"), "old 0").unwrap();
        std::fs::write(dir.path().join("part-00007.parquet"), "old 7").unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("nested/x.parquet"), "old nested").unwrap();
        let one = [TaskFile {
            partition: 0,
            attempt: 3,
        }];
        let c = commit_at(dir.path(), "over");
        write_attempt(&c, 0, 3, "new 0");
        let refused = block_on({
            let c = commit_at(dir.path(), "over");
            async move { c.check_destination(WriteMode::Overwrite).await }
        })
        .unwrap_err()
        .to_string();
        assert!(refused.contains("not a job's output (nested)"), "{refused}");
        block_on(async move { c.commit(&one, WriteMode::Overwrite, false).await }).unwrap();
        // Earlier part files are replaced; anything else is never deleted.
        assert_eq!(
            names(dir.path()),
            ["_SUCCESS", "nested", "part-00000.parquet"]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-00000.parquet")).unwrap(),
            "new 0"
        );

        let c = commit_at(dir.path(), "app");
        write_attempt(&c, 0, 3, "appended 0");
        block_on(async move { c.commit(&one, WriteMode::Append, false).await }).unwrap();
        assert_eq!(
            names(dir.path()),
            [
                "_SUCCESS",
                "nested",
                "part-00000-app.parquet",
                "part-00000.parquet"
            ]
        );
    }

    #[test]
    fn an_aborted_job_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = commit_at(dir.path(), "failed");
        write_attempt(&c, 0, 1, "partial");
        block_on(async move { c.abort().await }).unwrap();
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn a_missing_attempt_file_fails_the_commit_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let c = commit_at(dir.path(), "lost");
        let files = [TaskFile {
            partition: 4,
            attempt: 2,
        }];
        let e = block_on(async move { c.commit(&files, WriteMode::ErrorIfExists, false).await })
            .unwrap_err()
            .to_string();
        assert!(e.contains("partition 4") && e.contains("attempt 2"), "{e}");
    }

    #[test]
    fn job_ids_that_are_not_plain_names_are_refused() {
        for bad in ["", "../x", "a/b", "a b"] {
            assert!(
                OutputCommit::new(&ObjectStores::new(), "/tmp/x", bad, &StorageOptions::new())
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(
            OutputCommit::new(
                &ObjectStores::new(),
                "http://h/x",
                "j",
                &StorageOptions::new()
            )
            .is_err()
        );
    }
}
