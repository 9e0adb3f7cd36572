//! Flags every Quiver server process shares (`quiver-coordinator`, `quiver-worker` and users'
//! own worker binaries), as clap argument groups to flatten into a binary's arguments, and the
//! parser for duration flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
use crate::guarded_listener::ConnectionLimits;
use crate::tls::TlsSettings;

/// Longest duration a flag accepts: anything longer is a typo, and would overflow deadlines.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses a duration flag: seconds (`5`, `0.5`) or a number with a unit (`500ms`, `30s`,
/// `2m`, `1h`). Negative, infinite, NaN and absurdly long values are errors, never panics.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("{text:?} is not a duration: use seconds (e.g. 5 or 0.5) or 500ms, 30s, 2m, 1h")
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "{text:?} is not a duration: it must be a finite number, zero or more"
        ));
    }
    let secs = value * scale;
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{text:?} is longer than the 10 years a duration may be"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// TLS flags of a process that serves and dials.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// This process's TLS certificate chain (PEM). Its servers then speak TLS only (their URLs
    /// are https://), and it presents the certificate to servers that require client
    /// certificates.
    #[arg(long, env = "QUIVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "QUIVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that signed the certificates of the servers this process dials;
    /// required to dial https:// URLs.
    #[arg(long, env = "QUIVER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Mutual TLS: this process's servers accept only clients with a certificate signed by
    /// this CA bundle (PEM).
    #[arg(long, env = "QUIVER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Reads and checks the files.
    pub fn load(&self) -> Result<TlsSettings> {
        TlsSettings::from_files(
            self.tls_cert.as_ref(),
            self.tls_key.as_ref(),
            self.tls_ca.as_ref(),
            self.tls_client_ca.as_ref(),
        )
    }
}

/// Connection bounds of a server process.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenerArgs {
    /// Connections each server of this process serves at once; more are closed on accept.
    #[arg(long, env = "QUIVER_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Close a connection whose peer sends nothing for this long (Quiver's own clients ping
    /// every 30 s).
    #[arg(long, env = "QUIVER_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
}

impl ListenerArgs {
    /// As [`ConnectionLimits`].
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections.max(1),
            idle_timeout: self.idle_timeout.max(Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        for bad in ["inf", "-1", "NaN", "infs", "1e300", "five", ""] {
            assert!(parse_duration(bad).is_err(), "{bad} must be refused");
        }
    }
}
