//! The limit operator: passes on at most `n` rows, then stops pulling from its input, so that
//! files are not read further than needed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::batch_stream::{BatchIter, check_cancelled};

/// The first `n` rows of `input` (empty batches are skipped).
pub fn limit(mut input: BatchIter, n: u64, cancelled: Arc<AtomicBool>) -> BatchIter {
    let mut remaining = usize::try_from(n).unwrap_or(usize::MAX);
    Box::new(std::iter::from_fn(move || {
        while remaining > 0 {
            let b = match input.next()?.and_then(|b| {
                check_cancelled(&cancelled)?;
                Ok(b)
            }) {
                Err(e) => return Some(Err(e)),
                Ok(b) if b.num_rows() == 0 => continue,
                Ok(b) => b,
            };
            let take = b.num_rows().min(remaining);
            remaining -= take;
            return Some(Ok(b.slice(0, take)));
        }
        None
    }))
}
