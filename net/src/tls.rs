//! [`TlsSettings`]: a process's certificates, from PEM files, as the TLS configurations its
//! servers and clients use. rustls underneath (on ring), no OpenSSL.
//!
//! - `--tls-cert` / `--tls-key`: this process's certificate chain and key. Its servers speak
//!   TLS with them, and it presents them as its client certificate when it dials a server that
//!   wants one (mutual TLS).
//! - `--tls-ca`: the CA bundle that signed the servers this process dials; needed for every
//!   `https://` URL.
//! - `--tls-client-ca`: this process's servers require a client certificate signed by it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::{NetError, Result};

/// Concurrent calls one client connection may have open on a Quiver server.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// TLS material of one process (all of it optional).
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// Certificate chain and private key, PEM.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// CA bundle for servers this process dials, PEM.
    ca: Option<Vec<u8>>,
    /// CA bundle client certificates must chain to, PEM.
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("serves_tls", &self.serves_tls())
            .field("dials_tls", &self.dials_tls())
            .field("requires_client_certificates", &self.client_ca.is_some())
            .finish()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| NetError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| NetError::BadPem {
            what,
            path: path.to_path_buf(),
            problem: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(NetError::BadPem {
            what,
            path: path.to_path_buf(),
            problem: "holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

/// A CA bundle's PEM, checked to hold certificates.
fn read_ca(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    let pem = read(what, path)?;
    certificates(what, path, &pem)?;
    Ok(pem)
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| NetError::BadPem {
        what: "TLS key",
        path: path.to_path_buf(),
        problem: format!("not a PEM private key: {e}"),
    })
}

impl TlsSettings {
    /// No TLS: plaintext servers, `http://` URLs only.
    pub fn none() -> Self {
        TlsSettings::default()
    }

    /// Reads and checks the files given (each may be absent).
    pub fn from_files(
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
        ca: Option<&PathBuf>,
        client_ca: Option<&PathBuf>,
    ) -> Result<Self> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => {
                let cert_pem = read("TLS certificate", cert)?;
                let key_pem = read("TLS key", key)?;
                let chain = certificates("TLS certificate", cert, &cert_pem)?;
                let key_der = private_key(key, &key_pem)?;
                // Building a rustls config checks that the key belongs to the certificate.
                server_config(chain, key_der).map_err(|e| NetError::BadPem {
                    what: "TLS key",
                    path: key.clone(),
                    problem: format!("does not fit certificate {}: {e}", cert.display()),
                })?;
                Some((cert_pem, key_pem))
            }
            (None, None) => None,
            (Some(_), None) => return Err(NetError::Tls("--tls-cert needs --tls-key".into())),
            (None, Some(_)) => return Err(NetError::Tls("--tls-key needs --tls-cert".into())),
        };
        let ca = ca.map(|path| read_ca("TLS CA", path)).transpose()?;
        let client_ca = client_ca
            .map(|path| read_ca("TLS client CA", path))
            .transpose()?;
        if client_ca.is_some() && identity.is_none() {
            return Err(NetError::Tls(
                "--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key: client certificates are checked only on a TLS server".into(),
            ));
        }
        Ok(TlsSettings {
            identity,
            ca,
            client_ca,
        })
    }

    /// Whether this process's servers speak TLS.
    pub fn serves_tls(&self) -> bool {
        self.identity.is_some()
    }

    /// Whether this process can dial `https://` servers.
    pub fn dials_tls(&self) -> bool {
        self.ca.is_some()
    }

    /// Whether this process's servers require client certificates.
    pub fn requires_client_certificates(&self) -> bool {
        self.client_ca.is_some()
    }

    /// `https` when this process serves TLS, else `http`: the scheme of the URLs it advertises.
    pub fn scheme(&self) -> &'static str {
        if self.serves_tls() { "https" } else { "http" }
    }

    /// The gRPC server's TLS configuration, if it serves TLS.
    pub fn grpc_server(&self) -> Option<ServerTlsConfig> {
        let (cert, key) = self.identity.as_ref()?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        Some(config)
    }

    /// A gRPC server builder as every Quiver server starts from: Nagle off, at most
    /// [`MAX_STREAMS_PER_CONNECTION`] concurrent calls a connection, and TLS when this process
    /// has a certificate.
    pub fn grpc_server_builder(&self) -> Result<tonic::transport::Server> {
        let builder = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
        match self.grpc_server() {
            Some(tls) => builder
                .tls_config(tls)
                .map_err(|e| NetError::Tls(e.to_string())),
            None => Ok(builder),
        }
    }

    /// The gRPC client's TLS configuration, if it can dial TLS. Presents this process's own
    /// certificate, when it has one, for servers that require client certificates.
    pub fn grpc_client(&self) -> Option<ClientTlsConfig> {
        let ca = self.ca.as_ref()?;
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        Some(config)
    }

    /// A rustls server configuration for an HTTP/1.1 server (the dashboard), if this process
    /// serves TLS. It asks for no client certificate: browsers authenticate with the token.
    pub fn http_server(&self) -> Result<Option<Arc<rustls::ServerConfig>>> {
        let Some((cert, key)) = &self.identity else {
            return Ok(None);
        };
        let chain = certificates("TLS certificate", Path::new("--tls-cert"), cert)?;
        let key = private_key(Path::new("--tls-key"), key)?;
        let mut config = server_config(chain, key).map_err(|e| NetError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> std::result::Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
}
