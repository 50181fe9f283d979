use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use pin_project_lite::pin_project;

use super::{CircuitBreaker, CircuitOpen, Permit};
use crate::{box_error::BoxError, response::ServiceResponse};

pin_project! {
    /// Response future of [`CircuitBreakerService`](super::CircuitBreakerService).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Rejected { error: Option<CircuitOpen> },
        Called { #[pin] inner: F, guard: Guard },
    }
}

/// Reports the outcome exactly once; a future dropped before completion gives its permit back.
#[derive(Debug)]
struct Guard {
    breaker: Arc<CircuitBreaker>,
    permit: Option<Permit>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.release(permit);
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn rejected(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    pub(super) fn called(inner: F, breaker: Arc<CircuitBreaker>, permit: Permit) -> Self {
        let guard = Guard {
            breaker,
            permit: Some(permit),
        };
        ResponseFuture {
            kind: Kind::Called { inner, guard },
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse, E>>,
    E: Into<BoxError>,
{
    type Output = Result<ServiceResponse, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { error } => Poll::Ready(Err(match error.take() {
                Some(error) => error.into(),
                None => "circuit breaker future polled after completion".into(),
            })),
            KindProj::Called { inner, guard } => {
                let outcome = ready!(inner.poll(cx)).map_err(Into::into);
                if let Some(permit) = guard.permit.take() {
                    let theirs = outcome.as_ref().err().is_some_and(|e| {
                        crate::outcome::ErrorClass::of(e.as_ref()).is_callers_own()
                    });
                    if theirs {
                        // The caller's own side failed: nothing is known of the service.
                        guard.breaker.release(permit);
                    } else {
                        let failed = guard.breaker.is_failure(&outcome);
                        guard.breaker.record(permit, failed);
                    }
                }
                Poll::Ready(outcome)
            }
        }
    }
}
