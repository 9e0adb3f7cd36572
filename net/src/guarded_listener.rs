//! [`GuardedListener`]: the accept loop every Quiver server uses (gRPC, Flight and the
//! dashboard), so that no caller can exhaust a process by connecting:
//!
//! - **A connection cap.** At most `max_connections` connections are served at once; one more
//!   is closed as soon as it is accepted (the client sees a reset at once, rather than hanging
//!   in the kernel's backlog).
//! - **An idle timeout.** A connection that sends nothing for `idle_timeout` is closed — also
//!   one that never finishes its TLS handshake. Quiver's own clients ping every 30 s (see
//!   [`crate::dial`]), so only abandoned connections reach it.
//! - **Backoff on accept errors.** When the process runs out of file descriptors (`EMFILE`),
//!   `accept` fails at once, every time; retrying in a loop burns a core. The loop sleeps
//!   instead (50 ms, doubling to 1 s) and logs once a minute, and resumes when descriptors free
//!   up.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

use crate::error::{NetError, Result};

/// How often a repeated accept problem is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Bounds on one server's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// A listening socket with a connection cap, idle timeouts and a backing-off accept loop.
pub struct GuardedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
    backoff: Duration,
    warned_full: Option<Instant>,
    warned_error: Option<Instant>,
}

impl GuardedListener {
    /// Binds `address`.
    pub async fn bind(address: SocketAddr, limits: ConnectionLimits) -> Result<Self> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| NetError::Bind {
                address: address.to_string(),
                source,
            })?;
        Ok(Self::new(listener, limits))
    }

    /// Guards an already bound `listener`.
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        GuardedListener {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            backoff: MIN_BACKOFF,
            warned_full: None,
            warned_error: None,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.limits.max_connections.max(1) - self.permits.available_permits()
    }

    /// The next connection to serve. Never fails: problems are logged and waited out.
    pub async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = MIN_BACKOFF;
                    match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let _ = stream.set_nodelay(true);
                            return (
                                GuardedStream::new(stream, permit, self.limits.idle_timeout),
                                peer,
                            );
                        }
                        Err(_) => {
                            if due(&mut self.warned_full) {
                                warn!(
                                    max_connections = self.limits.max_connections,
                                    %peer,
                                    "connection limit reached; closing new connections until some end (raise --max-connections if this load is expected)"
                                );
                            }
                            drop(stream);
                        }
                    }
                }
                Err(e) if transient(&e) => {}
                Err(e) => {
                    if due(&mut self.warned_error) {
                        warn!(error = %e, open = self.open_connections(), "cannot accept connections (out of file descriptors?); backing off");
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The accepted connections as a stream, for tonic's `serve_with_incoming`. It never
    /// yields an error (tonic would retry an error at once, spinning).
    pub fn into_incoming(
        self,
    ) -> impl Stream<Item = std::result::Result<GuardedStream, io::Error>> + Send + 'static {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.accept().await;
            Some((Ok(stream), listener))
        })
    }
}

/// Errors that concern one connection only, not the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Whether a rate-limited warning is due now (and marks it given).
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

/// An accepted connection: closed when its peer stays silent for the idle timeout, and
/// counted against the connection cap until dropped.
pub struct GuardedStream {
    inner: TcpStream,
    idle_timeout: Duration,
    last_read: Instant,
    idle: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn new(inner: TcpStream, permit: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        GuardedStream {
            inner,
            idle_timeout,
            last_read: now,
            idle: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            _permit: permit,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.last_read = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // Nothing to read: wait for data or for the idle deadline, whichever is first.
                // The timer moves only when it fires early (data arrived since it was set),
                // not on every read.
                loop {
                    let deadline = self.last_read + self.idle_timeout;
                    if self.idle.deadline() != deadline {
                        self.idle.as_mut().reset(deadline);
                    }
                    match self.idle.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) if Instant::now() >= deadline => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "connection idle for longer than the server's idle timeout",
                            )));
                        }
                        Poll::Ready(()) => {}
                    }
                }
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_idle_ones_time_out() {
        let limits = ConnectionLimits {
            max_connections: 2,
            idle_timeout: Duration::from_millis(300),
        };
        let mut listener = GuardedListener::bind("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..2 {
                held.push(listener.accept().await.0);
            }
            (listener, held)
        });
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let (mut listener, held) = server.await.unwrap();
        assert_eq!(listener.open_connections(), 2);

        // A third connection is accepted and closed at once while two are held.
        let third = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 1];
            c.read(&mut buf).await
        });
        let accept_next = tokio::spawn(async move { listener.accept().await });
        let read = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("the refused connection is closed, not left hanging")
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

        // A held connection whose peer stays silent ends with a timeout on read.
        let mut idle = held.into_iter().next().unwrap();
        let mut buf = [0u8; 8];
        let err = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .expect("idle read ends")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(idle);
        accept_next.abort();
    }

    #[tokio::test]
    async fn a_talking_peer_is_not_idle() {
        let limits = ConnectionLimits {
            max_connections: 4,
            idle_timeout: Duration::from_millis(400),
        };
        let mut listener = GuardedListener::bind("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            for _ in 0..8 {
                c.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
        let (mut stream, _) = listener.accept().await;
        let mut got = 0;
        let mut buf = [0u8; 8];
        while got < 8 {
            got += stream
                .read(&mut buf)
                .await
                .expect("no idle timeout while data flows");
        }
        client.await.unwrap();
    }
}
