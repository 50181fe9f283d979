//! The response future of [`Balance`](super::Balance): one attempt at one instance, bounded
//! by its timer ([`timeout`](crate::timeout)), its outcome fed to the instance's estimates
//! and turned into a [`ServiceResponse`]. A named future, not a boxed `async` block: an
//! attempt costs no allocation for it.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Timeout};

use super::{AttemptError, InFlight};
use crate::{
    box_error::BoxError,
    outcome::{Classify, ErrorClass},
    response::ServiceResponse,
    timeout::Bound,
    transport::{Exchange, HttpResponse, RequestBodyError},
};

pin_project! {
    /// The response future of [`Balance`](super::Balance).
    pub struct ResponseFuture<F> {
        #[pin]
        attempt: Attempt<F>,
        url: Option<Arc<str>>,
        // The balancer's view of the instance while the attempt runs (more than one instance).
        tracker: Option<InFlight>,
        // A replaced classification of the answer, when one is set.
        classify: Option<Arc<dyn Classify>>,
        span: tracing::Span,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum Attempt<F> {
        /// Bounded by the attempt timeout or the deadline, whichever comes first. A streamed
        /// call's exchange says, when the time runs out, whether the caller was the one late.
        Bounded { #[pin] timer: Timeout<F>, bound: Bound, exchange: Option<Arc<Exchange>> },
        Unbounded { #[pin] future: F },
        /// Refused before anything was sent (no instance, a request that does not build).
        Refused { error: Option<BoxError> },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(super) fn refused(error: BoxError) -> Self {
        ResponseFuture {
            attempt: Attempt::Refused { error: Some(error) },
            url: None,
            tracker: None,
            classify: None,
            span: tracing::Span::none(),
        }
    }

    pub(super) fn started(
        future: F,
        bound: Option<(Instant, Bound)>,
        exchange: Option<Arc<Exchange>>,
        url: Arc<str>,
        tracker: Option<InFlight>,
        classify: Option<Arc<dyn Classify>>,
        span: tracing::Span,
    ) -> Self {
        let attempt = match bound {
            Some((at, bound)) => Attempt::Bounded {
                timer: tokio::time::timeout_at(at, future),
                bound,
                exchange,
            },
            None => Attempt::Unbounded { future },
        };
        ResponseFuture {
            attempt,
            url: Some(url),
            tracker,
            classify,
            span,
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<HttpResponse, BoxError>>,
{
    type Output = Result<ServiceResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let outcome = match this.attempt.project() {
            AttemptProj::Refused { error } => {
                return Poll::Ready(Err(error
                    .take()
                    .unwrap_or_else(|| "attempt polled after it ended".into())))
            }
            AttemptProj::Bounded {
                timer,
                bound,
                exchange,
            } => match ready!(timer.poll(cx)) {
                Ok(outcome) => outcome,
                // The time ran out while the request body waited for the caller's bytes.
                Err(_) if exchange.as_ref().is_some_and(|x| x.waiting_on_caller()) => {
                    Err(RequestBodyError::Stalled.into())
                }
                Err(_) => Err(bound.error()),
            },
            AttemptProj::Unbounded { future } => ready!(future.poll(cx)),
        };
        let url = this.url.take().unwrap_or_else(|| Arc::from(""));
        // The attempt's one classification: the response or the error carries it on.
        let outcome = match outcome {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                if !this.span.is_disabled() {
                    this.span.record("status", parts.status.as_u16());
                }
                let mut response = ServiceResponse::new(parts.status, parts.headers, body);
                if let Some(classify) = this.classify.as_deref() {
                    response.reclassify(classify);
                }
                Ok(response)
            }
            Err(source) => {
                tracing::debug!(error = %source, "attempt failed");
                let class = ErrorClass::of(source.as_ref());
                Err((source, class))
            }
        };
        if let Some(in_flight) = this.tracker.take() {
            let class = match &outcome {
                Ok(response) => Ok(response.class()),
                Err((_, class)) => Err(*class),
            };
            in_flight.finish(&url, class);
        }
        Poll::Ready(match outcome {
            Ok(mut response) => {
                response.instance = Some(url);
                Ok(response)
            }
            Err((source, class)) => Err(AttemptError::new(url, source, class).into()),
        })
    }
}
