//! The seam between the SDK and a broker: [`Broker`], and [`BrokerService`], which puts a
//! broker at the bottom of the SDK's HTTP pipeline.
//!
//! A `send` or `emit` is a call through the same pipeline an HTTP call takes (deadline,
//! retries with the service's budget, a breaker per pattern, metrics, `on_call`, tracing
//! with a `traceparent`), whose last stage is not an HTTP client but a broker: the call's
//! method says which (`SEND` is request/reply, `EMIT` a confirmed publish), its path is the
//! pattern, its headers and body are the message's. So messaging has no retry loop, breaker
//! or outcome classification of its own: a broker's failures are reported as the
//! pipeline's own kinds ([`TransportError`] with `connect = true` when nothing could be
//! sent, `NoInstances(NoResponder)` when nothing listens), and the pipeline's one
//! classification decides what is retried.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::{Method, StatusCode};
use sdk::{
    balance::{NoInstanceReason, NoInstances},
    transport::{HttpRequest, HttpResponse, TransportError},
    BoxError,
};

use crate::{envelope::Kind, Envelope, Pattern, Reply};

/// A boxed future, as the broker trait returns them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A message broker: what a transport (NATS, RabbitMQ, Redis) implements.
///
/// Errors say what happened in the pipeline's terms: `TransportError::new(true, ..)` when
/// the message could not be handed to the broker (not connected: nothing was sent, so it
/// is safe to retry), `TransportError::new(false, ..)` when it may have been,
/// [`no_responder`] when nothing listens for a request's pattern.
pub trait Broker: fmt::Debug + Send + Sync + 'static {
    /// The transport's name (`nats`, `rabbitmq`, `redis`), for labels and logs.
    fn name(&self) -> &'static str;

    /// Sends a request and waits for one reply. It has no deadline of its own: the pipeline
    /// drops the future when the call's time is up.
    fn request(&self, message: Envelope) -> BoxFuture<Result<Reply, BoxError>>;

    /// Publishes an event durably; resolves once the broker has confirmed it is stored.
    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>>;

    /// Starts delivering what `subscription` asks for. The stream ends only when the
    /// broker is dropped; while the connection is down it waits.
    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>>;

    /// Whether the broker connection is up now.
    fn is_connected(&self) -> bool;

    /// Sends whatever the client still buffers (NATS publishes acks without waiting; Kafka
    /// servers that stopped have yet to say they left): a server's shutdown calls it last.
    /// Default: nothing buffered.
    fn flush(&self) -> BoxFuture<()> {
        Box::pin(async {})
    }

    /// Stores a message in the durable queue `queue` (declaring it if needed) and resolves
    /// once the broker confirmed it: `send_to_service`. Brokers without such queues refuse.
    fn enqueue(&self, queue: &str, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let _ = (queue, message);
        let name = self.name();
        Box::pin(async move { Err(unsupported(name, "service queues")) })
    }
}

/// The error for a feature a transport does not have.
pub fn unsupported(transport: &str, what: &str) -> BoxError {
    format!("the {transport} transport has no {what}").into()
}

/// The error for a request nothing listens for.
pub fn no_responder() -> BoxError {
    Box::new(NoInstances(NoInstanceReason::NoResponder))
}

/// The error for a message that could not be handed to the broker (nothing was sent).
pub fn not_connected(why: impl Into<BoxError>) -> BoxError {
    Box::new(TransportError::new(true, why))
}

/// The error for a message that may have reached the broker.
pub fn broken(why: impl Into<BoxError>) -> BoxError {
    Box::new(TransportError::new(false, why))
}

/// What a server consumes: one handler's pattern, for one group of consumers (a service:
/// its instances share the work, each message going to one of them).
#[derive(Clone, Debug)]
pub struct Subscription {
    /// The consumer group: the service's name.
    pub group: String,
    /// The handler's pattern (wildcards allowed).
    pub pattern: Pattern,
    /// Requests or events.
    pub kind: Kind,
    /// How many messages may be delivered and not yet settled (events).
    pub prefetch: usize,
}

/// The deliveries of a subscription.
pub type Deliveries = BoxStream<'static, Delivery>;

/// One delivered message, to be settled once handled.
pub struct Delivery {
    /// The message.
    pub message: Envelope,
    /// Which delivery of it this is, from 1 (redeliveries count up).
    pub attempt: u32,
    /// Where a reply goes (requests).
    pub reply_to: Option<String>,
    /// How to settle it.
    pub settle: Box<dyn Settle>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("pattern", &self.message.pattern)
            .field("id", &self.message.id())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Settles a delivery with the broker.
pub trait Settle: Send + Sync {
    /// Answers a request (and settles it).
    fn reply(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>>;
    /// The message is handled: the broker may forget it.
    fn ack(self: Box<Self>) -> BoxFuture<Result<(), BoxError>>;
    /// Deliver it again after `delay` (the handler failed), as one more attempt.
    fn retry(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>>;
    /// Deliver it again after `delay` without counting an attempt: the handler could not
    /// reach what it calls (its breaker open, no connection), which says nothing of the
    /// message, so a target down for long spends none of its attempts.
    fn defer(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>>;
    /// Give up on it: keep it among the dead letters with `reason`, then forget it here.
    fn dead_letter(self: Box<Self>, reason: String) -> BoxFuture<Result<(), BoxError>>;
}

/// The methods a message call travels with, by name: `BrokerService` tells them apart by
/// comparing names (a `Method` made from bytes per comparison cost ~55 instructions).
const SEND: &str = "SEND";
const EMIT: &str = "EMIT";
const QUEUE: &str = "QUEUE";

/// A method named `name`, a valid token, so this cannot fail; GET would be a mistake
/// nobody could see. Made once: a clone of a short extension method is a copy.
fn method(name: &str, otherwise: Method) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(otherwise)
}

pub(crate) fn send_method() -> Method {
    static SEND_METHOD: LazyLock<Method> = LazyLock::new(|| method(SEND, Method::POST));
    SEND_METHOD.clone()
}

pub(crate) fn emit_method() -> Method {
    static EMIT_METHOD: LazyLock<Method> = LazyLock::new(|| method(EMIT, Method::PUT));
    EMIT_METHOD.clone()
}

pub(crate) fn queue_method() -> Method {
    method(QUEUE, Method::PUT)
}

/// Takes out what the HTTP client's side of the pipeline may have put in and says nothing
/// to a message's handler: `Host` (the SDK writes none for a whole-body transport such as
/// this one, but a middleware layer's stack may), `User-Agent` and `Accept-Encoding` when a
/// caller set them, and for an event the deadline (an event is handled whenever a consumer
/// gets to it, not while its publisher waits). One pass looks for them before a removal
/// each (~200 instructions a removal, present or not); the usual message has none but the
/// deadline.
fn strip_http_headers(headers: &mut http::HeaderMap, event: bool) {
    use http::header::{ACCEPT_ENCODING, HOST, USER_AGENT};
    let http_only = |name: &http::HeaderName| {
        name == HOST
            || name == USER_AGENT
            || name == ACCEPT_ENCODING
            || (event && name == sdk::deadline::DEADLINE_HEADER)
    };
    if !headers.keys().any(http_only) {
        return;
    }
    headers.remove(HOST);
    headers.remove(USER_AGENT);
    headers.remove(ACCEPT_ENCODING);
    if event {
        headers.remove(sdk::deadline::DEADLINE_HEADER);
    }
}

/// A broker as the SDK pipeline's transport: `SEND /pattern` is a request, `EMIT /pattern`
/// a publish and `QUEUE /queue` a message for a service's queue, both answered `202
/// Accepted` once confirmed.
#[derive(Clone, Debug)]
pub struct BrokerService {
    broker: Arc<dyn Broker>,
}

impl BrokerService {
    /// The transport over `broker`.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        BrokerService { broker }
    }
}

impl tower::Service<HttpRequest> for BrokerService {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let broker = self.broker.clone();
        Box::pin(async move {
            let (parts, payload) = request.into_parts();
            let name = parts.uri.path().trim_start_matches('/');
            let pattern = Pattern::message(name).map_err(|e| Box::new(e) as BoxError)?;
            let kind = parts.method.as_str();
            let mut headers = parts.headers;
            strip_http_headers(&mut headers, kind != SEND);
            let message = Envelope {
                pattern,
                headers,
                payload,
            };
            if kind == QUEUE {
                let queue = message.pattern.as_str().to_owned();
                broker.enqueue(&queue, message).await?;
                return Ok(response(
                    StatusCode::ACCEPTED,
                    http::HeaderMap::new(),
                    Bytes::new(),
                ));
            }
            if kind == EMIT {
                broker.publish(message).await?;
                return Ok(response(
                    StatusCode::ACCEPTED,
                    http::HeaderMap::new(),
                    Bytes::new(),
                ));
            }
            let reply = broker.request(message).await?;
            Ok(response(reply.status, reply.headers, reply.payload))
        })
    }
}

fn response(status: StatusCode, headers: http::HeaderMap, body: Bytes) -> HttpResponse {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use http::{header, HeaderMap, HeaderValue};

    use super::strip_http_headers;

    fn headers(names: &[&'static str]) -> HeaderMap {
        names
            .iter()
            .map(|name| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_static("v"),
                )
            })
            .collect()
    }

    /// What the HTTP side of the pipeline adds never reaches a handler; a request keeps the
    /// time its caller has left, an event does not; the message's own headers stay.
    #[test]
    fn the_http_clients_headers_are_taken_out() {
        let all = [
            "host",
            "user-agent",
            "accept-encoding",
            "x-request-deadline",
            "traceparent",
            "x-tenant",
        ];
        let names = |map: &HeaderMap| {
            let mut names: Vec<_> = map.keys().map(|n| n.as_str().to_owned()).collect();
            names.sort();
            names
        };
        let mut request = headers(&all);
        strip_http_headers(&mut request, false);
        assert_eq!(
            names(&request),
            ["traceparent", "x-request-deadline", "x-tenant"]
        );
        let mut event = headers(&all);
        strip_http_headers(&mut event, true);
        assert_eq!(names(&event), ["traceparent", "x-tenant"]);
        let mut usual = headers(&["x-request-deadline", "traceparent"]);
        strip_http_headers(&mut usual, true);
        assert_eq!(names(&usual), ["traceparent"]);
        let mut host_only = headers(&["host", "traceparent"]);
        strip_http_headers(&mut host_only, false);
        assert_eq!(names(&host_only), ["traceparent"]);
    }
}
