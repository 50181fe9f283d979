//! Graceful shutdown of every connection: on shutdown each is asked to finish the request it
//! is serving and close, and the server waits until all have.
//!
//! Why not hyper-util's `GracefulShutdown`: it wraps each connection in a future that polls
//! a `watch::Receiver::changed` future on every poll of the connection, ~190 instructions a
//! poll, twice a request on a keep-alive connection (~380 of a gateway's request, callgrind
//! 2026-12-07). Here a connection reads one flag a poll, and hands over its task's waker
//! only when it changes (once: a task keeps its waker), so shutdown can wake it.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    task::{Context, Poll, Waker},
};

use tokio::sync::Notify;

/// The connections of one server, and whether it is shutting down.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    closing: AtomicBool,
    next_id: AtomicU64,
    /// Every live connection, with its task's waker once it has been polled.
    connections: Mutex<HashMap<u64, Option<Waker>>>,
    /// Told when the last connection of a closing server ends.
    emptied: Notify,
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, Option<Waker>>> {
        // A waker map is whole whatever a panicking holder did.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection hyper serves that can be asked to finish gracefully.
pub(crate) trait GracefulConnection: Future {
    /// Finishes the request in flight (if any), then closes.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, B, S, E> GracefulConnection
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl Drain {
    /// Counts a connection from now (as it is accepted, before its TLS handshake) until
    /// the ticket, or the connection it watches, is dropped.
    pub(crate) fn ticket(&self) -> Ticket {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.connections().insert(id, None);
        Ticket {
            shared: self.shared.clone(),
            id,
        }
    }

    /// Asks every connection to finish and waits until all have ended.
    pub(crate) async fn shutdown(self) {
        self.shared.closing.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self
            .shared
            .connections()
            .values()
            .flatten()
            .cloned()
            .collect();
        for waker in wakers {
            waker.wake();
        }
        loop {
            let emptied = self.shared.emptied.notified();
            if self.shared.connections().is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

/// A connection on the server's list: taken off when it ends (or its task is dropped).
#[derive(Debug)]
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    id: u64,
}

impl Ticket {
    /// Serves `connection` until it ends, asking it to finish when the server shuts down.
    pub(crate) fn watch<C: GracefulConnection>(self, connection: C) -> Watched<C> {
        Watched {
            connection,
            ticket: self,
            waker: None,
            asked: false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut connections = self.shared.connections();
        connections.remove(&self.id);
        if connections.is_empty() && self.shared.closing.load(Ordering::Acquire) {
            self.shared.emptied.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection that finishes gracefully when its server shuts down.
    pub(crate) struct Watched<C> {
        #[pin]
        connection: C,
        ticket: Ticket,
        // The waker last handed to the server's list.
        waker: Option<Waker>,
        // Whether the connection has been asked to finish.
        asked: bool,
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.asked {
            // The waker first, then the flag: a shutdown that sets the flag after this
            // read wakes the waker handed over here.
            if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                let waker = cx.waker().clone();
                if let Some(slot) = this.ticket.shared.connections().get_mut(&this.ticket.id) {
                    *slot = Some(waker.clone());
                }
                *this.waker = Some(waker);
            }
            if this.ticket.shared.closing.load(Ordering::Acquire) {
                *this.asked = true;
                this.connection.as_mut().graceful_shutdown();
            }
        }
        this.connection.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
        sync::oneshot,
    };

    use super::*;
    use crate::serve::{serve, Limits};

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n";

    /// A server whose one route answers once `release` is told, after telling `started`.
    async fn server(
        release: Arc<Notify>,
        started: Arc<Notify>,
    ) -> (
        std::net::SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let (release, started) = (release.clone(), started.clone());
                async move {
                    started.notify_one();
                    release.notified().await;
                    "done"
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = Limits {
            shutdown_grace: Duration::from_secs(20),
            ..Limits::default()
        };
        let task = tokio::spawn(serve(listener, router, None, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    }

    /// Reads until the peer closes (or `limit` passes): what arrived, and whether it closed.
    async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
        let mut got = Vec::new();
        let closed = tokio::time::timeout(limit, stream.read_to_end(&mut got))
            .await
            .is_ok();
        (String::from_utf8_lossy(&got).into_owned(), closed)
    }

    #[tokio::test]
    async fn a_request_in_flight_is_answered_before_the_server_stops() {
        let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (addr, stop, task) = server(release.clone(), started.clone()).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(GET).await.expect("send");
        started.notified().await;
        stop.send(()).expect("the server runs");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !task.is_finished(),
            "the server waits for the request in flight"
        );
        release.notify_one();
        let (answer, closed) = read_to_close(&mut client, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        assert!(closed, "the connection is closed after its answer");
        let finished = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(finished, Ok(Ok(Ok(())))), "{finished:?}");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_at_once_on_shutdown() {
        let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (addr, stop, task) = server(release.clone(), started.clone()).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(GET).await.expect("send");
        started.notified().await;
        release.notify_one();
        // The answer comes and the connection is kept alive, idle.
        let mut answer = [0u8; 512];
        let n = client.read(&mut answer).await.expect("an answer");
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        stop.send(()).expect("the server runs");
        let (rest, closed) = read_to_close(&mut client, Duration::from_secs(5)).await;
        assert!(
            closed,
            "an idle connection is closed, not kept until the grace ends"
        );
        assert!(rest.is_empty(), "{rest}");
        let finished = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(finished, Ok(Ok(Ok(())))), "{finished:?}");
    }
}
