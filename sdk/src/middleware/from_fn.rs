use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tower::{Layer, Service, ServiceExt};

use super::HttpStack;
use crate::{
    box_error::BoxError,
    transport::{HttpRequest, HttpResponse},
};

/// Middleware from an async closure, as in axum's `from_fn`.
///
/// ```
/// use sdk::middleware::{from_fn, Next};
/// use sdk::transport::HttpRequest;
///
/// let add_auth = from_fn(|mut request: HttpRequest, next: Next| async move {
///     request
///         .headers_mut()
///         .insert("authorization", http::HeaderValue::from_static("Bearer token"));
///     next.run(request).await
/// });
/// # let _ = add_auth;
/// ```
pub fn from_fn<F, Fut>(f: F) -> FromFnLayer<F>
where
    F: Fn(HttpRequest, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<HttpResponse, BoxError>> + Send + 'static,
{
    FromFnLayer { f }
}

/// The layer [`from_fn`] returns.
#[derive(Clone)]
pub struct FromFnLayer<F> {
    f: F,
}

impl<F> fmt::Debug for FromFnLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFnLayer(..)")
    }
}

impl<F: Clone> Layer<HttpStack> for FromFnLayer<F> {
    type Service = FromFn<F>;

    fn layer(&self, inner: HttpStack) -> FromFn<F> {
        FromFn {
            f: self.f.clone(),
            inner,
        }
    }
}

/// The service [`FromFnLayer`] builds.
#[derive(Clone)]
pub struct FromFn<F> {
    f: F,
    inner: HttpStack,
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The rest of the stack, handed to a [`from_fn`] closure.
#[derive(Debug)]
pub struct Next {
    inner: HttpStack,
}

impl Next {
    /// Sends the request on through the rest of the stack.
    pub async fn run(self, request: HttpRequest) -> Result<HttpResponse, BoxError> {
        self.inner.oneshot(request).await
    }
}

impl<F, Fut> Service<HttpRequest> for FromFn<F>
where
    F: Fn(HttpRequest, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<HttpResponse, BoxError>> + Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<Fut>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let next = Next {
            inner: self.inner.clone(),
        };
        Box::pin((self.f)(request, next))
    }
}
