use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use tower::{util::BoxCloneSyncService, Service};

use crate::{
    box_error::BoxError,
    transport::{
        read_body, whole_request, Body, Exchange, HttpRequest, HttpResponse, HyperTransport,
        StreamRequest, StreamResponse,
    },
};

/// The stack user layers wrap: the transport below them, over `http::Request<Body>` and
/// `http::Response<Body>` with the response body still streaming ([`Body`]), so any tower or
/// tower-http layer over `http::Request<impl http_body::Body>` →
/// `http::Response<impl http_body::Body>` fits. The body is read whole above the last layer,
/// within `max_response_bytes`.
#[derive(Clone)]
pub struct Stack {
    service: BoxCloneSyncService<StreamRequest, StreamResponse, BoxError>,
    limit: usize,
}

impl Stack {
    /// Erases `service` into a stack whose bodies are read within `limit` bytes.
    pub fn new<S>(service: S, limit: usize) -> Self
    where
        S: Service<StreamRequest, Response = StreamResponse, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Stack {
            service: BoxCloneSyncService::new(service),
            limit,
        }
    }

    /// The largest response body read, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Service<StreamRequest> for Stack {
    type Response = StreamResponse;
    type Error = BoxError;
    type Future = <BoxCloneSyncService<StreamRequest, StreamResponse, BoxError> as Service<
        StreamRequest,
    >>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: StreamRequest) -> Self::Future {
        self.service.call(request)
    }
}

/// A transport that answers with whole bodies (a custom one, reqwest), type-erased.
pub type WholeTransport = BoxCloneSyncService<HttpRequest, HttpResponse, BoxError>;

/// The HTTP service at the bottom of the pipeline, answering with whole bodies: the hyper
/// transport called directly (no middleware: nothing is boxed), a whole-body transport
/// called directly, or a [`Stack`] of layers whose body is read at the top.
#[derive(Clone)]
pub enum HttpStack {
    /// The built-in hyper transport, called directly.
    Hyper(HyperTransport),
    /// A transport answering with whole bodies, with no layers around it: called directly
    /// (no streaming body to wrap and read again), its answers held to `limit` bytes.
    Whole(WholeTransport, usize),
    /// A transport wrapped in layers.
    Layered(Stack),
}

impl HttpStack {
    /// The stack for layers to wrap: the hyper transport left streaming, or the layers
    /// already there.
    pub fn into_stack(self) -> Stack {
        match self {
            HttpStack::Hyper(t) => {
                let limit = t.max_response_bytes();
                Stack::new(t.streaming(), limit)
            }
            HttpStack::Whole(t, limit) => Stack::new(Whole(t), limit),
            HttpStack::Layered(stack) => stack,
        }
    }
}

impl fmt::Debug for HttpStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpStack::Hyper(t) => f.debug_tuple("Hyper").field(t).finish(),
            HttpStack::Whole(_, limit) => f.debug_struct("Whole").field("limit", limit).finish(),
            HttpStack::Layered(s) => f.debug_tuple("Layered").field(s).finish(),
        }
    }
}

use crate::box_error::BoxFuture as Boxed;

impl Service<HttpRequest> for HttpStack {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = futures_util::future::Either<
        <HyperTransport as Service<HttpRequest>>::Future,
        Boxed<HttpResponse>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            HttpStack::Hyper(t) => t.poll_ready(cx),
            HttpStack::Whole(t, _) => t.poll_ready(cx),
            HttpStack::Layered(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        match self {
            HttpStack::Hyper(t) => futures_util::future::Either::Left(t.call(request)),
            HttpStack::Whole(_, _) if sends_a_stream(&request) => {
                futures_util::future::Either::Right(Box::pin(async {
                    Err(StreamNeedsHyper.into())
                }))
            }
            HttpStack::Whole(t, limit) => {
                let (response, limit) = (t.call(request), *limit);
                futures_util::future::Either::Right(Box::pin(async move {
                    let response = response.await?;
                    if response.body().len() > limit {
                        return Err(crate::transport::BodyTooLarge { limit }.into());
                    }
                    Ok(response)
                }))
            }
            HttpStack::Layered(s) => {
                let head = request.method() == http::Method::HEAD;
                let exchange = Exchange::of(&request);
                let (response, limit) = (s.call(request.map(Body::full)), s.limit);
                futures_util::future::Either::Right(Box::pin(async move {
                    match exchange {
                        Some(exchange) => Ok(exchange.park(response.await?)),
                        None => read_body(response.await?, head, limit).await,
                    }
                }))
            }
        }
    }
}

/// Whether `request` is part of a streamed call with a body, which only the hyper
/// transport can send (a whole-body transport would send the empty whole body instead).
fn sends_a_stream<B>(request: &http::Request<B>) -> bool {
    Exchange::of(request).is_some_and(|exchange| !exchange.is_empty())
}

/// A streamed call with a body met a transport that sends whole bodies.
#[derive(Debug, thiserror::Error)]
#[error("a streamed request body needs the built-in hyper transport; this service's transport sends whole bodies")]
struct StreamNeedsHyper;

/// A type-erased layer application, kept by the SDK builder.
pub(crate) type LayerFn = Arc<dyn Fn(Stack) -> Stack + Send + Sync>;

/// A service over whole bodies (`from_fn` middleware's next step, a custom transport)
/// adapted to the seam: the request body is taken whole, the answer's wrapped as a [`Body`].
#[derive(Clone, Debug)]
pub struct Whole<S>(pub S);

impl<S> Service<StreamRequest> for Whole<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = StreamResponse;
    type Error = BoxError;
    type Future = Boxed<StreamResponse>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: StreamRequest) -> Self::Future {
        if sends_a_stream(&request) {
            return Box::pin(async { Err(StreamNeedsHyper.into()) });
        }
        // The ready service answers this call; a clone waits for the next (tower's rule).
        let ready = self.0.clone();
        let mut service = std::mem::replace(&mut self.0, ready);
        Box::pin(async move {
            let request = whole_request(request).await?;
            Ok(service.call(request).await?.map(Body::full))
        })
    }
}
