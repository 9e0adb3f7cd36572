//! Reads one reduce task's buckets (its partition's, or a coalesced run of them) from every
//! map output of an upstream stage.
//!
//! Outputs on this worker are read from local files directly, a few MiB of adjacent buckets
//! at a time. Outputs on other workers are fetched by a tokio task with Flight `DoGet`, one
//! request per map output for the whole run of buckets, and handed to the task's (rayon)
//! thread through a bounded channel, so a slow consumer slows the fetch instead of buffering
//! everything.

use std::ops::Range;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use quiver_net::{PeerChannels, fetch_bucket};
use quiver_plan::{JobId, MapOutputLocation, ShuffleInput, StageId, WorkerId};
use quiver_proto::v1 as pb;

use super::map_output_store::{MapOutputStore, READ_RUN_BYTES, decode_ipc_stream};
use crate::error::{Result, WorkerError};
use crate::memory::memory_pool::batch_bytes;
use crate::worker_metrics::WorkerMetrics;

/// Batches in flight between a remote fetch and the reading task.
const FETCH_CHANNEL_CAPACITY: usize = 8;

type BatchResults = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// What a task needs to read map outputs: where they are (this worker's store, or other
/// workers reached through `peers` on `runtime`). Which buckets it reads is the caller's to
/// say.
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

/// Buckets `buckets` of every map output of `input`, as one iterator of batches: each map
/// output's buckets in order, local outputs first (all buckets of a stage's outputs are all
/// of its output: a broadcast).
pub fn read_buckets(
    ctx: &ShuffleReadContext,
    input: &ShuffleInput,
    buckets: Range<u32>,
) -> BatchResults {
    if buckets.is_empty() {
        return Box::new(std::iter::empty());
    }
    let (local, remote): (Vec<MapOutputLocation>, Vec<MapOutputLocation>) = input
        .locations
        .iter()
        .cloned()
        .partition(|l| l.worker == ctx.this_worker);
    let stage = input.stage;

    // Remote fetches start at once, in the background, while local files are read.
    let remote_iter: BatchResults = if remote.is_empty() {
        Box::new(std::iter::empty())
    } else {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<RecordBatch>>(FETCH_CHANNEL_CAPACITY);
        let peers = ctx.peers.clone();
        let job = ctx.job.clone();
        let grant = input.grant.as_ref().map(pb::ReadGrant::from);
        let metrics = ctx.metrics.clone();
        let (first, count) = (buckets.start, buckets.end - buckets.start);
        ctx.runtime.spawn(async move {
            for loc in remote {
                let ticket = pb::ShuffleTicket {
                    job_id: job.0.clone(),
                    stage_id: stage.0,
                    map_partition: loc.map_partition,
                    bucket: first,
                    bucket_count: count,
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
    let local_iter = local.into_iter().flat_map(move |loc| -> BatchResults {
        match store.open_runs(
            &job,
            stage,
            loc.map_partition,
            buckets.clone(),
            READ_RUN_BYTES,
        ) {
            Err(e) => Box::new(std::iter::once(Err(e))),
            Ok(runs) => Box::new(runs.flat_map(|run| match run.and_then(decode_ipc_stream) {
                Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })),
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
