use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::DeadlineExceeded;
use crate::error::BoxError;

pin_project! {
    /// Response future of [`Deadline`](super::Deadline).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        limit: Duration,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, deadline: Instant, limit: Duration) -> Self {
        ResponseFuture {
            inner,
            sleep: tokio::time::sleep_until(deadline),
            limit,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(DeadlineExceeded { limit: *this.limit }.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}
