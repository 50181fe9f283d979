//! The bodies of a streamed call ([`RequestBuilder::streamed`](crate::client::RequestBuilder::streamed)):
//! the request body the attempt sends, and the answer's body, left streaming for the caller.
//!
//! The pipeline's layers (deadline, retry, breaker, balancer, attempt timeout) work on the
//! head of a request and of its answer; only the transport touches bodies. A streamed call
//! therefore goes through the same pipeline as any other: the [`Exchange`] rides in the HTTP
//! request's extensions to the transport, which sends the streamed body in place of the
//! (empty) whole one and parks the answer's body here instead of reading it. Every layer
//! above sees the status and headers as usual, and the caller takes the body afterwards.
//! A body can be sent once: a call with a body is sent once, never retried (an empty body
//! is resent as empty, so bodiless idempotent calls keep their retries).
//!
//! An answer that switches protocols (`101`, a WebSocket upgrade) parks its connection
//! here too: the caller takes it, and the bytes that follow are theirs.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};

use super::{Body, RequestBodyError};
use crate::box_error::BoxError;

/// The two bodies of one streamed call.
#[derive(Debug)]
pub(crate) struct Exchange {
    request: Mutex<Option<Body>>,
    empty: bool,
    /// Whether the request body is waiting for the caller's next bytes (its source said
    /// "pending" when last asked): an attempt that times out then was the caller's to lose.
    /// None for an empty body, which never waits.
    waiting_on_caller: Option<Arc<AtomicBool>>,
    response: Mutex<Option<Body>>,
    upgrade: Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

/// A streamed request body was asked for a second time (only a call with an empty body is
/// resent).
#[derive(Debug, thiserror::Error)]
#[error("the streamed request body was already sent")]
pub(crate) struct BodyAlreadySent;

impl Exchange {
    /// An exchange sending `body`.
    pub(crate) fn new(body: Body) -> Arc<Self> {
        let empty = body.is_end_stream();
        // Only a body that can wait on its caller needs the flag (one allocation less for
        // every bodiless call).
        let (body, waiting_on_caller) = match empty {
            true => (body, None),
            false => {
                let waiting = Arc::new(AtomicBool::new(false));
                let body = Body::new(CallerBody {
                    inner: body,
                    waiting: waiting.clone(),
                });
                (body, Some(waiting))
            }
        };
        Arc::new(Exchange {
            request: Mutex::new(Some(body)),
            empty,
            waiting_on_caller,
            response: Mutex::new(None),
            upgrade: Mutex::new(None),
        })
    }

    /// Whether the request body is waiting for the caller's next bytes.
    pub(crate) fn waiting_on_caller(&self) -> bool {
        self.waiting_on_caller
            .as_ref()
            .is_some_and(|waiting| waiting.load(Ordering::Relaxed))
    }

    /// Whether the request body is empty (so the call may be sent again).
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// The exchange `request` carries, if it is part of a streamed call.
    pub(crate) fn of<B>(request: &http::Request<B>) -> Option<Arc<Exchange>> {
        request.extensions().get::<Arc<Exchange>>().cloned()
    }

    /// The body to send: the streamed one, once (an empty one, any number of times).
    pub(crate) fn take_request(&self) -> Result<Body, BodyAlreadySent> {
        if self.empty {
            return Ok(Body::default());
        }
        lock(&self.request).take().ok_or(BodyAlreadySent)
    }

    /// Keeps the answer's body for the caller (an earlier attempt's is dropped).
    pub(crate) fn put_response(&self, body: Body) {
        *lock(&self.response) = Some(body);
    }

    /// Parks `response`'s body (and its upgraded connection, if it switches protocols) here
    /// and hands its head on with an empty body.
    pub(crate) fn park(&self, response: http::Response<Body>) -> super::HttpResponse {
        let (mut parts, body) = response.into_parts();
        self.put_response(body);
        *self
            .upgrade
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        http::Response::from_parts(parts, bytes::Bytes::new())
    }

    /// The last answer's switched connection, if it switched protocols.
    pub(crate) fn take_upgrade(&self) -> Option<hyper::upgrade::OnUpgrade> {
        self.upgrade
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The last answer's body.
    pub(crate) fn take_response(&self) -> Option<Body> {
        lock(&self.response).take()
    }
}

/// The slot, whatever a panicking holder left in it (a body is whole or absent).
fn lock(slot: &Mutex<Option<Body>>) -> std::sync::MutexGuard<'_, Option<Body>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The caller's request body, as the transport sends it: its errors become
/// [`RequestBodyError`]s (the caller's side failed, not the service's), and whether it is
/// waiting for the caller is kept for the attempt's timer.
struct CallerBody {
    inner: Body,
    waiting: Arc<AtomicBool>,
}

impl http_body::Body for CallerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.waiting.store(polled.is_pending(), Ordering::Relaxed);
        match polled {
            Poll::Ready(Some(Err(e))) if e.is::<RequestBodyError>() => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Broke(e).into()))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
