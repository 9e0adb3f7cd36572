//! [`list_objects`]: the objects an input URL names — one object, every object under a prefix
//! (a "directory"), or those matching a glob — in name order, with their sizes. Names starting
//! with `_` or `.` (such as `_SUCCESS`) below the named prefix are skipped, as for local
//! directories.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::glob::{matches, split_glob};
use crate::{Location, ObjectStores, Result, StorageError, StorageOptions, block_on};

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    /// Where it is.
    pub location: Location,
    /// Its size in bytes.
    pub size: u64,
}

fn hidden(part: &str) -> bool {
    part.starts_with('_') || part.starts_with('.')
}

/// The objects `text` names (a URL or local path, possibly with a glob in its last
/// segments). A name that matches nothing is [`StorageError::NotFound`]; a prefix holding only
/// skipped names is a [`StorageError::Store`] saying so.
pub fn list_objects(
    stores: &ObjectStores,
    text: &str,
    options: &StorageOptions,
) -> Result<Vec<ListedObject>> {
    let (base_text, pattern) = match split_glob(text) {
        Some((base, pattern)) => (base, Some(pattern)),
        None => (text.to_string(), None),
    };
    let base = Location::parse(&base_text)?;
    let store = stores.store(&base, options)?;
    let prefix = base.object_path().clone();
    let name = text.to_string();

    // The name of one object (not for a glob, nor for a URL ending in `/`).
    if pattern.is_none() && !text.ends_with('/') && !prefix.as_ref().is_empty() {
        let (store, path, n) = (store.clone(), prefix.clone(), name.clone());
        let head = block_on(async move { store.head(&path).await });
        match head {
            Ok(meta) => {
                return Ok(vec![ListedObject {
                    location: base.with_object_path(meta.location),
                    size: meta.size,
                }]);
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(StorageError::from_store(n, e)),
        }
    }

    let all = list_under(store, prefix.clone(), &name)?;
    let depth = prefix.parts().count();
    let mut found = Vec::new();
    for (path, size) in &all {
        let parts: Vec<String> = path
            .parts()
            .skip(depth)
            .map(|p| p.as_ref().to_string())
            .collect();
        let keep = match &pattern {
            None => !parts.iter().any(|p| hidden(p)),
            Some(pattern) => {
                parts.len() >= pattern.len()
                    && pattern
                        .iter()
                        .zip(&parts)
                        .all(|(p, n)| matches(p, n) && (!hidden(n) || p.starts_with(&n[..1])))
                    && !parts[pattern.len()..].iter().any(|p| hidden(p))
            }
        };
        if keep {
            found.push(ListedObject {
                location: base.with_object_path(path.clone()),
                size: *size,
            });
        }
    }
    if found.is_empty() {
        return Err(if all.is_empty() || pattern.is_some() {
            StorageError::NotFound { location: name }
        } else {
            StorageError::Store {
                location: name,
                message: "contains no files (only names starting with `_` or `.`)".into(),
            }
        });
    }
    found.sort_by(|a, b| a.location.object_path().cmp(b.location.object_path()));
    Ok(found)
}

fn list_under(
    store: std::sync::Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    name: &str,
) -> Result<Vec<(ObjectPath, u64)>> {
    let name = name.to_string();
    block_on(async move {
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        store
            .list(prefix.as_ref())
            .map_ok(|m| (m.location, m.size))
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| StorageError::from_store(name, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_local_directories_and_globs_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "b.txt",
            "a.txt",
            "_SUCCESS",
            "sub/c.txt",
            "sub/.hidden",
            "x.csv",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let stores = ObjectStores::new();
        let root = dir.path().to_string_lossy().to_string();
        let names = |text: &str| -> Vec<String> {
            list_objects(&stores, text, &StorageOptions::new())
                .unwrap()
                .into_iter()
                .map(|o| o.location.to_string()[root.len() + 1..].to_string())
                .collect()
        };
        assert_eq!(names(&root), ["a.txt", "b.txt", "sub/c.txt", "x.csv"]);
        assert_eq!(names(&format!("{root}/*.txt")), ["a.txt", "b.txt"]);
        assert_eq!(names(&format!("{root}/s*")), ["sub/c.txt"]);
        assert_eq!(names(&format!("{root}/a.txt")), ["a.txt"]);
        let e = list_objects(
            &stores,
            &format!("{root}/*.parquet"),
            &StorageOptions::new(),
        )
        .unwrap_err();
        assert!(
            e.is_not_found() && e.to_string().contains("*.parquet"),
            "{e}"
        );
    }
}
