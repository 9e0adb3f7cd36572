//! [`NetError`]: a credential, certificate or address that cannot be used, named with what to
//! do about it.

use std::path::PathBuf;

/// What can be wrong with a process's security or network settings.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A token or certificate file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A token that cannot be used.
    #[error("{what}: {problem}")]
    BadToken { what: String, problem: String },
    /// A certificate, key or CA that cannot be used.
    #[error("{what} {}: {problem}", path.display())]
    BadPem {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// TLS settings that do not fit together.
    #[error("TLS: {0}")]
    Tls(String),
    /// A URL that cannot be dialed as given.
    #[error("{url}: {problem}")]
    BadUrl { url: String, problem: String },
    /// A server that would expose an unauthenticated port beyond this host.
    #[error(
        "refusing to serve {address} without a token: anyone who can reach it could run jobs, read files and stop workers. Give --token-file (or QUIVER_TOKEN), bind a loopback address, or pass --insecure if this network is trusted"
    )]
    InsecureBind { address: String },
    /// A listener could not be bound.
    #[error("cannot bind {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// Result with [`NetError`] as the default error.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
