//! [`Dialer`]: how a process connects to another Quiver process. Every client channel in
//! Quiver — driver to coordinator, worker to coordinator, coordinator to worker, worker to
//! worker, driver to worker — is made here, so all of them get the same rules:
//!
//! - `https://` is dialed with TLS and needs a CA (`--tls-ca`); without one it is an error,
//!   never a plaintext connection. `http://` while a CA is configured is an error too: the
//!   user asked for TLS.
//! - HTTP/2 keepalive pings every [`KEEPALIVE_INTERVAL`], even while idle, so that a server's
//!   idle timeout closes only connections whose peer is gone, and a dead peer is noticed.
//! - Every call carries the process's [`CallCredentials`].

use std::net::IpAddr;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::call_credentials::{AuthChannel, CallCredentials};
use crate::error::{NetError, Result};
use crate::tls::TlsSettings;

/// How often an idle connection is pinged (well under servers' idle timeout).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A process's way of dialing others: its TLS settings and its credentials. Cheap to clone.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: TlsSettings,
    credentials: CallCredentials,
    /// The local address outgoing connections are made from; `None`: the system chooses.
    source_address: Option<IpAddr>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("tls", &self.tls)
            .field("bearer", &self.credentials.has_bearer())
            .field("source_address", &self.source_address)
            .finish()
    }
}

impl Dialer {
    /// Dials with `tls` and presents `credentials` on every call.
    pub fn new(tls: TlsSettings, credentials: CallCredentials) -> Self {
        Dialer {
            tls,
            credentials,
            source_address: None,
        }
    }

    /// The same TLS settings with other credentials.
    pub fn with_credentials(&self, credentials: CallCredentials) -> Self {
        Dialer {
            credentials,
            ..self.clone()
        }
    }

    /// Connections made from the local address `address` (on a host with several
    /// interfaces, the one the peers expect or allow).
    pub fn with_source_address(mut self, address: IpAddr) -> Self {
        self.source_address = Some(address);
        self
    }

    /// The TLS settings.
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// The endpoint for `url`, with TLS as its scheme says, keepalive and a connect timeout.
    /// Callers add a request timeout where one fits.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint> {
        let bad = |problem: String| NetError::BadUrl {
            url: url.to_string(),
            problem,
        };
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| bad(format!("not a valid URL: {e}")))?;
        let endpoint = match endpoint.uri().scheme_str() {
            Some("https") => {
                let tls = self.tls.grpc_client().ok_or_else(|| {
                    bad("an https:// URL needs the CA that signed the server's certificate: pass --tls-ca PATH (or set QUIVER_TLS_CA; in the SDK: ClientOptions::tls_ca)".into())
                })?;
                endpoint
                    .tls_config(tls)
                    .map_err(|e| bad(format!("TLS settings: {e}")))?
            }
            Some("http") if self.tls.dials_tls() => {
                return Err(bad(
                    "a TLS CA is configured (--tls-ca / QUIVER_TLS_CA) but this URL is plaintext http://; use https://".into(),
                ));
            }
            Some("http") => endpoint,
            other => {
                return Err(bad(format!(
                    "unsupported scheme {}: use http:// or https://",
                    other.unwrap_or("(none)")
                )));
            }
        };
        if let (Some(source), Some(host)) = (self.source_address, endpoint.uri().host()) {
            // An address of the other family would be ignored silently when connecting.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = host.parse::<IpAddr>()
                && ip.is_ipv4() != source.is_ipv4()
            {
                return Err(bad(format!(
                    "the source address {source} (--source-address) cannot reach {ip}: one is IPv4, the other IPv6"
                )));
            }
        }
        Ok(endpoint
            .local_address(self.source_address)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true))
    }

    /// `channel` with this dialer's credentials on every call.
    pub fn authenticate(&self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, self.credentials.clone())
    }

    /// A channel to `url` that connects on first use (and reconnects after a failure).
    pub fn lazy(&self, url: &str, request_timeout: Option<Duration>) -> Result<AuthChannel> {
        let mut endpoint = self.endpoint(url)?;
        if let Some(t) = request_timeout {
            endpoint = endpoint.timeout(t);
        }
        Ok(self.authenticate(endpoint.connect_lazy()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_without_a_ca_is_refused_never_downgraded() {
        let plain = Dialer::default();
        let err = plain.endpoint("https://127.0.0.1:50050").unwrap_err();
        assert!(err.to_string().contains("--tls-ca"), "{err}");
        assert!(plain.endpoint("http://127.0.0.1:50050").is_ok());
        let err = plain.endpoint("ftp://127.0.0.1:1").unwrap_err();
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
    }

    #[test]
    fn a_source_address_of_the_other_family_is_an_error() {
        let v4 = Dialer::default().with_source_address("127.0.0.5".parse().unwrap());
        assert!(v4.endpoint("http://127.0.0.1:50050").is_ok());
        let err = v4.endpoint("http://[::1]:50050").unwrap_err().to_string();
        assert!(
            err.contains("--source-address") && err.contains("IPv6"),
            "{err}"
        );
    }
}
