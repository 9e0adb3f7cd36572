//! [`ClientOptions`]: what a driver presents to a cluster (its token) and how it checks whom
//! it talks to (TLS), how long it rides out a lost coordinator, and [`ClientArgs`], the same
//! as command-line flags for your own drivers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use quiver_net::flags::parse_duration;
use quiver_net::{CallCredentials, Dialer, TlsSettings, Token};

use crate::error::{Error, Result};

/// A driver's credentials, TLS settings and reconnect timeout.
///
/// ```
/// # fn run() -> quiver::Result<()> {
/// let options = quiver::ClientOptions::new()
///     .token_file("/etc/quiver/client-token")
///     .tls_ca("/etc/quiver/ca.pem");
/// // let client = quiver::Client::connect_with("https://coordinator:50050", options).await?;
/// # let _ = options; Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ClientOptions {
    token: Option<String>,
    token_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_identity: Option<(PathBuf, PathBuf)>,
    reconnect_timeout: Option<Duration>,
    source_address: Option<IpAddr>,
}

/// How long a [`crate::JobHandle`] keeps reconnecting to a coordinator it lost, unless the
/// options say otherwise.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_identity", &self.tls_identity)
            .field("reconnect_timeout", &self.reconnect_timeout_or_default())
            .field("source_address", &self.source_address)
            .finish()
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl ClientOptions {
    /// No token, no TLS: a cluster on this host without a token.
    pub fn new() -> Self {
        ClientOptions::default()
    }

    /// The settings the environment gives, as every Quiver binary reads them:
    /// `QUIVER_TOKEN_FILE` (or `QUIVER_TOKEN`, the token itself), `QUIVER_TLS_CA`, and
    /// `QUIVER_TLS_CERT` with `QUIVER_TLS_KEY` for mutual TLS,
    /// `QUIVER_RECONNECT_TIMEOUT` (e.g. `90s`) and `QUIVER_SOURCE_ADDRESS` (an IP address of
    /// this host). An unreadable value is ignored with a warning.
    pub fn from_env() -> Self {
        let mut options = ClientOptions {
            token: std::env::var("QUIVER_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
            token_file: env_path("QUIVER_TOKEN_FILE"),
            tls_ca: env_path("QUIVER_TLS_CA"),
            tls_identity: None,
            reconnect_timeout: std::env::var("QUIVER_RECONNECT_TIMEOUT")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| match parse_duration(&v) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!("QUIVER_RECONNECT_TIMEOUT={v:?} is ignored: {e}");
                        None
                    }
                }),
            source_address: std::env::var("QUIVER_SOURCE_ADDRESS")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| match v.trim().parse() {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::warn!("QUIVER_SOURCE_ADDRESS={v:?} is ignored: {e}");
                        None
                    }
                }),
        };
        if let (Some(cert), Some(key)) = (env_path("QUIVER_TLS_CERT"), env_path("QUIVER_TLS_KEY")) {
            options.tls_identity = Some((cert, key));
        }
        options
    }

    /// Presents `token` on every call (as `authorization: Bearer <token>`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Reads the token from `path` when connecting (it wins over [`ClientOptions::token`]).
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// Verifies `https://` servers against the CA bundle (PEM) in `path`; needed for every
    /// `https://` URL.
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// Presents this certificate chain and key (PEM) to servers that require client
    /// certificates (mutual TLS).
    pub fn tls_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_identity = Some((cert.into(), key.into()));
        self
    }

    /// How long a job handle keeps trying to reconnect when the connection to the
    /// coordinator breaks while it follows a job (default [`DEFAULT_RECONNECT_TIMEOUT`]; zero:
    /// fail at once). A coordinator restarting with its state dir, or a network blip, is
    /// then not the driver's failure.
    pub fn reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect_timeout = Some(timeout);
        self
    }

    /// Connects to the coordinator and the workers from `address`, an IP address of this
    /// host (on a host with several networks, the one the cluster expects). By default the
    /// system chooses.
    pub fn source_address(mut self, address: IpAddr) -> Self {
        self.source_address = Some(address);
        self
    }

    /// The reconnect timeout in effect.
    pub(crate) fn reconnect_timeout_or_default(&self) -> Duration {
        self.reconnect_timeout.unwrap_or(DEFAULT_RECONNECT_TIMEOUT)
    }

    /// The token these options present, read from its file if one was given.
    pub(crate) fn resolve_token(&self) -> Result<Option<Token>> {
        let config = |e: quiver_net::NetError| Error::Config(e.to_string());
        match (&self.token_file, &self.token) {
            (Some(path), _) => Token::from_file(path).map(Some).map_err(config),
            (None, Some(t)) => Token::new(t, "the client token").map(Some).map_err(config),
            (None, None) => Ok(None),
        }
    }

    /// Reads the token and TLS files these options name, and describes the settings without
    /// secrets (what `quiver --check-config` prints). Fails as connecting would on a missing
    /// or bad file.
    pub fn describe(&self) -> Result<Vec<(&'static str, String)>> {
        self.dialer()?;
        let path =
            |p: Option<&PathBuf>| p.map_or_else(|| "-".to_string(), |p| p.display().to_string());
        let token = match (&self.token_file, &self.token) {
            (Some(file), _) => format!("from file {}", file.display()),
            (None, Some(_)) => "given (QUIVER_TOKEN)".into(),
            (None, None) => "none".into(),
        };
        Ok(vec![
            ("token", token),
            ("tls ca", path(self.tls_ca.as_ref())),
            ("tls cert", path(self.tls_identity.as_ref().map(|(c, _)| c))),
            (
                "reconnect timeout",
                format!("{:?}", self.reconnect_timeout_or_default()),
            ),
            (
                "source address",
                self.source_address
                    .map_or_else(|| "-".to_string(), |a| a.to_string()),
            ),
        ])
    }

    /// How a client with these options dials the coordinator and the workers.
    pub(crate) fn dialer(&self) -> Result<Dialer> {
        let config = |e: quiver_net::NetError| Error::Config(e.to_string());
        let (cert, key) = match &self.tls_identity {
            Some((c, k)) => (Some(c), Some(k)),
            None => (None, None),
        };
        let tls = TlsSettings::from_files(cert, key, self.tls_ca.as_ref(), None).map_err(config)?;
        let token = self.resolve_token()?;
        let credentials = CallCredentials::token(token.as_ref()).map_err(config)?;
        let dialer = Dialer::new(tls, credentials);
        Ok(match self.source_address {
            Some(address) => dialer.with_source_address(address),
            None => dialer,
        })
    }
}

/// The client flags every Quiver driver takes, with the same environment variables as the
/// binaries. Flatten them into your own driver's arguments:
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Args {
///     /// The coordinator's URL.
///     #[arg(long, env = "QUIVER_COORDINATOR", default_value = "http://127.0.0.1:50050")]
///     coordinator: String,
///     #[command(flatten)]
///     client: quiver::ClientArgs,
/// }
///
/// let args = Args::parse_from(["my-job", "--token-file", "/etc/quiver/token"]);
/// let options = args.client.options();
/// # let _ = options;
/// ```
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// File holding the client token; `QUIVER_TOKEN` may hold the token itself instead.
    #[arg(long, env = "QUIVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA bundle (PEM) that signed the cluster's certificates; needed for https:// URLs.
    #[arg(long, env = "QUIVER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for clusters that require one (mutual TLS).
    #[arg(long, env = "QUIVER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "QUIVER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long to keep reconnecting to a coordinator lost while following a job (e.g.
    /// `60s`, the default; `0s` fails at once).
    #[arg(long, env = "QUIVER_RECONNECT_TIMEOUT", value_parser = parse_duration)]
    pub reconnect_timeout: Option<Duration>,
    /// The local IP address to connect from (on a host with several networks); by default
    /// the system chooses.
    #[arg(long, env = "QUIVER_SOURCE_ADDRESS")]
    pub source_address: Option<IpAddr>,
}

impl ClientArgs {
    /// As [`ClientOptions`]: the environment's settings ([`ClientOptions::from_env`], which
    /// also reads `QUIVER_TOKEN`), with the flags given on top.
    pub fn options(&self) -> ClientOptions {
        let mut options = ClientOptions::from_env();
        if let Some(f) = &self.token_file {
            options = options.token_file(f);
        }
        if let Some(ca) = &self.tls_ca {
            options = options.tls_ca(ca);
        }
        if let (Some(c), Some(k)) = (&self.tls_cert, &self.tls_key) {
            options = options.tls_identity(c, k);
        }
        if let Some(t) = self.reconnect_timeout {
            options = options.reconnect_timeout(t);
        }
        if let Some(a) = self.source_address {
            options = options.source_address(a);
        }
        options
    }
}
