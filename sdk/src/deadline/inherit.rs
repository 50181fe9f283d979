//! Deadlines inherited across service hops: the server side of
//! [`DEADLINE_HEADER`](super::DEADLINE_HEADER).
//!
//! [`InheritDeadlineLayer`] wraps a server (an axum `Router`, any tower service over
//! `http::Request`). For a request that carries the time its caller has left, it
//!
//! - answers `504` at once when no time is left (the caller has given up; the work would
//!   be wasted);
//! - runs the handler with that deadline in scope, so every SDK call made while handling
//!   it ends by then too: its own timeout is cut to what is left, and it passes what is
//!   left on. A chain gateway → order-service → user-service stops everywhere when the
//!   first caller's deadline passes, instead of each hop starting its own 30 s;
//! - drops the handler when the deadline passes (what it was doing is cancelled with it)
//!   and answers `504`;
//! - puts a [`RequestDeadline`] in the request's extensions, for a handler that wants to
//!   know (it is also an axum extractor: `Option<RequestDeadline>`).
//!
//! The deadline is a tokio task-local: calls made on the handler's own task inherit it. A
//! task the handler spawns does not; carry it over with [`RequestDeadline::scope`].
//!
//! Why not tower-http's `TimeoutLayer`: it has one fixed duration per service, while here
//! the limit is each request's own, and the handler's outgoing calls must learn it.
//!
//! ```
//! use std::time::Duration;
//! use sdk::deadline::{InheritDeadlineLayer, RequestDeadline};
//!
//! async fn order(deadline: Option<RequestDeadline>) -> String {
//!     // SDK calls made here end by the caller's deadline, and pass what is left on.
//!     format!("{:?} left", deadline.map(|d| d.remaining()))
//! }
//!
//! let app: axum::Router = axum::Router::new()
//!     .route("/orders/{id}", axum::routing::get(order))
//!     // A request without the header gets 30 s (leave it out for no limit of its own).
//!     .layer(InheritDeadlineLayer::new().default_timeout(Duration::from_secs(30)));
//! ```

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::clock::instant_after;

tokio::task_local! {
    static INHERITED: Instant;
}

/// The deadline the current task runs under (set by [`InheritDeadlineLayer`] or
/// [`RequestDeadline::scope`]), if any.
pub fn current() -> Option<Instant> {
    INHERITED.try_with(|deadline| *deadline).ok()
}

/// When a request must be answered by: its caller's deadline (or the server's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestDeadline(Instant);

impl RequestDeadline {
    /// A deadline at `at`.
    pub fn at(at: Instant) -> Self {
        RequestDeadline(at)
    }

    /// The instant.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left (zero once it has passed).
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Runs `future` with this deadline in scope (or the one already in scope, when that is
    /// earlier): SDK calls it makes end by then. For work a handler spawns onto a task of
    /// its own, which does not inherit the handler's.
    ///
    /// ```
    /// # async fn run(deadline: sdk::deadline::RequestDeadline) {
    /// tokio::spawn(deadline.scope(async {
    ///     // calls here end by the request's deadline
    /// }));
    /// # }
    /// ```
    pub fn scope<F: Future>(self, future: F) -> tokio::task::futures::TaskLocalFuture<Instant, F> {
        let at = current().map_or(self.0, |outer| outer.min(self.0));
        INHERITED.scope(at, future)
    }
}

impl<S: Send + Sync> axum_core::extract::OptionalFromRequestParts<S> for RequestDeadline {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Option<Self>, std::convert::Infallible> {
        Ok(parts.extensions.get::<RequestDeadline>().copied())
    }
}

/// Applies [`InheritDeadline`]; see the [`deadline`](crate::deadline) module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct InheritDeadlineLayer {
    default: Option<Duration>,
}

impl InheritDeadlineLayer {
    /// Inherits the caller's deadline; a request without one runs unbounded.
    pub fn new() -> Self {
        InheritDeadlineLayer { default: None }
    }

    /// Gives a request that carries no deadline this much time (the server's own limit).
    #[must_use]
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default = Some(timeout);
        self
    }
}

impl<S> Layer<S> for InheritDeadlineLayer {
    type Service = InheritDeadline<S>;

    fn layer(&self, inner: S) -> InheritDeadline<S> {
        InheritDeadline {
            inner,
            default: self.default,
        }
    }
}

/// Runs each request under its caller's deadline; see the [`deadline`](crate::deadline) module docs.
#[derive(Clone, Copy, Debug)]
pub struct InheritDeadline<S> {
    inner: S,
    default: Option<Duration>,
}

/// The answer to a request whose deadline passed: `504` with a JSON body.
fn expired<B: From<&'static str>>() -> Response<B> {
    let mut response = Response::new(B::from(
        r#"{"error":"deadline_exceeded","message":"the caller's deadline passed before an answer"}"#,
    ));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pin_project_lite::pin_project! {
    /// Response future of [`InheritDeadline`]: the handler's own future when the request
    /// carries no deadline (nothing to add: no allocation), else the handler bounded by it.
    pub struct InheritFuture<F, T, E> {
        #[pin]
        kind: Kind<F, T, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, T, E> {
        Direct { #[pin] future: F },
        Bounded { future: Pin<Box<dyn Future<Output = Result<T, E>> + Send>> },
    }
}

impl<F, T, E> InheritFuture<F, T, E> {
    fn bounded(future: impl Future<Output = Result<T, E>> + Send + 'static) -> Self {
        InheritFuture {
            kind: Kind::Bounded {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, T, E> Future for InheritFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        match self.project().kind.project() {
            KindProj::Direct { future } => future.poll(cx),
            KindProj::Bounded { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for InheritDeadline<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = InheritFuture<S::Future, Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let left = super::remaining(request.headers()).or(self.default);
        let Some(left) = left else {
            let future = self.inner.call(request);
            return InheritFuture {
                kind: Kind::Direct { future },
            };
        };
        if left.is_zero() {
            tracing::debug!("a request arrived with no time left; answered 504");
            return InheritFuture::bounded(std::future::ready(Ok(expired())));
        }
        let deadline = RequestDeadline(instant_after(Instant::now(), left));
        request.extensions_mut().insert(deadline);
        let handled = deadline.scope(self.inner.call(request));
        InheritFuture::bounded(async move {
            match tokio::time::timeout_at(deadline.0, handled).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::debug!(
                        ?left,
                        "the caller's deadline passed; handler dropped, answered 504"
                    );
                    Ok(expired())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scopes_nest_to_the_earlier_deadline() {
        assert_eq!(current(), None);
        let now = Instant::now();
        let outer = RequestDeadline::at(now + Duration::from_secs(1));
        let seen = outer
            .scope(async {
                let inner = RequestDeadline::at(now + Duration::from_secs(5));
                inner.scope(async { current() }).await
            })
            .await;
        assert_eq!(seen, Some(now + Duration::from_secs(1)));
    }

    /// A handler that records the deadline it runs under, then takes `work`.
    fn handler(
        work: Duration,
    ) -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = std::convert::Infallible,
        Future = impl Future + Send,
    > + Clone {
        tower::service_fn(move |request: Request<()>| async move {
            let seen = (
                current(),
                request.extensions().get::<RequestDeadline>().copied(),
            );
            tokio::time::sleep(work).await;
            Ok::<_, std::convert::Infallible>(Response::new(format!("{seen:?}")))
        })
    }

    fn asking(left: &'static str) -> Request<()> {
        let mut request = Request::new(());
        request.headers_mut().insert(
            super::super::DEADLINE_HEADER,
            http::HeaderValue::from_static(left),
        );
        request
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_dropped_at_the_callers_deadline() {
        use tower::ServiceExt as _;
        let start = Instant::now();
        let layer = InheritDeadlineLayer::new();
        let answer = layer
            .layer(handler(Duration::from_secs(10)))
            .oneshot(asking("250"))
            .await
            .expect("answer");
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(answer.body().contains("deadline_exceeded"));
        assert_eq!(start.elapsed(), Duration::from_millis(250));

        // In time: the handler saw the deadline, in scope and as an extension.
        let answer = layer
            .layer(handler(Duration::from_millis(10)))
            .oneshot(asking("250"))
            .await
            .expect("answer");
        let at = Instant::now() - Duration::from_millis(10) + Duration::from_millis(250);
        assert_eq!(
            answer.body(),
            &format!("{:?}", (Some(at), Some(RequestDeadline(at))))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_time_left_is_answered_at_once_and_no_header_runs_unbounded() {
        use tower::ServiceExt as _;
        let layer = InheritDeadlineLayer::new();
        let answer = layer
            .layer(handler(Duration::from_secs(1)))
            .oneshot(asking("0"))
            .await
            .expect("answer");
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);

        let start = Instant::now();
        let answer = layer
            .layer(handler(Duration::from_secs(60)))
            .oneshot(Request::new(()))
            .await
            .expect("answer");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(start.elapsed(), Duration::from_secs(60));

        let answer = layer
            .default_timeout(Duration::from_secs(5))
            .layer(handler(Duration::from_secs(60)))
            .oneshot(Request::new(()))
            .await
            .expect("answer");
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
