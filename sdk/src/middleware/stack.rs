use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use tower::{util::BoxCloneSyncService, Service};

use crate::{
    box_error::BoxError,
    transport::{HttpRequest, HttpResponse, HyperTransport},
};

/// The HTTP service at the bottom of the pipeline: the transport, possibly wrapped in user
/// middleware. Without middleware no boxing happens: the transport is called directly.
#[derive(Clone)]
pub enum HttpStack {
    /// The built-in hyper transport, called directly.
    Hyper(HyperTransport),
    /// A transport wrapped in middleware, or a custom transport.
    Boxed(BoxCloneSyncService<HttpRequest, HttpResponse, BoxError>),
}

impl HttpStack {
    /// Erases any HTTP service into a stack.
    pub fn boxed<S>(service: S) -> Self
    where
        S: Service<HttpRequest, Response = HttpResponse, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        HttpStack::Boxed(BoxCloneSyncService::new(service))
    }
}

impl fmt::Debug for HttpStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpStack::Hyper(t) => f.debug_tuple("Hyper").field(t).finish(),
            HttpStack::Boxed(_) => f.write_str("Boxed(..)"),
        }
    }
}

impl Service<HttpRequest> for HttpStack {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = futures_util::future::Either<
        <HyperTransport as Service<HttpRequest>>::Future,
        <BoxCloneSyncService<HttpRequest, HttpResponse, BoxError> as Service<HttpRequest>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            HttpStack::Hyper(t) => t.poll_ready(cx),
            HttpStack::Boxed(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        match self {
            HttpStack::Hyper(t) => futures_util::future::Either::Left(t.call(request)),
            HttpStack::Boxed(s) => futures_util::future::Either::Right(s.call(request)),
        }
    }
}

/// A type-erased layer application, kept by the SDK builder.
pub(crate) type LayerFn = Arc<dyn Fn(HttpStack) -> HttpStack + Send + Sync>;
