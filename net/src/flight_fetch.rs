//! Fetching buckets of one stored stage output over Arrow Flight — what a worker does to read
//! its shuffle input from a peer, and what a driver does to read a job's results.
//!
//! [`PeerChannels`] keeps one HTTP/2 channel per peer address; [`fetch_bucket`] sends the typed
//! [`pb::ShuffleTicket`] as the Flight ticket and yields the batches. Nothing here knows where
//! the batches go or what a fetch failure means for the job: the worker's shuffle reader and
//! the SDK's job handle decide that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use arrow_flight::{FlightClient, Ticket, flight_service_client::FlightServiceClient};
use prost::Message;
use quiver_proto::{MAX_MESSAGE_BYTES, v1 as pb};

use crate::call_credentials::AuthChannel;
use crate::dial::Dialer;

/// A fetch that receives nothing for this long fails, naming the worker, so that a frozen
/// worker (its socket open, its process stopped) cannot hang a task or a driver forever.
pub const FETCH_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections to workers, one HTTP/2 channel per address, shared by every fetch of this
/// process. Each carries the credentials and TLS settings of the [`Dialer`] it was made with.
#[derive(Default)]
pub struct PeerChannels {
    dialer: Dialer,
    channels: Mutex<HashMap<String, AuthChannel>>,
}

impl PeerChannels {
    /// Channels dialed by `dialer`.
    pub fn new(dialer: Dialer) -> Self {
        PeerChannels {
            dialer,
            channels: Mutex::default(),
        }
    }

    /// The channel to `address`, created on first use (connections are made lazily).
    pub fn get(&self, address: &str) -> Result<AuthChannel, String> {
        // A std mutex: the map is only looked up or extended, never held across an await.
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(address) {
            return Ok(c.clone());
        }
        let channel = self.dialer.lazy(address, None).map_err(|e| e.to_string())?;
        map.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}

/// The Flight ticket bytes of `ticket` (Flight tickets are opaque bytes by protocol; inside
/// Quiver they are always an encoded [`pb::ShuffleTicket`]).
pub fn encode_ticket(ticket: &pb::ShuffleTicket) -> Ticket {
    Ticket {
        ticket: ticket.encode_to_vec().into(),
    }
}

/// The [`pb::ShuffleTicket`] in Flight ticket bytes, as [`encode_ticket`] wrote them.
pub fn decode_ticket(bytes: &[u8]) -> Result<pb::ShuffleTicket, prost::DecodeError> {
    pb::ShuffleTicket::decode(bytes)
}

/// Fetches the buckets a ticket names (one, or a run) of one stored output over Flight. `bearer` replaces the channel's own
/// credential for this call (a driver presents the ticket's grant, see
/// [`crate::grant_bearer`]). Errors are messages for the caller to wrap with what it was
/// fetching.
pub async fn fetch_bucket(
    peers: &PeerChannels,
    address: &str,
    ticket: &pb::ShuffleTicket,
    bearer: Option<&str>,
) -> Result<impl futures::Stream<Item = Result<RecordBatch, String>> + use<>, String> {
    let channel = peers.get(address)?;
    let inner = FlightServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut client = FlightClient::new_from_inner(inner);
    if let Some(b) = bearer {
        client
            .add_header("authorization", &format!("Bearer {b}"))
            .map_err(|e| e.to_string())?;
    }
    let request = client.do_get(encode_ticket(ticket));
    let stream = tokio::time::timeout(FETCH_IDLE_TIMEOUT, request)
        .await
        .map_err(|_| format!("no answer within {FETCH_IDLE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let stream = tokio_stream::StreamExt::timeout(stream, FETCH_IDLE_TIMEOUT);
    Ok(futures::StreamExt::map(stream, |item| match item {
        Ok(Ok(batch)) => Ok(batch),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no data for {FETCH_IDLE_TIMEOUT:?}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_ticket_survives_the_flight_ticket_bytes() {
        let ticket = pb::ShuffleTicket {
            job_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
            stage_id: 4,
            map_partition: 7,
            bucket: 2,
            bucket_count: 3,
            grant: Some(pb::ReadGrant {
                job_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
                stage_id: 4,
                expires_at_ms: 123,
                signature: vec![1, 2, 3],
            }),
        };
        let bytes = encode_ticket(&ticket).ticket;
        assert_eq!(decode_ticket(&bytes).expect("decodes"), ticket);
        assert!(decode_ticket(&[0xff, 0xff, 0xff]).is_err());
    }
}
