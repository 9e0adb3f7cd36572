//! Synchronous readers over one object in a store, for task code that runs on plain threads:
//! [`ObjectReader`] (a `Read + Seek` that fetches the object in large ranged GETs, for text
//! and CSV) and [`ObjectChunkReader`] (a Parquet `ChunkReader` that serves the byte ranges the
//! Parquet reader asks for — the footer, then the column chunks of its row groups — from
//! ranges prefetched together, concurrently and coalesced, or else with one ranged GET each).
//! Every request runs on this crate's runtime through [`crate::block_on`]; errors name the
//! object's location.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{Location, ObjectStores, Result, StorageError, StorageOptions, block_on};

/// Bytes one ranged GET of an [`ObjectReader`] fetches.
pub const READ_CHUNK_BYTES: u64 = 8 << 20;

/// One object of a store, opened for reading: its store, path and size.
#[derive(Clone)]
pub struct StoredObject {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    location: String,
    size: u64,
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredObject({}, {} bytes)", self.location, self.size)
    }
}

impl StoredObject {
    /// Looks `location` up (one HEAD request) in the store `stores` builds for it.
    pub fn open(
        stores: &ObjectStores,
        location: &Location,
        options: &StorageOptions,
    ) -> Result<StoredObject> {
        let store = stores.store(location, options)?;
        let path = location.object_path().clone();
        let name = location.to_string();
        let meta = {
            let (store, path, name) = (store.clone(), path.clone(), name.clone());
            block_on(async move {
                store
                    .head(&path)
                    .await
                    .map_err(|e| StorageError::from_store(name, e))
            })?
        };
        Ok(StoredObject {
            store,
            path,
            location: name,
            size: meta.size,
        })
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The object's location, as text (for messages).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The bytes in `range` (clamped to the object's end).
    pub fn read_range(&self, range: Range<u64>) -> Result<Bytes> {
        let range = range.start.min(self.size)..range.end.min(self.size);
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let (store, path, name) = (self.store.clone(), self.path.clone(), self.location.clone());
        block_on(async move {
            store
                .get_range(&path, range)
                .await
                .map_err(|e| StorageError::from_store(name, e))
        })
    }

    /// A sequential reader starting at byte `start`.
    pub fn reader(&self, start: u64) -> ObjectReader {
        ObjectReader {
            object: self.clone(),
            pos: start,
            chunk: Bytes::new(),
            chunk_start: 0,
        }
    }
}

/// Reads an object front to back (seeking is allowed) in ranged GETs of
/// [`READ_CHUNK_BYTES`], so that reading a byte range plus the end of its last line costs one
/// or two requests, not one per `read` call.
#[derive(Debug)]
pub struct ObjectReader {
    object: StoredObject,
    pos: u64,
    /// The last fetched bytes, which start at `chunk_start`.
    chunk: Bytes,
    chunk_start: u64,
}

impl ObjectReader {
    /// The object read.
    pub fn object(&self) -> &StoredObject {
        &self.object
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() || self.pos >= self.object.size {
            return Ok(0);
        }
        let in_chunk =
            self.pos >= self.chunk_start && self.pos < self.chunk_start + self.chunk.len() as u64;
        if !in_chunk {
            let want = READ_CHUNK_BYTES.max(out.len() as u64);
            self.chunk = self
                .object
                .read_range(self.pos..self.pos.saturating_add(want))
                .map_err(std::io::Error::other)?;
            self.chunk_start = self.pos;
            if self.chunk.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.pos - self.chunk_start) as usize;
        let n = out.len().min(self.chunk.len() - offset);
        out[..n].copy_from_slice(&self.chunk[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.object.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: seek before the start", self.object.location),
            )
        })?;
        Ok(self.pos)
    }
}

/// Bytes of an object's end that [`ObjectChunkReader::prefetch_footer`] fetches: the Parquet
/// footer (its length and metadata) of most files, in one GET instead of two.
pub const FOOTER_PREFETCH_BYTES: u64 = 64 << 10;

/// A Parquet [`ChunkReader`](parquet::file::reader::ChunkReader) over an object. Reads inside
/// ranges fetched ahead by [`ObjectChunkReader::prefetch`] cost no request; any other read is
/// one ranged GET (for the exact bytes asked, or [`READ_CHUNK_BYTES`] for a stream).
#[derive(Clone, Debug)]
pub struct ObjectChunkReader {
    object: StoredObject,
    /// Fetched ranges: (first byte, bytes), shared by clones.
    prefetched: Arc<Vec<(u64, Bytes)>>,
}

impl ObjectChunkReader {
    /// A chunk reader over `object`.
    pub fn new(object: StoredObject) -> Self {
        ObjectChunkReader {
            object,
            prefetched: Arc::default(),
        }
    }

    /// Fetches `ranges` (clamped to the object) now, together: ranges less than 1 MiB apart
    /// are coalesced into one GET, and up to 10 GETs run at once (`ObjectStore::get_ranges`).
    /// Later reads inside them are served from memory. Returns the bytes fetched.
    pub fn prefetch(&mut self, ranges: &[Range<u64>]) -> Result<u64> {
        let size = self.object.size;
        let ranges: Vec<Range<u64>> = ranges
            .iter()
            .map(|r| r.start.min(size)..r.end.min(size))
            .filter(|r| !r.is_empty())
            .collect();
        if ranges.is_empty() {
            return Ok(0);
        }
        let (store, path, name) = (
            self.object.store.clone(),
            self.object.path.clone(),
            self.object.location.clone(),
        );
        let fetched = {
            let ranges = ranges.clone();
            block_on(async move {
                store
                    .get_ranges(&path, &ranges)
                    .await
                    .map_err(|e| StorageError::from_store(name, e))
            })?
        };
        let mut prefetched = self.prefetched.as_ref().clone();
        let mut total = 0u64;
        for (range, bytes) in ranges.into_iter().zip(fetched) {
            total += bytes.len() as u64;
            prefetched.push((range.start, bytes));
        }
        self.prefetched = Arc::new(prefetched);
        Ok(total)
    }

    /// Prefetches the object's last [`FOOTER_PREFETCH_BYTES`].
    pub fn prefetch_footer(&mut self) -> Result<u64> {
        let size = self.object.size;
        let footer = size.saturating_sub(FOOTER_PREFETCH_BYTES)..size;
        self.prefetch(std::slice::from_ref(&footer))
    }

    /// A prefetched buffer holding byte `at`: its first byte and bytes.
    fn prefetched_at(&self, at: u64) -> Option<&(u64, Bytes)> {
        self.prefetched
            .iter()
            .find(|(start, bytes)| (*start..start + bytes.len() as u64).contains(&at))
    }
}

impl parquet::file::reader::Length for ObjectChunkReader {
    fn len(&self) -> u64 {
        self.object.size
    }
}

impl parquet::file::reader::ChunkReader for ObjectChunkReader {
    type T = ObjectReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<ObjectReader> {
        let mut reader = self.object.reader(start);
        if let Some((chunk_start, chunk)) = self.prefetched_at(start) {
            reader.chunk = chunk.clone();
            reader.chunk_start = *chunk_start;
        }
        Ok(reader)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        if let Some((chunk_start, chunk)) = self.prefetched_at(start) {
            let offset = (start - chunk_start) as usize;
            if let Some(end) = offset.checked_add(length)
                && end <= chunk.len()
            {
                return Ok(chunk.slice(offset..end));
            }
        }
        let bytes = self
            .object
            .read_range(start..start.saturating_add(length as u64))
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        if bytes.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{}: asked for {length} bytes at {start}, the object has {}",
                self.object.location, self.object.size
            )));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::ChunkReader;

    fn local_object(content: &[u8]) -> (tempfile::TempDir, StoredObject) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.bin");
        std::fs::write(&file, content).unwrap();
        let location = Location::parse(&file.to_string_lossy()).unwrap();
        let object =
            StoredObject::open(&ObjectStores::new(), &location, &StorageOptions::new()).unwrap();
        (dir, object)
    }

    #[test]
    fn reads_ranges_and_seeks_over_a_local_file() {
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, object) = local_object(&content);
        assert_eq!(object.size(), content.len() as u64);
        assert_eq!(&object.read_range(10..20).unwrap()[..], &content[10..20]);
        assert_eq!(
            &object.read_range(99_990..200_000).unwrap()[..],
            &content[99_990..]
        );
        let mut reader = object.reader(50_000);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &content[50_000..]);
        reader.seek(SeekFrom::Start(3)).unwrap();
        let mut four = [0u8; 4];
        reader.read_exact(&mut four).unwrap();
        assert_eq!(four, content[3..7]);
        let chunks = ObjectChunkReader::new(object);
        assert_eq!(&chunks.get_bytes(7, 5).unwrap()[..], &content[7..12]);
        assert!(chunks.get_bytes(99_999, 5).is_err());
    }

    #[test]
    fn prefetched_ranges_serve_reads_and_other_reads_still_fetch() {
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, object) = local_object(&content);
        let mut chunks = ObjectChunkReader::new(object);
        let fetched = chunks
            .prefetch(&[100..1_000, 2_000_000..2_500_000, 2_999_990..4_000_000])
            .unwrap();
        assert_eq!(fetched, 900 + 500_000 + 10);
        assert_eq!(chunks.prefetch_footer().unwrap(), FOOTER_PREFETCH_BYTES);
        // Inside a prefetched range, across its end, outside any, and streamed.
        assert_eq!(
            &chunks.get_bytes(100, 900).unwrap()[..],
            &content[100..1_000]
        );
        assert_eq!(
            &chunks.get_bytes(990, 20).unwrap()[..],
            &content[990..1_010]
        );
        assert_eq!(&chunks.get_bytes(5, 5).unwrap()[..], &content[5..10]);
        assert_eq!(
            &chunks.get_bytes(2_999_000, 1_000).unwrap()[..],
            &content[2_999_000..]
        );
        let mut streamed = Vec::new();
        chunks
            .get_read(2_400_000)
            .unwrap()
            .take(200_000)
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, &content[2_400_000..2_600_000]);
        assert!(chunks.get_bytes(2_999_999, 5).is_err());
    }

    #[test]
    fn a_missing_object_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.txt");
        let location = Location::parse(&missing.to_string_lossy()).unwrap();
        let e = StoredObject::open(&ObjectStores::new(), &location, &StorageOptions::new())
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("absent.txt"), "{e}");
    }
}
