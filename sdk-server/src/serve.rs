//! The accept loop, for plain HTTP and HTTPS alike, with the limits a server facing hostile
//! clients needs:
//!
//! - at most `max_connections` at once: past that a new connection is closed at once, so
//!   descriptors are never exhausted and `/health` and heartbeats keep being answered once
//!   the header timeout has cleared the idle ones;
//! - a request's headers must arrive within `header_read_timeout` (hyper's own timer), and
//!   its body within the server's body timeout (a router layer, e.g. tower-http's
//!   `RequestBodyTimeoutLayer`);
//! - a connection that moves no byte either way for `idle_timeout` is closed: a client
//!   trickling nothing, or one that stopped reading its answer or its event stream (a
//!   watcher that fell behind: it reconnects and gets the current set);
//! - the TLS handshake must finish within `header_read_timeout` too;
//! - on shutdown, requests in flight get `shutdown_grace` to finish.
//!
//! Each request carries its peer's address (axum's `ConnectInfo<SocketAddr>`), and a
//! connection may be upgraded (WebSockets); an upgraded connection keeps its idle timeout.
//!
//! Why not `axum::serve`: it runs hyper without a timer, so no header timeout applies, and
//! it has no connection limit.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{response::Response, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
    time::{Instant, Sleep},
};

/// Connection limits and timeouts of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once (default 1,000: below the usual 1,024 descriptors).
    pub max_connections: usize,
    /// Time for a request's headers, and for a TLS handshake (default 10 s).
    pub header_read_timeout: Duration,
    /// A connection moving no byte either way this long is closed (default 90 s: longer
    /// than the longest long poll, 60 s, and than the events' keep-alive, 15 s).
    pub idle_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What [`serve`] serves: an axum `Router` (each request carries its peer's address, as
/// axum's `ConnectInfo<SocketAddr>`), or an app that makes a service for each connection
/// from its peer's address (it then needs no extension in each request).
pub trait App: Clone + Send + 'static {
    /// The body of its answers (axum's `Body` for a `Router`; an app that streams another
    /// body answers with it as it is, not boxed again).
    type Body: axum::body::HttpBody<Data = axum::body::Bytes, Error: Into<axum::BoxError>>
        + Send
        + 'static;

    /// The service of one connection.
    type Service: tower::Service<
            http::Request<Incoming>,
            Response = http::Response<Self::Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static;

    /// The service for a connection from `peer`.
    fn for_peer(&self, peer: SocketAddr) -> Self::Service;
}

impl App for Router {
    type Body = axum::body::Body;
    type Service = WithPeer;

    fn for_peer(&self, peer: SocketAddr) -> WithPeer {
        WithPeer {
            router: self.clone(),
            peer,
        }
    }
}

/// A router whose requests carry their peer's address (axum's `ConnectInfo`).
#[derive(Clone, Debug)]
pub struct WithPeer {
    router: Router,
    peer: SocketAddr,
}

impl tower::Service<http::Request<Incoming>> for WithPeer {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<http::Request<Incoming>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<http::Request<Incoming>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut request: http::Request<Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        self.router.call(request)
    }
}

/// Serves `router` (an axum `Router`, or any [`App`]) on `listener` (over TLS when `tls` is
/// given) until `shutdown` completes, then lets the requests in flight finish within
/// `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    router: impl App,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = crate::drain::Drain::default();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let builder = Arc::new(connection_builder(&limits));
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if refused_logged.elapsed() >= Duration::from_secs(10) {
                tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached; closing new connections");
                refused_logged = Instant::now();
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            io: IdleTimeout::new(tcp, limits.idle_timeout),
            peer,
            handshake_timeout: limits.header_read_timeout,
        };
        let (acceptor, router, ticket, builder) = (
            acceptor.clone(),
            router.clone(),
            graceful.ticket(),
            builder.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            connection.serve(acceptor, router, ticket, &builder).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the shutdown grace period; closing them");
    }
    Ok(())
}

/// HTTP/1.1 with the header timeout, and HTTP/2 with keep-alive pings and a stream limit.
fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(256);
    builder
}

/// One accepted connection.
struct Connection {
    io: IdleTimeout<tokio::net::TcpStream>,
    peer: std::net::SocketAddr,
    /// How long a TLS handshake may take.
    handshake_timeout: Duration,
}

impl Connection {
    /// Serves it (after the TLS handshake, when there is an acceptor) until it closes or
    /// the shutdown closes it; the peer's address goes into each request's extensions.
    async fn serve(
        self,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        router: impl App,
        ticket: crate::drain::Ticket,
        builder: &auto::Builder<TokioExecutor>,
    ) {
        let peer = self.peer;
        let service = TowerToHyperService::new(router.for_peer(peer));
        let result = match acceptor {
            None => {
                let connection =
                    builder.serve_connection_with_upgrades(TokioIo::new(self.io), service);
                ticket.watch(connection.into_owned()).await
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.handshake_timeout, acceptor.accept(self.io));
                let tls = match handshake.await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                ticket.watch(connection.into_owned()).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `idle`
/// while someone waits on it. The timer is only polled by a read or write that is pending,
/// so a connection whose request is being handled (a long poll) is not charged for the
/// server's own wait.
///
/// Moving bytes only notes the time; the timer is moved to the last movement when it
/// fires. Resetting it on every read and write instead re-registered it with tokio's timer
/// wheel three times a request (~900 instructions of a gateway's request).
#[derive(Debug)]
pub(crate) struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    /// When a byte last moved.
    moved: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    pub(crate) fn new(inner: S, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            moved: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progress(&mut self) {
        self.moved = Instant::now();
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let due = self.moved + self.idle;
            if due <= self.deadline.deadline() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data moved on the connection for the idle timeout",
                ));
            }
            // Bytes moved since the timer was set: it runs on from the last of them.
            self.deadline.as_mut().reset(due);
        }
        Ok(())
    }

    /// Notes progress when `result` moved bytes, and arms the timer when it is pending.
    fn account<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
        moved: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Ok(value)) => {
                if moved(&value) {
                    self.progress();
                }
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.check(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let after = buf.filled().len();
        this.account(cx, result, |()| after > before)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.account(cx, result, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.account(cx, result, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.account(cx, result, |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_cut_off_after_the_idle_timeout() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut ours = IdleTimeout::new(ours, Duration::from_secs(90));
        // Writes go through while the peer reads...
        ours.write_all(&[1; 1024]).await.expect("room");
        let mut buf = vec![0; 1024];
        theirs.read_exact(&mut buf).await.expect("read");
        // ...and stall once it stops: 89 s of waiting is allowed, 90 s is not.
        ours.write_all(&[2; 1024]).await.expect("room again");
        let stalled = tokio::time::timeout(Duration::from_secs(89), ours.write_all(&[3; 1]));
        assert!(stalled.await.is_err(), "still waiting at 89 s");
        let err = ours.write_all(&[3; 1]).await.expect_err("cut off");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_moving_either_way_keep_a_connection_open() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut ours = IdleTimeout::new(ours, Duration::from_secs(10));
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(8)).await;
            theirs.write_all(b"x").await.expect("write");
            let mut byte = [0; 1];
            ours.read_exact(&mut byte)
                .await
                .expect("8 s apart is not idle");
        }
        let mut byte = [0; 1];
        let err = ours.read_exact(&mut byte).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
