//! The overall deadline of a call, across every retry.
//!
//! The client fixes the deadline when the call starts and stamps it on the request
//! ([`DeadlineLayer`] does the same in a stack of one's own); it needs no timer of its own,
//! because the deadline is enforced where time is actually spent:
//!
//! - each attempt is bounded by the earlier of its attempt timeout and the call's deadline
//!   (one timer per attempt, in [`balance`](crate::balance)), failing with
//!   [`DeadlineExceeded`] when the deadline is the bound that fired;
//! - the retry policy never starts a backoff that would end past the deadline.
//!
//! tower's `Timeout` takes one fixed duration per service; the deadline is per request
//! (`RequestBuilder::timeout`) and must be visible to the retry policy, hence this layer.
//!
//! Across hops: a call made while a server handles a request (under
//! [`InheritDeadlineLayer`]) ends by that request's deadline when it is earlier than the
//! call's own, and every attempt tells the next hop the time it has left
//! ([`DEADLINE_HEADER`]).

mod header;
mod inherit;

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures_util::TryFutureExt;
use tokio::time::Instant;
use tower::{Layer, Service};

pub use self::{
    header::{remaining, DEADLINE_HEADER, GRPC_TIMEOUT},
    inherit::{current, InheritDeadline, InheritDeadlineLayer, InheritFuture, RequestDeadline},
};
pub use crate::error::DeadlineExceeded;
use crate::{box_error::BoxError, clock::instant_after, request::ServiceRequest};
pub(crate) use header::stamp as stamp_header;

/// Applies [`Deadline`] with a default timeout.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    default: Duration,
}

impl DeadlineLayer {
    /// Calls without their own timeout get `default`.
    pub fn new(default: Duration) -> Self {
        DeadlineLayer { default }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            layer: *self,
        }
    }
}

/// Stamps each request with the instant its call must be finished by.
#[derive(Clone, Copy, Debug)]
pub struct Deadline<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl DeadlineLayer {
    /// The call's timeout: its own, or the default.
    pub(crate) fn limit(&self, request: &ServiceRequest) -> Duration {
        request.options().timeout.unwrap_or(self.default)
    }

    /// Stamps `request` with its deadline, counted from `started`: the one place a call's
    /// deadline is computed. A deadline inherited from the request being handled
    /// ([`current`]) wins when it is earlier.
    pub(crate) fn stamp(&self, request: &mut ServiceRequest, started: Instant) {
        let limit = self.limit(request);
        let own = instant_after(started, limit);
        match current() {
            Some(inherited) if inherited < own => {
                request.set_deadline(inherited, inherited.saturating_duration_since(started))
            }
            _ => request.set_deadline(own, limit),
        }
    }
}

/// Response future of [`Deadline`].
pub type ResponseFuture<F, E> = futures_util::future::MapErr<F, fn(E) -> BoxError>;

impl<S> Service<ServiceRequest> for Deadline<S>
where
    S: Service<ServiceRequest>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ServiceRequest) -> Self::Future {
        // A deadline already set (the client's wait for a first lookup) stands.
        if request.deadline().is_none() {
            self.layer.stamp(&mut request, Instant::now());
        }
        let into: fn(S::Error) -> BoxError = Into::into;
        self.inner.call(request).map_err(into)
    }
}
