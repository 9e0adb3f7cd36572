//! Reads one reduce task's bucket from every map output of an upstream stage.
//!
//! Outputs on this worker are read from local files directly. Outputs on other workers are
//! fetched by a tokio task with Flight `DoGet` and handed to the task's (rayon) thread through
//! a bounded channel, so a slow consumer slows the fetch instead of buffering everything.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use quiver_net::{PeerChannels, fetch_bucket};
use quiver_plan::{JobId, MapOutputLocation, ShuffleInput, StageId, WorkerId};
use quiver_proto::v1 as pb;

use super::map_output_store::MapOutputStore;
use crate::error::{Result, WorkerError};
use crate::memory::memory_pool::batch_bytes;
use crate::worker_metrics::WorkerMetrics;

/// Batches in flight between a remote fetch and the reading task.
const FETCH_CHANNEL_CAPACITY: usize = 8;

/// What a task needs to read map outputs: where they are (this worker's store, or other
/// workers reached through `peers` on `runtime`). Which bucket it reads is the caller's to say.
#[derive(Clone)]
pub struct ShuffleReadContext {
    pub job: JobId,
    pub this_worker: WorkerId,
    pub store: Arc<MapOutputStore>,
    pub peers: Arc<PeerChannels>,
    pub runtime: tokio::runtime::Handle,
    /// The worker's counters (bytes fetched, fetch failures).
    pub metrics: Arc<WorkerMetrics>,
}

/// Bucket `bucket` of every map output of `input` (bucket 0 of a one-bucket stage is all of
/// its output: a broadcast), as one iterator of batches.
pub fn read_bucket(
    ctx: &ShuffleReadContext,
    input: &ShuffleInput,
    bucket: u32,
) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
    let (local, remote): (Vec<MapOutputLocation>, Vec<MapOutputLocation>) = input
        .locations
        .iter()
        .cloned()
        .partition(|l| l.worker == ctx.this_worker);
    let stage = input.stage;

    // Remote fetches start at once, in the background, while local files are read.
    let remote_iter: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = if remote.is_empty() {
        Box::new(std::iter::empty())
    } else {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<RecordBatch>>(FETCH_CHANNEL_CAPACITY);
        let peers = ctx.peers.clone();
        let job = ctx.job.clone();
        let grant = input.grant.as_ref().map(pb::ReadGrant::from);
        let metrics = ctx.metrics.clone();
        ctx.runtime.spawn(async move {
            for loc in remote {
                let ticket = pb::ShuffleTicket {
                    job_id: job.0.clone(),
                    stage_id: stage.0,
                    map_partition: loc.map_partition,
                    bucket,
                    grant: grant.clone(),
                };
                if let Err(e) = fetch_into(&peers, ticket, &loc, &tx, &metrics).await {
                    metrics.fetch_failed();
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        });
        // The task runs on a rayon thread, outside the runtime, where blocking is allowed.
        Box::new(std::iter::from_fn(move || rx.blocking_recv()))
    };

    let store = ctx.store.clone();
    let job = ctx.job.clone();
    let local_iter = local.into_iter().flat_map(move |loc| {
        match store.read_bucket(&job, stage, loc.map_partition, bucket) {
            Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    });
    Box::new(local_iter.chain(remote_iter))
}

async fn fetch_into(
    peers: &PeerChannels,
    ticket: pb::ShuffleTicket,
    loc: &MapOutputLocation,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    metrics: &WorkerMetrics,
) -> Result<()> {
    let stage = StageId(ticket.stage_id);
    let failed = |message: String| WorkerError::FetchFailed {
        worker: loc.worker.clone(),
        address: loc.address.clone(),
        stage,
        map_partition: loc.map_partition,
        message,
    };
    let mut stream = Box::pin(
        fetch_bucket(peers, &loc.address, &ticket, None)
            .await
            .map_err(failed)?,
    );
    while let Some(batch) = stream.try_next().await.map_err(failed)? {
        // Sums the sizes of the batch's buffers: a walk over its columns, not over its data.
        metrics.fetched(batch_bytes(&batch) as u64);
        if tx.send(Ok(batch)).await.is_err() {
            // The reading task ended (finished, failed or cancelled): stop fetching.
            return Ok(());
        }
    }
    Ok(())
}
