//! [`TlsIncoming`]: TLS for HTTP/1.1 servers (the dashboard and `/metrics`). Connections come
//! from a [`GuardedListener`]; each handshake runs in its own task, with a deadline, so a
//! client that connects and stalls holds up no one else. (tonic does the same for gRPC
//! servers itself.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::guarded_listener::{GuardedListener, GuardedStream};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections whose TLS handshake finished.
pub struct TlsIncoming {
    ready: mpsc::Receiver<(TlsStream<GuardedStream>, SocketAddr)>,
    local: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl TlsIncoming {
    /// Serves TLS with `config` on `listener`.
    pub fn new(
        mut listener: GuardedListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        // Bounded: when the server stops taking connections, handshakes wait, then accepting.
        let (tx, ready) = mpsc::channel(64);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (stream, peer) = listener.accept().await;
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsIncoming {
            ready,
            local,
            accept_loop,
        })
    }

    /// The next connection with a finished handshake.
    pub async fn accept(&mut self) -> (TlsStream<GuardedStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop holds a sender for as long as it runs, and runs until dropped.
            None => std::future::pending().await,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}
