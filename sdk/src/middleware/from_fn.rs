use std::{
    fmt,
    future::Future,
    task::{Context, Poll},
};

use tower::{Layer, Service, ServiceExt};

use super::Stack;
use crate::{
    box_error::BoxError,
    transport::{
        read_body, whole_request, Body, HttpRequest, HttpResponse, StreamRequest, StreamResponse,
    },
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

impl<F: Clone> Layer<Stack> for FromFnLayer<F> {
    type Service = FromFn<F>;

    fn layer(&self, inner: Stack) -> FromFn<F> {
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
    inner: Stack,
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
    inner: Stack,
}

impl Next {
    /// Sends the request on through the rest of the stack, and reads the answer's body
    /// (within `max_response_bytes`).
    pub async fn run(self, request: HttpRequest) -> Result<HttpResponse, BoxError> {
        let head = request.method() == http::Method::HEAD;
        let limit = self.inner.limit();
        let response = self.inner.oneshot(request.map(Body::full)).await?;
        read_body(response, head, limit).await
    }
}

impl<F, Fut> Service<StreamRequest> for FromFn<F>
where
    F: Fn(HttpRequest, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<HttpResponse, BoxError>> + Send + 'static,
{
    type Response = StreamResponse;
    type Error = BoxError;
    type Future = crate::box_error::BoxFuture<StreamResponse>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: StreamRequest) -> Self::Future {
        let next = Next {
            inner: self.inner.clone(),
        };
        let f = self.f.clone();
        Box::pin(async move {
            let request = whole_request(request).await?;
            Ok(f(request, next).await?.map(Body::full))
        })
    }
}
