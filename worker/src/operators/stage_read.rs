//! The stage-read sources: what a stage reads of an upstream stage's output — this task's
//! buckets of every map output (after a shuffle), or all of it (a broadcast). The bytes come
//! through [`crate::shuffle::shuffle_reader`]; this picks the input locations and the buckets.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quiver_plan::{PlanError, ShuffleInput, StageId, StageRead};

use super::batch_stream::{BatchIter, check_cancelled};
use crate::error::{Result, WorkerError};
use crate::shuffle::shuffle_reader::{self, ShuffleReadContext};

/// The shuffle input of `stage` among this task's `inputs`.
fn shuffle_input(inputs: &[ShuffleInput], stage: StageId) -> Result<&ShuffleInput> {
    inputs.iter().find(|i| i.stage == stage).ok_or_else(|| {
        WorkerError::Plan(PlanError::InvalidPlan(format!(
            "task has no shuffle input locations for stage {stage}"
        )))
    })
}

/// All output of `stage` (its `buckets` buckets of every map task, each map output's in
/// turn): a broadcast join side or a sample.
pub fn read_broadcast(
    shuffle: &ShuffleReadContext,
    inputs: &[ShuffleInput],
    stage: StageId,
    buckets: u32,
) -> Result<BatchIter> {
    let input = shuffle_input(inputs, stage)?;
    Ok(shuffle_reader::read_buckets(shuffle, input, 0..buckets))
}

/// What `read` reads for a task reading `buckets` of every shuffle (its partition's, or a
/// coalesced run of them): those buckets of each map output of a shuffle (each output read,
/// or fetched, once for the whole run), or the whole output of a broadcast.
pub fn stage_read(
    read: &StageRead,
    shuffle: &ShuffleReadContext,
    inputs: &[ShuffleInput],
    buckets: Range<u32>,
    cancelled: Arc<AtomicBool>,
) -> Result<BatchIter> {
    let batches: BatchIter = match read {
        StageRead::Shuffle { stage, .. } => {
            shuffle_reader::read_buckets(shuffle, shuffle_input(inputs, *stage)?, buckets)
        }
        StageRead::Broadcast { stage, buckets, .. } => {
            read_broadcast(shuffle, inputs, *stage, *buckets)?
        }
    };
    Ok(Box::new(batches.map(move |b| {
        let b = b?;
        check_cancelled(&cancelled)?;
        Ok(b)
    })))
}
