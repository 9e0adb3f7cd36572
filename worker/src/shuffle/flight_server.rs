//! [`ShuffleFlightService`]: serves this worker's map output buckets (and collect results) to
//! other workers and drivers with Arrow Flight `DoGet`. The ticket is a `ShuffleTicket`
//! protobuf naming job, stage, map partition and a run of buckets, with the coordinator's
//! signed read grant for that job and stage; a fetch is admitted by [`ClusterTrust`] (a cluster
//! token, then the grant) before any file is read. A run is served a few MiB at a time, so a
//! long one (a broadcast side) is never held in memory whole. Every other Flight RPC is
//! unimplemented.

use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use quiver_plan::{JobId, StageId};
use tonic::{Request, Response, Status, Streaming};

use super::map_output_store::{MapOutputStore, decode_ipc_stream};
use crate::cluster_trust::ClusterTrust;
use crate::error::WorkerError;
use crate::worker_metrics::WorkerMetrics;

/// At most this many bytes of a ticket's buckets are read and decoded at a time.
const SERVE_RUN_BYTES: u64 = 8 << 20;

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
        // Checks the output is here and has those buckets before anything is streamed.
        let runs = self
            .store
            .bucket_runs(&job, stage, partition, ticket.bucket..end, SERVE_RUN_BYTES)
            .map_err(status)?;
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let batches = futures::stream::iter(runs)
            .then(move |run| {
                let (store, metrics, job) = (store.clone(), metrics.clone(), job.clone());
                // Reading and decoding is file I/O and CPU: keep it off the async threads.
                async move {
                    tokio::task::spawn_blocking(move || {
                        let bytes = store.read_buckets_bytes(&job, stage, partition, run)?;
                        metrics.served(bytes.len() as u64);
                        decode_ipc_stream(bytes)
                    })
                    .await
                    .map_err(|e| Status::internal(format!("shuffle read task failed: {e}")))?
                    .map_err(status)
                }
            })
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(FlightError::from)
            .try_flatten();
        let stream = FlightDataEncoderBuilder::new()
            .build(batches)
            .map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(stream.boxed()))
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
