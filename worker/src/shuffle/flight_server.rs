//! [`ShuffleFlightService`]: serves this worker's map output buckets (and collect results) to
//! other workers and drivers with Arrow Flight `DoGet`. The ticket is a `ShuffleTicket`
//! protobuf naming job, stage, map partition and bucket, with the coordinator's signed read
//! grant for that job and stage; a fetch is admitted by [`ClusterTrust`] (a cluster token, then
//! the grant) before any file is read. Every other Flight RPC is unimplemented.

use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
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
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let stage = StageId(ticket.stage_id);
        // Reading and decoding a bucket is file I/O and CPU: keep it off the async threads.
        let batches = tokio::task::spawn_blocking(move || {
            let bytes =
                store.read_bucket_bytes(&job, stage, ticket.map_partition, ticket.bucket)?;
            metrics.served(bytes.len() as u64);
            decode_ipc_stream(bytes)
        })
        .await
        .map_err(|e| Status::internal(format!("shuffle read task failed: {e}")))?
        .map_err(|e| match e {
            crate::error::WorkerError::MissingMapOutput { .. } => Status::not_found(e.to_string()),
            other => Status::internal(other.to_string()),
        })?;
        let stream = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
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
