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
    ///
    /// The timer is created on the first `Pending`: a call that completes at once (an open
    /// breaker, an invalid request) never touches the timer wheel.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        sleep: Option<Pin<Box<Sleep>>>,
        deadline: Instant,
        limit: Duration,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, deadline: Instant, limit: Duration) -> Self {
        ResponseFuture {
            inner,
            sleep: None,
            deadline,
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
        let deadline = *this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(DeadlineExceeded { limit: *this.limit }.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}
