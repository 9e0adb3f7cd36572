//! [`AllowedRoots`]: which paths on this host a request from the network may name as input or
//! output (`--allowed-root DIR`, repeatable, on the coordinator and on every worker).
//!
//! A path is resolved before it is compared: the longest part of it that exists is
//! canonicalised (symlinks followed), and the rest, which does not exist yet (an output
//! directory), may hold no `..`. It is allowed when it lies under one of the roots and under
//! none of the denied directories (a worker denies its own work directory, where other jobs'
//! shuffle data lives). With no roots configured every path is allowed except the denied ones.
//!
//! Object store URLs (`s3://bucket/prefix/...`) are allowed when no root is configured, and
//! otherwise only under a root given as a URL prefix (`--allowed-root s3://bucket/prefix/`):
//! both are parsed (dot segments resolved) and compared by store and whole path segments, so
//! `s3://bucket/prefix2/` is not under `s3://bucket/prefix/`.
//!
//! The check happens when a job is submitted and again on the worker before a task opens any
//! file. A path swapped for a symlink between that check and the open is outside what this
//! guards against; give workers a user that can read only what they should.

use std::path::{Component, Path, PathBuf};

use quiver_storage::Location;

/// Where requests may read and write.
#[derive(Clone, Debug, Default)]
pub struct AllowedRoots {
    /// Canonical roots; empty means anywhere.
    roots: Vec<PathBuf>,
    /// Object store prefixes (`s3://bucket/prefix/`).
    url_roots: Vec<Location>,
    /// Canonical directories nothing may be read from or written to.
    denied: Vec<PathBuf>,
}

/// A path a request may not use, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {path} is refused: {reason}")]
pub struct PathRefused {
    pub what: String,
    pub path: String,
    pub reason: String,
}

impl AllowedRoots {
    /// No restriction (only denied directories, if any are added).
    pub fn anywhere() -> Self {
        AllowedRoots::default()
    }

    /// Only under `roots`, each of which must exist.
    pub fn new(roots: &[PathBuf]) -> std::io::Result<Self> {
        let (urls, paths): (Vec<&PathBuf>, Vec<&PathBuf>) = roots
            .iter()
            .partition(|r| is_store_url(&r.to_string_lossy()));
        let url_roots = urls
            .into_iter()
            .map(|r| {
                Location::parse(&r.to_string_lossy()).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("--allowed-root {e}"),
                    )
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let roots = paths
            .into_iter()
            .map(|r| {
                r.canonicalize().map_err(|e| {
                    std::io::Error::new(e.kind(), format!("--allowed-root {}: {e}", r.display()))
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(AllowedRoots {
            roots,
            url_roots,
            denied: vec![],
        })
    }

    /// Also refuses everything under `path` (which need not exist yet; a relative path is
    /// taken from the current directory).
    pub fn deny(mut self, path: &Path) -> Self {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // A path that cannot be resolved is denied as written: never silently allowed.
        self.denied.push(resolve(&absolute).unwrap_or(absolute));
        self
    }

    /// Also refuses the host's kernel interfaces (`/proc` holds every process's environment,
    /// tokens included; `/dev` has endless files) and `private` files of this process (its
    /// token file, TLS key and certificate).
    pub fn deny_private(self, private: &[PathBuf]) -> Self {
        ["/proc", "/sys", "/dev"]
            .iter()
            .map(Path::new)
            .chain(private.iter().map(PathBuf::as_path))
            .fold(self, |roots, p| roots.deny(p))
    }

    /// Whether any root restricts paths.
    pub fn is_restricted(&self) -> bool {
        !self.roots.is_empty() || !self.url_roots.is_empty()
    }

    /// The roots, for messages.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Checks `path` (`what` names it in the error: "input", "output directory"); returns it
    /// resolved.
    pub fn check(&self, path: &str, what: &str) -> Result<PathBuf, PathRefused> {
        let refused = |reason: String| PathRefused {
            what: what.to_string(),
            path: path.chars().take(1024).collect(),
            reason,
        };
        if is_store_url(path) {
            return self.check_url(path, what).map(PathBuf::from);
        }
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(refused("paths sent to the cluster must be absolute".into()));
        }
        let resolved = resolve(p).map_err(refused)?;
        if let Some(d) = self.denied.iter().find(|d| resolved.starts_with(d)) {
            return Err(refused(format!(
                "it lies in {}, which no job may read or write (a work directory, a secret or a kernel interface)",
                d.display()
            )));
        }
        if self.is_restricted() && !self.roots.iter().any(|r| resolved.starts_with(r)) {
            let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            return Err(refused(format!(
                "it resolves to {}, outside the allowed roots ({}; set with --allowed-root)",
                resolved.display(),
                roots.join(", ")
            )));
        }
        Ok(resolved)
    }
}

impl AllowedRoots {
    /// Checks an object store URL (see the module's comment); returns it as parsed.
    fn check_url(&self, url: &str, what: &str) -> Result<String, PathRefused> {
        let refused = |reason: String| PathRefused {
            what: what.to_string(),
            path: url.chars().take(1024).collect(),
            reason,
        };
        let location = Location::parse(url).map_err(|e| refused(e.to_string()))?;
        if !self.is_restricted() {
            return Ok(location.to_string());
        }
        let under = |root: &Location| {
            root.store_key() == location.store_key()
                && root.object_path().parts().count() <= location.object_path().parts().count()
                && root
                    .object_path()
                    .parts()
                    .zip(location.object_path().parts())
                    .all(|(r, l)| r == l)
        };
        if self.url_roots.iter().any(under) {
            return Ok(location.to_string());
        }
        let roots: Vec<String> = self
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .chain(self.url_roots.iter().map(ToString::to_string))
            .collect();
        Err(refused(format!(
            "it is {location}, outside the allowed roots ({}; set with --allowed-root, a URL prefix for object stores)",
            roots.join(", ")
        )))
    }
}

/// Whether `text` is an object store URL rather than a local path (`file://` URLs are local
/// paths and checked as such).
fn is_store_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() >= 2
            && scheme != "file"
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    })
}

/// `path` with its existing part canonicalised and the rest appended; `..` or `.` in the part
/// that does not exist is refused (it cannot be resolved safely).
fn resolve(path: &Path) -> Result<PathBuf, String> {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(canonical) => {
                let mut out = canonical;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(_) => match existing.components().next_back() {
                Some(Component::Normal(name)) => {
                    rest.push(name.to_os_string());
                    existing.pop();
                }
                Some(Component::ParentDir | Component::CurDir) => {
                    return Err("it has `..` or `.` below a directory that does not exist".into());
                }
                _ => return Err("no part of it exists".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_or_outside_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::write(root.join("in/a.txt"), "x").unwrap();
        let outside = dir.path().join("secret");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("s.txt"), "x").unwrap();
        // A symlink inside the root that points out of it.
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = AllowedRoots::new(std::slice::from_ref(&root)).unwrap();
        let s = |p: &Path| p.to_string_lossy().into_owned();

        assert!(roots.check(&s(&root.join("in/a.txt")), "input").is_ok());
        // An output directory that does not exist yet, inside the root.
        assert!(roots.check(&s(&root.join("out/new/dir")), "output").is_ok());
        for bad in [
            s(&outside.join("s.txt")),
            s(&root.join("link/s.txt")),
            s(&root.join("../secret/s.txt")),
            s(&root.join("missing/../../secret")),
            "/etc/shadow".to_string(),
            "relative/path".to_string(),
        ] {
            let err = roots.check(&bad, "input").unwrap_err();
            assert!(err.to_string().contains("refused"), "{bad}: {err}");
        }
        // Denied directories win over the roots, and apply with no roots at all.
        let work = root.join("work");
        let denied = AllowedRoots::anywhere().deny(&work);
        assert!(
            denied
                .check(&s(&work.join("job/stage-0")), "input")
                .is_err()
        );
        assert!(denied.check(&s(&outside.join("s.txt")), "input").is_ok());
    }

    #[test]
    fn urls_are_allowed_only_under_url_roots() {
        let anywhere = AllowedRoots::anywhere();
        assert!(anywhere.check("s3://bucket/any/thing.txt", "input").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let roots =
            AllowedRoots::new(&[dir.path().to_path_buf(), PathBuf::from("s3://bucket/data/")])
                .unwrap();
        assert!(roots.check("s3://bucket/data/a/b.txt", "input").is_ok());
        assert!(roots.check("s3://bucket/data", "input").is_ok());
        for bad in [
            "s3://bucket/data2/x.txt",
            "s3://bucket/data/../secret/x.txt",
            "s3://bucket/data/%2e%2e/secret/x.txt",
            "s3://other/data/x.txt",
            "gs://bucket/data/x.txt",
            "ftp://bucket/data/x.txt",
        ] {
            let err = roots.check(bad, "input").unwrap_err();
            assert!(err.to_string().contains("refused"), "{bad}: {err}");
        }
        // Only local roots: every URL is refused.
        let local = AllowedRoots::new(&[dir.path().to_path_buf()]).unwrap();
        assert!(local.check("s3://bucket/data/a.txt", "input").is_err());
    }
}
