//! The suite's generated inputs in `--data`: a local directory or an object store URL
//! (`s3://bucket/quiver-bench/`), one prefix per data set (`text/`, `terasort/`, `tpch/`).
//!
//! A data set is reused only when its manifest (`_manifest.json`, written last) names the same
//! data set, scale, generator version and parameters, and lists exactly the files the store
//! holds under its prefix, with their sizes. Anything else — no manifest, another scale, a
//! missing, extra or truncated file — regenerates it: the prefix is emptied, the files are
//! generated locally, uploaded, checked by listing, and the manifest is written.
//!
//! The yardsticks read local files: for object store data they read a local copy in the cache
//! directory, which carries the manifest it was downloaded for and is checked the same way.
//! Credentials and endpoints come from the standard environment variables (`AWS_*`, ...).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use quiver_examples::jobs::{terasort, tpch};
use quiver_storage::object_store::path::Path as ObjectPath;
use quiver_storage::object_store::{ObjectStore, ObjectStoreExt};
use quiver_storage::{
    Location, ObjectChunkReader, ObjectStores, ObjectWriter, StorageOptions, StoredObject, block_on,
};
use serde::{Deserialize, Serialize};

use crate::workloads::Workload;

/// Bumped whenever a generator's output changes for the same parameters: data sets written by
/// another version are regenerated.
pub const GENERATOR_VERSION: u32 = 1;

/// The manifest's name inside a data set's prefix (skipped by listings: it starts with `_`).
pub const MANIFEST: &str = "_manifest.json";

/// A manifest larger than this is not one of ours.
const MANIFEST_MAX_BYTES: usize = 1 << 20;

/// Files per data set (and per TPC-H table), unless `--files` says otherwise.
pub const DEFAULT_FILES: usize = 8;
const SEED: u64 = 42;

/// A generated data set; several workloads may read one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSet {
    /// Text lines (word count, grep).
    Text,
    /// TeraSort records in Parquet.
    Terasort,
    /// TPC-H `lineitem/` and `orders/` in Parquet (Q1, join).
    Tpch,
}

impl DataSet {
    pub fn name(self) -> &'static str {
        match self {
            DataSet::Text => "text",
            DataSet::Terasort => "terasort",
            DataSet::Tpch => "tpch",
        }
    }

    /// The data set a workload reads.
    pub fn of(w: Workload) -> DataSet {
        match w {
            Workload::Wordcount | Workload::Grep => DataSet::Text,
            Workload::Terasort => DataSet::Terasort,
            Workload::TpchQ1 | Workload::Join => DataSet::Tpch,
        }
    }

    fn workloads(self) -> Vec<String> {
        let all = [
            Workload::Wordcount,
            Workload::Grep,
            Workload::Terasort,
            Workload::TpchQ1,
            Workload::Join,
        ];
        all.into_iter()
            .filter(|w| DataSet::of(*w) == self)
            .map(|w| w.name().to_string())
            .collect()
    }

    /// The generator's parameters at `scale`, in words (part of the manifest).
    fn parameters(self, scale: f64, files: usize) -> String {
        match self {
            DataSet::Text => format!(
                "bytes={} files={files} seed={SEED}",
                (scale * (1u64 << 30) as f64) as u64
            ),
            DataSet::Terasort => format!(
                "records={} files={files} seed={SEED}",
                (scale * terasort::RECORDS_PER_SCALE as f64) as u64
            ),
            DataSet::Tpch => {
                let (lines, orders, customers) = tpch::sizes(4.0 * scale);
                format!(
                    "sf={} lineitems={lines} orders={orders} customers={customers} files={files} seed={SEED}",
                    4.0 * scale
                )
            }
        }
    }

    /// Writes the data set at `scale` into the empty local directory `dir`.
    fn generate(self, dir: &Path, scale: f64, files: usize) -> anyhow::Result<()> {
        match self {
            DataSet::Text => {
                let bytes = (scale * (1u64 << 30) as f64) as u64;
                quiver_examples::generate_corpus(dir, bytes, files, SEED, false)?;
            }
            DataSet::Terasort => {
                let records = (scale * terasort::RECORDS_PER_SCALE as f64) as u64;
                terasort::generate(dir, records, files, SEED)?;
            }
            DataSet::Tpch => tpch::generate(dir, 4.0 * scale, files, SEED)?,
        }
        Ok(())
    }

    /// The manifest this data set must have at `scale` (its files left empty).
    fn expected(self, scale: f64, files: usize) -> Manifest {
        Manifest {
            data_set: self.name().to_string(),
            workloads: self.workloads(),
            scale,
            generator_version: GENERATOR_VERSION,
            parameters: self.parameters(scale, files),
            files: vec![],
        }
    }
}

/// What a data set's prefix holds, written after everything else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub data_set: String,
    /// The workloads that read it.
    pub workloads: Vec<String>,
    pub scale: f64,
    pub generator_version: u32,
    /// The generator's parameters, in words.
    pub parameters: String,
    /// Its files, relative to the prefix (`/`-separated), in name order.
    pub files: Vec<DataFile>,
}

impl Manifest {
    /// Whether this manifest is for the same data as `expected` (files aside).
    fn describes(&self, expected: &Manifest) -> bool {
        self.data_set == expected.data_set
            && self.workloads == expected.workloads
            && self.scale == expected.scale
            && self.generator_version == expected.generator_version
            && self.parameters == expected.parameters
    }

    /// Total bytes of the files whose name starts with `prefix`.
    pub fn bytes_under(&self, prefix: &str) -> u64 {
        self.files
            .iter()
            .filter(|f| f.name.starts_with(prefix))
            .map(|f| f.size)
            .sum()
    }
}

/// One file of a data set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DataFile {
    pub name: String,
    pub size: u64,
}

/// A data set ready to read.
#[derive(Clone, Debug)]
pub struct PreparedData {
    pub data_set: DataSet,
    /// Where the cluster reads it (a directory or prefix).
    pub location: Location,
    /// The same files on this host, for the yardsticks.
    pub local: PathBuf,
    pub manifest: Manifest,
    /// Whether this run generated it (rather than reusing what the manifest described).
    pub generated: bool,
    /// Whether this run downloaded it into the local cache.
    pub downloaded: bool,
}

/// What the report says about a prepared data set.
#[derive(Clone, Debug, Serialize)]
pub struct DataReport {
    pub data_set: DataSet,
    pub location: String,
    pub local_copy: String,
    pub files: usize,
    pub bytes: u64,
    pub generated: bool,
    pub downloaded: bool,
}

impl PreparedData {
    pub fn report(&self) -> DataReport {
        DataReport {
            data_set: self.data_set,
            location: self.location.to_string(),
            local_copy: self.local.display().to_string(),
            files: self.manifest.files.len(),
            bytes: self.manifest.bytes_under(""),
            generated: self.generated,
            downloaded: self.downloaded,
        }
    }
}

/// The `--data` location and this host's cache of it.
pub struct DataStore {
    root: Location,
    stores: ObjectStores,
    options: StorageOptions,
    cache: PathBuf,
    files: usize,
}

impl DataStore {
    /// `data`: a local directory or an object store URL; `cache`: where local copies of object
    /// store data go; `files`: files per generated data set (and per TPC-H table).
    pub fn open(data: &str, cache: &Path, files: usize) -> anyhow::Result<DataStore> {
        if files == 0 {
            bail!("--files must be at least 1");
        }
        let root = Location::parse(data).with_context(|| format!("--data {data} is not usable"))?;
        if root.scheme() == quiver_storage::Scheme::Http {
            bail!("--data {data}: an HTTP server is read only; give a directory or a bucket URL");
        }
        Ok(DataStore {
            root,
            stores: ObjectStores::new(),
            options: StorageOptions::new(),
            cache: cache.to_path_buf(),
            files,
        })
    }

    /// Whether `--data` is a local directory.
    pub fn is_local(&self) -> bool {
        self.root.is_local()
    }

    /// The location `name` (a `/`-separated relative path) under `--data`.
    pub fn location(&self, name: &str) -> anyhow::Result<Location> {
        Ok(self.root.child(name)?)
    }

    /// Makes `set` at `scale` ready: reused when its manifest matches, else generated.
    pub fn prepare(&self, set: DataSet, scale: f64) -> anyhow::Result<PreparedData> {
        let location = self.location(set.name())?;
        let expected = set.expected(scale, self.files);
        let found = self.read_manifest(&location)?;
        let listed = self.list(&location)?;
        let reusable = match &found {
            None => {
                println!("{location}: no manifest, generating {} ...", set.name());
                false
            }
            Some(m) if !m.describes(&expected) => {
                println!(
                    "{location}: manifest is for {} at scale {} ({}), generator v{}; \
                     generating scale {scale} ...",
                    m.data_set, m.scale, m.parameters, m.generator_version
                );
                false
            }
            Some(m) if m.files != listed => {
                println!(
                    "{location}: files differ from the manifest ({}), generating again ...",
                    difference(&m.files, &listed)
                );
                false
            }
            Some(_) => true,
        };
        if reusable {
            let manifest = found.expect("checked above");
            let (local, downloaded) = self.local_copy(set, &location, &manifest)?;
            println!(
                "{location}: reusing {} ({} files, manifest checked)",
                set.name(),
                manifest.files.len()
            );
            return Ok(PreparedData {
                data_set: set,
                location,
                local,
                manifest,
                generated: false,
                downloaded,
            });
        }
        let manifest = self.generate(set, scale, &location, expected)?;
        let local = self.local_dir(set, &location);
        Ok(PreparedData {
            data_set: set,
            location,
            local,
            manifest,
            generated: true,
            downloaded: false,
        })
    }

    /// Where the yardsticks read `set`: the data itself when local, else the cache.
    fn local_dir(&self, set: DataSet, location: &Location) -> PathBuf {
        location
            .local_path()
            .unwrap_or_else(|| self.cache.join(set.name()))
    }

    /// Generates `set` into its local directory, uploads it when `--data` is an object store,
    /// checks the store's listing and writes the manifest last.
    fn generate(
        &self,
        set: DataSet,
        scale: f64,
        location: &Location,
        mut manifest: Manifest,
    ) -> anyhow::Result<Manifest> {
        self.remove(location)?;
        let local = self.local_dir(set, location);
        remove_local(&local)?;
        std::fs::create_dir_all(&local)
            .with_context(|| format!("cannot create {}", local.display()))?;
        set.generate(&local, scale, self.files)
            .with_context(|| format!("generating {} in {}", set.name(), local.display()))?;
        manifest.files = local_files(&local)?;
        if !location.is_local() {
            for f in &manifest.files {
                self.upload(&local.join(&f.name), &location.child(&f.name)?)?;
            }
            let listed = self.list(location)?;
            if listed != manifest.files {
                bail!(
                    "{location}: the store lists other files than were uploaded ({})",
                    difference(&manifest.files, &listed)
                );
            }
            write_local_manifest(&local, &manifest)?;
        }
        self.write_manifest(location, &manifest)?;
        println!(
            "{location}: generated {} ({} files, {} bytes)",
            set.name(),
            manifest.files.len(),
            manifest.bytes_under("")
        );
        Ok(manifest)
    }

    /// A local copy of reused object store data: the cache when its manifest and files match,
    /// else a fresh download. Returns the directory and whether it was downloaded.
    fn local_copy(
        &self,
        set: DataSet,
        location: &Location,
        manifest: &Manifest,
    ) -> anyhow::Result<(PathBuf, bool)> {
        let local = self.local_dir(set, location);
        if location.is_local() {
            return Ok((local, false));
        }
        let cached = read_local_manifest(&local);
        if cached.as_ref() == Some(manifest)
            && local_files(&local).ok() == Some(manifest.files.clone())
        {
            return Ok((local, false));
        }
        println!(
            "{location}: copying {} to {} for the yardsticks ...",
            set.name(),
            local.display()
        );
        remove_local(&local)?;
        for f in &manifest.files {
            let target = local_child(&local, &f.name)?;
            self.download(&location.child(&f.name)?, &target)?;
        }
        if local_files(&local)? != manifest.files {
            bail!(
                "{location}: the copy in {} does not match the manifest",
                local.display()
            );
        }
        write_local_manifest(&local, manifest)?;
        Ok((local, true))
    }

    /// The files under `location` (names relative to it, without those with a part starting
    /// with `_` or `.`, as the cluster's listings skip them), in name order; none when it does
    /// not exist.
    pub fn list(&self, location: &Location) -> anyhow::Result<Vec<DataFile>> {
        let store = self.store_of(location)?;
        let prefix = location.object_path().clone();
        let listed = block_on(async move {
            use futures::TryStreamExt;
            match store.list(Some(&prefix)).try_collect::<Vec<_>>().await {
                Err(quiver_storage::object_store::Error::NotFound { .. }) => Ok(vec![]),
                other => other,
            }
        })
        .with_context(|| format!("listing {location}"))?;
        let mut files = Vec::new();
        for object in listed {
            let parts: Vec<String> = object
                .location
                .prefix_match(location.object_path())
                .with_context(|| format!("{} is not under {location}", object.location))?
                .map(|p| p.as_ref().to_string())
                .collect();
            if parts
                .iter()
                .any(|p| p.starts_with('_') || p.starts_with('.'))
            {
                continue;
            }
            files.push(DataFile {
                name: parts.join("/"),
                size: object.size,
            });
        }
        files.sort();
        Ok(files)
    }

    fn store_of(&self, location: &Location) -> anyhow::Result<std::sync::Arc<dyn ObjectStore>> {
        Ok(self.stores.store(location, &self.options)?)
    }

    /// The manifest under `location`; `None` when there is none or it is not a manifest.
    fn read_manifest(&self, location: &Location) -> anyhow::Result<Option<Manifest>> {
        let at = location.child(MANIFEST)?;
        let store = self.store_of(&at)?;
        let path = at.object_path().clone();
        let got = block_on(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(quiver_storage::object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .with_context(|| format!("reading {at}"))?;
        let Some(bytes) = got else { return Ok(None) };
        if bytes.len() > MANIFEST_MAX_BYTES {
            println!("{at}: {} bytes, not a manifest of the suite", bytes.len());
            return Ok(None);
        }
        match serde_json::from_slice(&bytes) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                println!("{at}: not a manifest of the suite ({e})");
                Ok(None)
            }
        }
    }

    fn write_manifest(&self, location: &Location, manifest: &Manifest) -> anyhow::Result<()> {
        let at = location.child(MANIFEST)?;
        let store = self.store_of(&at)?;
        let path = at.object_path().clone();
        let body = serde_json::to_vec_pretty(manifest)?;
        block_on(async move { store.put(&path, body.into()).await })
            .with_context(|| format!("writing {at}"))?;
        Ok(())
    }

    /// Deletes everything under `location` (a directory or prefix), manifest included.
    pub fn remove(&self, location: &Location) -> anyhow::Result<()> {
        if let Some(dir) = location.local_path() {
            return remove_local(&dir);
        }
        let store = self.store_of(location)?;
        let prefix = location.object_path().clone();
        block_on(async move {
            use futures::TryStreamExt;
            let paths: Vec<ObjectPath> = store
                .list(Some(&prefix))
                .map_ok(|m| m.location)
                .try_collect()
                .await?;
            for p in paths {
                store.delete(&p).await?;
            }
            Ok::<_, quiver_storage::object_store::Error>(())
        })
        .with_context(|| format!("deleting {location}"))
    }

    fn upload(&self, file: &Path, to: &Location) -> anyhow::Result<()> {
        let mut writer = ObjectWriter::create(self.store_of(to)?, to.clone());
        let mut input =
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        std::io::copy(&mut input, &mut writer)
            .with_context(|| format!("uploading {} to {to}", file.display()))?;
        writer.finish().with_context(|| format!("uploading {to}"))?;
        Ok(())
    }

    fn download(&self, from: &Location, to: &Path) -> anyhow::Result<()> {
        let object = StoredObject::open(&self.stores, from, &self.options)
            .with_context(|| format!("opening {from}"))?;
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?,
        );
        std::io::copy(&mut object.reader(0), &mut out)
            .with_context(|| format!("downloading {from} to {}", to.display()))?;
        out.flush()?;
        Ok(())
    }

    /// The Parquet objects under `location`, in name order, each as a reader that fetches the
    /// byte ranges it needs.
    pub fn parquet_objects(&self, location: &Location) -> anyhow::Result<Vec<ObjectChunkReader>> {
        let mut out = Vec::new();
        for f in self.list(location)? {
            if f.name.ends_with(".parquet") {
                let at = location.child(&f.name)?;
                let object = StoredObject::open(&self.stores, &at, &self.options)
                    .with_context(|| format!("opening {at}"))?;
                out.push(ObjectChunkReader::new(object));
            }
        }
        Ok(out)
    }
}

/// The files under a local directory (names relative to it; `_` and `.` names skipped), in
/// name order.
fn local_files(dir: &Path) -> anyhow::Result<Vec<DataFile>> {
    let mut files = Vec::new();
    for path in crate::yardsticks::files_under(dir, None)? {
        let name = path
            .strip_prefix(dir)?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push(DataFile {
            name,
            size: std::fs::metadata(&path)?.len(),
        });
    }
    files.sort();
    Ok(files)
}

/// `dir/name` for a name read from a store: relative, without empty, `.` or `..` parts.
fn local_child(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut path = dir.to_path_buf();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            bail!("the data set names a file '{name}', which is not a plain relative name");
        }
        path.push(part);
    }
    Ok(path)
}

fn remove_local(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

fn read_local_manifest(dir: &Path) -> Option<Manifest> {
    let bytes = std::fs::read(dir.join(MANIFEST)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_local_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    std::fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(manifest)?)
        .with_context(|| format!("writing {}", dir.join(MANIFEST).display()))
}

/// The first difference between two file lists, in words.
fn difference(want: &[DataFile], found: &[DataFile]) -> String {
    for w in want {
        match found.iter().find(|f| f.name == w.name) {
            None => return format!("{} is missing", w.name),
            Some(f) if f.size != w.size => {
                return format!(
                    "{} has {} bytes, the manifest says {}",
                    w.name, f.size, w.size
                );
            }
            Some(_) => {}
        }
    }
    match found
        .iter()
        .find(|f| !want.iter().any(|w| w.name == f.name))
    {
        Some(f) => format!("{} is not in the manifest", f.name),
        None => "no difference".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data set is generated once, reused while its manifest matches, and generated again
    /// when a file changes or the scale does.
    #[test]
    fn a_manifest_decides_reuse() {
        let root = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let store = DataStore::open(&root.path().to_string_lossy(), cache.path(), 3).unwrap();
        let scale = 0.0002;
        let first = store.prepare(DataSet::Text, scale).unwrap();
        assert!(first.generated);
        assert_eq!(first.manifest.files.len(), 3);
        assert_eq!(first.local, root.path().join("text"));
        let on_disk: u64 = crate::yardsticks::files_under(&first.local, Some("txt"))
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(first.manifest.bytes_under(""), on_disk);

        let again = store.prepare(DataSet::Text, scale).unwrap();
        assert!(!again.generated);
        assert_eq!(again.manifest, first.manifest);

        // A truncated file is noticed.
        let victim = first.local.join(&first.manifest.files[1].name);
        let text = std::fs::read(&victim).unwrap();
        std::fs::write(&victim, &text[..text.len() / 2]).unwrap();
        let repaired = store.prepare(DataSet::Text, scale).unwrap();
        assert!(repaired.generated);
        assert_eq!(repaired.manifest, first.manifest);
        assert_eq!(std::fs::read(&victim).unwrap(), text);

        // Another scale is another data set.
        let bigger = store.prepare(DataSet::Text, scale * 2.0).unwrap();
        assert!(bigger.generated);
        assert!(bigger.manifest.bytes_under("") > first.manifest.bytes_under(""));
    }

    #[test]
    fn names_from_a_store_stay_inside_the_cache() {
        let dir = Path::new("/tmp/cache");
        assert_eq!(
            local_child(dir, "lineitem/part-0.parquet").unwrap(),
            dir.join("lineitem").join("part-0.parquet")
        );
        for bad in ["../x", "a//b", "/etc/passwd", "a/./b"] {
            let e = local_child(dir, bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
