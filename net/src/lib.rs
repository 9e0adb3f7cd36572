//! Quiver's network edge, shared by every process: who may call (tokens and their roles), over
//! what (TLS), how a server accepts connections without letting any caller exhaust it, how a
//! client dials, the read grants the coordinator signs for shuffle and result data, how stored
//! data is fetched from a worker, and which paths of the host a request may name.
//!
//! Nothing here knows jobs, plans or scheduling: the coordinator and the worker decide *which*
//! role each of their RPCs needs ([`AccessPolicy`]); this crate only enforces it.
//!
//! # Layout
//! - [`credentials`] — [`Token`] (a secret: loaded from a file or the environment, never
//!   printed), [`TokenDigest`] (what a server keeps and compares in constant time),
//!   [`ClusterTokens`] (the client and worker tokens of a coordinator).
//! - [`server_auth`] — [`AuthLayer`]: checks the `authorization: Bearer` header of every
//!   request against an [`AccessPolicy`] before any handler runs.
//! - [`call_credentials`] — [`CallCredentials`]: the headers a client adds to every call.
//! - [`tls`] — [`TlsSettings`]: certificates and CAs from PEM files, as tonic and rustls
//!   configurations.
//! - [`dial`] — [`Dialer`]: turns a URL into a channel with the right TLS, keepalive, timeouts
//!   and credentials; refuses `https://` without TLS settings.
//! - [`guarded_listener`] — [`GuardedListener`]: a connection cap, an idle timeout, and an
//!   accept loop that backs off when the process runs out of descriptors.
//! - [`tls_incoming`] — [`TlsIncoming`]: TLS handshakes for HTTP/1.1 servers, each in its
//!   own task.
//! - [`read_grant`] — [`GrantKey`]: signs and verifies read grants.
//! - [`flight_fetch`] — [`PeerChannels`] and [`fetch_bucket`]: reading one bucket of a stored
//!   output from a worker over Arrow Flight (shuffle input, job results).
//! - [`allowed_roots`] — [`AllowedRoots`]: which paths of this host a request may name as
//!   input or output (`--allowed-root`).
//! - [`advertise`] — [`AdvertiseAddr`]: the `HOST:PORT` peers dial, as opposed to the bound
//!   address (`--advertise-addr`).
//! - [`check_config`] — [`ConfigReport`]: what `--check-config` prints.
//! - [`metrics_text`] — [`MetricsText`]: the Prometheus text format both daemons' `/metrics`
//!   write (escaping, histograms).
//! - [`flags`] — the security and network flags every binary shares, and duration parsing.
//! - [`error`] — [`NetError`].

pub mod advertise;
pub mod allowed_roots;
pub mod call_credentials;
pub mod check_config;
pub mod credentials;
pub mod dial;
pub mod error;
pub mod flags;
pub mod flight_fetch;
pub mod guarded_listener;
#[cfg(feature = "logging")]
pub mod logging;
pub mod metrics_text;
pub mod read_grant;
pub mod server_auth;
pub mod tls;
pub mod tls_incoming;

pub use advertise::AdvertiseAddr;
pub use allowed_roots::{AllowedRoots, PathRefused};
pub use call_credentials::{AuthChannel, CallCredentials};
pub use check_config::ConfigReport;
pub use credentials::{ClusterTokens, Role, Token, TokenDigest, worker_id_for};
pub use dial::Dialer;
pub use error::{NetError, Result};
pub use flight_fetch::{
    FETCH_IDLE_TIMEOUT, PeerChannels, decode_ticket, encode_ticket, fetch_bucket,
};
pub use guarded_listener::{ConnectionLimits, GuardedListener, GuardedStream};
pub use metrics_text::{Histogram, MetricKind, MetricsText};
pub use read_grant::{GRANT_BEARER_PREFIX, GrantError, GrantKey, grant_bearer};
pub use server_auth::{AccessPolicy, AuthLayer, Caller};
pub use tls::TlsSettings;
pub use tls_incoming::TlsIncoming;
/// rustls, as Quiver's TLS uses it (for server configurations built from [`TlsSettings`]).
pub use tokio_rustls::rustls;
pub use tokio_rustls::server::TlsStream;

/// The metadata key a worker's own calls carry its session key in.
pub const WORKER_KEY_HEADER: &str = "quiver-worker-key";

/// Refuses to serve `address` without a token beyond this host, unless `insecure` says the
/// network is trusted (then warns). Every server process calls this before it binds.
pub fn check_exposure(
    has_token: bool,
    insecure: bool,
    address: std::net::SocketAddr,
) -> Result<()> {
    if has_token || address.ip().is_loopback() {
        return Ok(());
    }
    if insecure {
        tracing::warn!(%address, "serving without a token on a non-loopback address (--insecure): anyone who can reach it can run jobs, read files and stop workers");
        return Ok(());
    }
    Err(NetError::InsecureBind {
        address: address.to_string(),
    })
}

/// Whether a failed call never got an answer from the peer's service — nothing listens, the
/// connection broke mid-call (`Unknown`: "transport error"), or the peer is frozen — as
/// opposed to the peer refusing the call.
pub fn connection_failed(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
    )
}

/// Hex of `bytes` (lowercase), for keys that travel in headers and text fields.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    // The system RNG does not fail on Linux once booted; if it ever did, a zero key would be a
    // silent weakness, so this panics instead (at start, never mid-job).
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .unwrap_or_else(|_| panic!("the operating system's random number generator failed"));
    out
}
