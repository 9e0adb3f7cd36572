//! [`Location`]: a parsed input or output location — a local path or an object store URL.

use std::fmt;
use std::path::{Path, PathBuf};

use object_store::ObjectStoreScheme;
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::{Result, StorageError};

/// Which kind of store a location lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The local filesystem (a plain path or `file://`).
    Local,
    /// Amazon S3 or any S3-compatible server (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage or Data Lake (`az://`, `abfs://`, `abfss://`, `adl://`).
    Azure,
    /// Any HTTP server (`http://`, `https://`); read only.
    Http,
}

/// A location in a store: the store it lives in and the path of an object (or a prefix of
/// objects, for a directory) inside it.
///
/// Plain paths are made absolute against the current directory when parsed, so that a
/// location means the same file on every process of one host.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Location {
    url: Url,
    scheme: Scheme,
    path: ObjectPath,
}

impl Location {
    /// Parses a local path (absolute or relative), a `file://` URL or an object store URL.
    ///
    /// ```
    /// use quiver_storage::{Location, Scheme};
    /// let l = Location::parse("s3://bucket/logs/day-1.txt").unwrap();
    /// assert_eq!(l.scheme(), Scheme::S3);
    /// assert_eq!(l.object_path().as_ref(), "logs/day-1.txt");
    /// assert_eq!(l.to_string(), "s3://bucket/logs/day-1.txt");
    /// ```
    pub fn parse(text: &str) -> Result<Location> {
        let bad = |reason: String| StorageError::BadLocation {
            location: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("an empty path".into()));
        }
        let url = if looks_like_url(text) {
            Url::parse(text).map_err(|e| bad(format!("not a valid URL: {e}")))?
        } else {
            let absolute = std::path::absolute(text)
                .map_err(|e| bad(format!("cannot be made absolute: {e}")))?;
            Url::from_file_path(&absolute)
                .map_err(|()| bad("cannot be written as a file URL".into()))?
        };
        if url.password().is_some() {
            // No store reads credentials from the URL, and a URL goes into plans, statuses
            // and logs: refuse it rather than carry the secret around (or repeat it here).
            let mut shown = url.clone();
            let _ = shown.set_password(Some("***"));
            return Err(StorageError::BadLocation {
                location: shown.to_string(),
                reason:
                "holds a password; give credentials as storage options (StorageOptions, or the AWS_* / GOOGLE_* / AZURE_* variables), never in the URL".into(),
            });
        }
        let (scheme, path) = ObjectStoreScheme::parse(&url)
            .map_err(|e| bad(format!("not a supported store URL: {e}")))?;
        let scheme = match scheme {
            ObjectStoreScheme::Local => Scheme::Local,
            ObjectStoreScheme::AmazonS3 => Scheme::S3,
            ObjectStoreScheme::GoogleCloudStorage => Scheme::Gcs,
            ObjectStoreScheme::MicrosoftAzure => Scheme::Azure,
            ObjectStoreScheme::Http => Scheme::Http,
            other => return Err(bad(format!("the {other:?} store is not supported"))),
        };
        if scheme != Scheme::Local && scheme != Scheme::Http && url.host_str().is_none() {
            return Err(bad("names no bucket or container".into()));
        }
        Ok(Location { url, scheme, path })
    }

    /// The kind of store.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether this is a local file or directory.
    pub fn is_local(&self) -> bool {
        self.scheme == Scheme::Local
    }

    /// The local path, for a local location.
    pub fn local_path(&self) -> Option<PathBuf> {
        if self.is_local() {
            self.url.to_file_path().ok()
        } else {
            None
        }
    }

    /// The full URL (`file:///...` for local paths).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The object's path inside its store (for local files, relative to `/`).
    pub fn object_path(&self) -> &ObjectPath {
        &self.path
    }

    /// What identifies the store: the scheme and authority (`s3://bucket`, `file://`).
    pub fn store_key(&self) -> String {
        match self.url.host_str() {
            Some(host) => match self.url.port() {
                Some(port) => format!("{}://{host}:{port}", self.url.scheme()),
                None => format!("{}://{host}", self.url.scheme()),
            },
            None => format!("{}://", self.url.scheme()),
        }
    }

    /// The location of `name` inside this one (a directory or prefix). `name` may hold `/`
    /// but no empty, `.` or `..` parts.
    pub fn child(&self, name: &str) -> Result<Location> {
        let bad = |reason: &str| StorageError::BadLocation {
            location: format!("{self}/{name}"),
            reason: reason.to_string(),
        };
        let mut path = self.path.clone();
        let mut url = self.url.clone();
        for part in name.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(bad("holds an empty, `.` or `..` part"));
            }
            path = path.clone().join(part);
        }
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| bad("cannot hold children"))?;
            segments.pop_if_empty();
            segments.extend(name.split('/'));
        }
        if url.path().is_empty() {
            url.set_path("/");
        }
        Ok(Location {
            url,
            scheme: self.scheme,
            path,
        })
    }

    /// The location of an object found in this location's store at `path` (as listed).
    pub fn with_object_path(&self, path: ObjectPath) -> Location {
        let mut url = self.url.clone();
        // The URL's path is a root (nothing for `s3://bucket/...`, the container for Azure's
        // `https://account.blob.core.windows.net/container/...`, nothing for local files and
        // HTTP servers) followed by the object path; keep the root, replace the rest. Segments
        // are counted, not bytes: the URL's are percent-encoded, the object path's are not.
        let root: Vec<String> = match self.scheme {
            Scheme::Local | Scheme::Http => vec![],
            _ => {
                let segments: Vec<&str> = self
                    .url
                    .path_segments()
                    .map(|s| s.filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default();
                let own = self.path.parts().count();
                segments[..segments.len().saturating_sub(own)]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }
        };
        url.set_path("/");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear();
            for r in &root {
                // Already encoded: decode so that `extend` does not encode it twice.
                segments.push(&percent_encoding::percent_decode_str(r).decode_utf8_lossy());
            }
            segments.extend(path.parts().map(|p| p.as_ref().to_string()));
        }
        Location {
            url,
            scheme: self.scheme,
            path,
        }
    }
}

/// A URL has a scheme of two or more letters (so `C:\` is not one) followed by `://`.
fn looks_like_url(text: &str) -> bool {
    match text.split_once("://") {
        Some((scheme, _)) => {
            scheme.len() >= 2
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        }
        None => false,
    }
}

impl fmt::Display for Location {
    /// Local locations print as plain paths, the others as their URL (which holds no
    /// password: `parse` refuses those).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.local_path() {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "{}", self.url),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl TryFrom<&Path> for Location {
    type Error = StorageError;
    fn try_from(path: &Path) -> Result<Location> {
        Location::parse(&path.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_absolute_file_locations() {
        let l = Location::parse("/tmp/quiver/out").unwrap();
        assert_eq!(l.scheme(), Scheme::Local);
        assert_eq!(l.object_path().as_ref(), "tmp/quiver/out");
        assert_eq!(l.to_string(), "/tmp/quiver/out");
        assert_eq!(l.local_path().unwrap(), PathBuf::from("/tmp/quiver/out"));
        let relative = Location::parse("data/in.txt").unwrap();
        assert!(relative.local_path().unwrap().is_absolute());
        let file = Location::parse("file:///tmp/x.txt").unwrap();
        assert_eq!(file.local_path().unwrap(), PathBuf::from("/tmp/x.txt"));
    }

    #[test]
    fn object_store_urls_name_their_store_and_key() {
        let s3 = Location::parse("s3://bucket/a/b.parquet").unwrap();
        assert_eq!(s3.store_key(), "s3://bucket");
        assert_eq!(s3.object_path().as_ref(), "a/b.parquet");
        let gs = Location::parse("gs://bkt/x").unwrap();
        assert_eq!(gs.scheme(), Scheme::Gcs);
        let az = Location::parse("az://container/x").unwrap();
        assert_eq!(az.scheme(), Scheme::Azure);
        let http = Location::parse("http://127.0.0.1:8080/files/a.txt").unwrap();
        assert_eq!(http.scheme(), Scheme::Http);
        assert_eq!(http.store_key(), "http://127.0.0.1:8080");
        assert_eq!(http.object_path().as_ref(), "files/a.txt");
    }

    #[test]
    fn children_and_listed_objects_keep_the_store() {
        let dir = Location::parse("s3://bucket/out").unwrap();
        let part = dir.child("_temporary/job/part-00001.parquet").unwrap();
        assert_eq!(
            part.to_string(),
            "s3://bucket/out/_temporary/job/part-00001.parquet"
        );
        assert_eq!(
            part.object_path().as_ref(),
            "out/_temporary/job/part-00001.parquet"
        );
        assert!(dir.child("../escape").is_err());
        assert!(dir.child("a//b").is_err());
        let slash = Location::parse("s3://bucket/out/").unwrap();
        assert_eq!(
            slash
                .with_object_path(ObjectPath::from("out/x.txt"))
                .to_string(),
            "s3://bucket/out/x.txt"
        );
        let listed = dir.with_object_path(ObjectPath::from("out/x.txt"));
        assert_eq!(listed.to_string(), "s3://bucket/out/x.txt");
        let local = Location::parse("/tmp/d").unwrap();
        assert_eq!(
            local
                .with_object_path(ObjectPath::from("tmp/d/e.txt"))
                .to_string(),
            "/tmp/d/e.txt"
        );
        let root = Location::parse("s3://bucket").unwrap();
        assert_eq!(root.child("k").unwrap().to_string(), "s3://bucket/k");
    }

    #[test]
    fn bad_locations_are_refused_with_the_reason() {
        assert!(Location::parse("").is_err());
        let e = Location::parse("ftp://host/x").unwrap_err().to_string();
        assert!(e.contains("ftp://host/x"), "{e}");
        assert!(Location::parse("s3:///nobucket").is_err());
    }

    #[test]
    fn listed_objects_keep_the_root_and_encode_their_names() {
        let dir = Location::parse("s3://bucket/dir%20a/").unwrap();
        assert_eq!(dir.object_path().as_ref(), "dir a");
        let found = dir.with_object_path(ObjectPath::from("dir a/part 1.parquet"));
        assert_eq!(found.to_string(), "s3://bucket/dir%20a/part%201.parquet");
        assert_eq!(Location::parse(&found.to_string()).unwrap(), found);
        // Azure's https form keeps its container, which is not part of object paths.
        let azure = Location::parse("https://acct.blob.core.windows.net/container/logs/").unwrap();
        assert_eq!(azure.scheme(), Scheme::Azure);
        let found = azure.with_object_path(ObjectPath::from("logs/x.txt"));
        assert_eq!(
            found.to_string(),
            "https://acct.blob.core.windows.net/container/logs/x.txt"
        );
        let local = Location::parse("/tmp/a b/").unwrap();
        let found = local.with_object_path(ObjectPath::from("tmp/a b/c.txt"));
        assert_eq!(found.local_path().unwrap(), PathBuf::from("/tmp/a b/c.txt"));
    }

    #[test]
    fn a_url_with_a_password_is_refused_without_repeating_it() {
        let e = Location::parse("s3://user:s3cret@bucket/key")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds a password") && e.contains("storage options"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        // Azure's container-in-user-name form has no password and stays valid.
        assert!(Location::parse("abfss://container@acct.dfs.core.windows.net/x").is_ok());
    }
}
