//! [`ObjectWriter`]: a synchronous `std::io::Write` into an object, for task code such as the
//! Parquet writer. Bytes are gathered in 8 MiB blocks; each full block is handed to
//! `object_store`'s buffered upload (a multipart upload once the object outgrows one block)
//! on the storage runtime. The object appears only when [`ObjectWriter::finish`] completes the
//! upload; an abandoned writer leaves nothing (the upload is aborted when dropped).

use std::io::Write;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::{Location, Result, StorageError, block_on};

/// Bytes gathered before each hand-over to the upload.
const BLOCK: usize = 8 << 20;

/// Writes one object; see the module documentation.
pub struct ObjectWriter {
    location: Location,
    upload: Option<BufWriter>,
    block: Vec<u8>,
    written: u64,
}

impl ObjectWriter {
    /// Starts writing the object at `location` in `store` (nothing is sent until a block is
    /// full or the writer finishes).
    pub fn create(store: Arc<dyn ObjectStore>, location: Location) -> Self {
        let upload = BufWriter::with_capacity(store, location.object_path().clone(), BLOCK);
        ObjectWriter {
            location,
            upload: Some(upload),
            block: Vec::with_capacity(BLOCK),
            written: 0,
        }
    }

    /// Sends the gathered block to the upload.
    fn send_block(&mut self) -> std::io::Result<()> {
        let Some(mut upload) = self.upload.take() else {
            return Err(std::io::Error::other("the upload already failed"));
        };
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let (upload, sent) = block_on(async move {
            let sent = upload.write_all(&block).await;
            (upload, sent)
        });
        sent?;
        self.upload = Some(upload);
        Ok(())
    }

    /// Uploads what is left and makes the object visible. Returns its size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        let location = self.location.to_string();
        let failed = |e: std::io::Error| StorageError::Store {
            location: location.clone(),
            message: e.to_string(),
        };
        if !self.block.is_empty() {
            self.send_block().map_err(failed)?;
        }
        let Some(mut upload) = self.upload.take() else {
            return Err(failed(std::io::Error::other("the upload already failed")));
        };
        block_on(async move { upload.shutdown().await }).map_err(failed)?;
        Ok(self.written)
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        self.written += n as u64;
        if self.block.len() == BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }

    /// Does nothing: blocks go out when full, and the object is completed by `finish`.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            // Unfinished: abort a multipart upload so that no parts are left behind.
            let _ = block_on(async move { upload.abort().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectStores, StorageOptions};

    #[test]
    fn an_object_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let location = Location::parse(&target.to_string_lossy()).unwrap();
        let store = ObjectStores::new()
            .store(&location, &StorageOptions::new())
            .unwrap();
        let data: Vec<u8> = (0..(BLOCK * 2 + 123)).map(|i| (i % 251) as u8).collect();
        let mut w = ObjectWriter::create(store.clone(), location.clone());
        w.write_all(&data).unwrap();
        assert!(!target.exists(), "visible before finish");
        assert_eq!(w.finish().unwrap(), data.len() as u64);
        assert_eq!(std::fs::read(&target).unwrap(), data);

        let abandoned = dir.path().join("abandoned.bin");
        let location = Location::parse(&abandoned.to_string_lossy()).unwrap();
        let mut w = ObjectWriter::create(store, location);
        w.write_all(&data).unwrap();
        drop(w);
        assert!(!abandoned.exists());
    }
}
