//! The overall deadline of a call, across every retry.
//!
//! tower's `Timeout` takes one fixed duration; a call's deadline can be set per request
//! (`RequestBuilder::timeout`) and must be visible to the retry policy (so it never sleeps
//! past it), so this layer computes the deadline, stamps it on the request, and enforces it.

mod error;
mod future;

use std::{
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Instant;
use tower::{Layer, Service};

pub use self::{error::DeadlineExceeded, future::ResponseFuture};
use crate::{error::BoxError, request::ServiceRequest};

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
            default: self.default,
        }
    }
}

/// Ends a call that is not finished by its deadline with [`DeadlineExceeded`].
#[derive(Clone, Copy, Debug)]
pub struct Deadline<S> {
    inner: S,
    default: Duration,
}

impl<S> Service<ServiceRequest> for Deadline<S>
where
    S: Service<ServiceRequest>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ServiceRequest) -> Self::Future {
        let limit = request.options().timeout.unwrap_or(self.default);
        let deadline = Instant::now() + limit;
        request.set_deadline(deadline);
        ResponseFuture::new(self.inner.call(request), deadline, limit)
    }
}
