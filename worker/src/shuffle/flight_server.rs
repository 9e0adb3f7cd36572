//! [`ShuffleFlightService`]: serves this worker's map output buckets (and collect results) to
//! other workers and drivers with Arrow Flight `DoGet`. The ticket is a `ShuffleTicket`
//! protobuf naming job, stage, map partition and a run of buckets, with the coordinator's
//! signed read grant for that job and stage; a fetch is admitted by [`ClusterTrust`] (a cluster
//! token, then the grant) before any file is read. A run is read 8 MiB of adjacent buckets at
//! a time (a larger bucket whole), so a long run (a broadcast side) is not held in memory
//! whole, and served as the IPC messages it was stored as ([`FlightFramer`]; the shuffle writer
//! keeps each stored batch under `MAX_STORED_BATCH_BYTES`): nothing is decoded or re-encoded
//! here. Every other Flight RPC is unimplemented.

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use quiver_plan::{JobId, StageId};
use tonic::{Request, Response, Status, Streaming};

use super::ipc_frames::FlightFramer;
use super::map_output_store::{MapOutputStore, READ_RUN_BYTES};
use crate::cluster_trust::ClusterTrust;
use crate::error::WorkerError;
use crate::worker_metrics::WorkerMetrics;

/// The Flight service over a worker's [`MapOutputStore`].
pub struct ShuffleFlightService {
    store: Arc<MapOutputStore>,
    trust: Arc<ClusterTrust>,
    metrics: Arc<WorkerMetrics>,
}

impl ShuffleFlightService {
    /// Serves the outputs in `store` to callers `trust` admits, counting the bytes served
    /// in `metrics`.
    pub fn new(
        store: Arc<MapOutputStore>,
        trust: Arc<ClusterTrust>,
        metrics: Arc<WorkerMetrics>,
    ) -> Self {
        ShuffleFlightService {
            store,
            trust,
            metrics,
        }
    }
}

type FlightStream<T> = BoxStream<'static, Result<T, Status>>;

fn unimplemented<T>(rpc: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{rpc}: a Quiver worker serves shuffle data with DoGet only"
    )))
}

/// The gRPC status for a failed read: a missing output is `NotFound`, a run of buckets the
/// output does not have is the caller's mistake.
fn status(e: WorkerError) -> Status {
    match e {
        WorkerError::MissingMapOutput { .. } => Status::not_found(e.to_string()),
        WorkerError::BucketsOutOfRange { .. } => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl FlightService for ShuffleFlightService {
    type HandshakeStream = FlightStream<HandshakeResponse>;
    type ListFlightsStream = FlightStream<FlightInfo>;
    type DoGetStream = FlightStream<FlightData>;
    type DoPutStream = FlightStream<PutResult>;
    type DoExchangeStream = FlightStream<FlightData>;
    type DoActionStream = FlightStream<arrow_flight::Result>;
    type ListActionsStream = FlightStream<ActionType>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ticket = quiver_net::decode_ticket(&request.into_inner().ticket)
            .map_err(|e| Status::invalid_argument(format!("malformed shuffle ticket: {e}")))?;
        let job = JobId::parse(&ticket.job_id)
            .map_err(|e| Status::invalid_argument(format!("shuffle ticket: {e}")))?;
        self.trust
            .admit_fetch(
                authorization.as_deref(),
                ticket.grant.as_ref(),
                &job.0,
                ticket.stage_id,
            )
            .await?;
        let stage = StageId(ticket.stage_id);
        let partition = ticket.map_partition;
        let end = ticket
            .bucket
            .checked_add(ticket.bucket_count.max(1))
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "shuffle ticket: {} buckets from bucket {} run past the last bucket number",
                    ticket.bucket_count, ticket.bucket
                ))
            })?;
        // Opening the file (and checking the output is here and has those buckets) happens
        // before anything is streamed; file I/O stays off the async threads.
        let store = self.store.clone();
        let runs = tokio::task::spawn_blocking(move || {
            store.open_runs(&job, stage, partition, ticket.bucket..end, READ_RUN_BYTES)
        })
        .await
        .map_err(|e| Status::internal(format!("shuffle read task failed: {e}")))?
        .map_err(status)?;
        let metrics = self.metrics.clone();
        let state = (runs, FlightFramer::default());
        let messages = futures::stream::try_unfold(state, move |(mut runs, mut framer)| {
            let metrics = metrics.clone();
            async move {
                // Reading and framing a run is file I/O and CPU.
                let read = tokio::task::spawn_blocking(move || {
                    let Some(bytes) = runs.next() else {
                        return Ok(None);
                    };
                    let bytes = bytes?;
                    metrics.served(bytes.len() as u64);
                    let frames = framer.frames(bytes.into()).map_err(|message| {
                        WorkerError::CorruptMapOutput {
                            stage,
                            map_partition: partition,
                            message,
                        }
                    })?;
                    Ok::<_, WorkerError>(Some((frames, runs, framer)))
                })
                .await
                .map_err(|e| Status::internal(format!("shuffle read task failed: {e}")))?
                .map_err(status)?;
                let Some((frames, runs, framer)) = read else {
                    return Ok::<_, Status>(None);
                };
                let frames = futures::stream::iter(frames.into_iter().map(Ok::<_, Status>));
                Ok(Some((frames, (runs, framer))))
            }
        })
        .try_flatten();
        Ok(Response::new(messages.boxed()))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unimplemented("Handshake")
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented("ListFlights")
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unimplemented("GetFlightInfo")
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unimplemented("PollFlightInfo")
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unimplemented("GetSchema")
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unimplemented("DoPut")
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented("DoExchange")
    }

    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        unimplemented("DoAction")
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        unimplemented("ListActions")
    }
}
