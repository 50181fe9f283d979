//! What a broker carries: a message ([`Envelope`]) and a reply ([`Reply`]), with the SDK's
//! headers.
//!
//! A message's id, correlation id and urgency travel as headers (`sdk-message-id`,
//! `sdk-correlation-id`, `sdk-urgency`), beside the caller's own and the W3C `traceparent`
//! the pipeline adds, so every transport carries them the same way (NATS headers, AMQP
//! properties and headers, Redis stream fields). A reply's status travels as `sdk-status`:
//! 200 for a handler that answered, the handler's status for one that failed with one, 500
//! otherwise, 400 for a request that did not decode.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::{Pattern, Urgency};

/// The SDK's header names.
pub mod headers {
    /// A message's unique id: the same on every attempt, so consumers drop duplicates.
    pub const MESSAGE_ID: &str = "sdk-message-id";
    /// The id that ties a reply (and the calls a handler makes) to the request.
    pub const CORRELATION_ID: &str = "sdk-correlation-id";
    /// `low`, `medium`, `high` or `critical`.
    pub const URGENCY: &str = "sdk-urgency";
    /// A reply's status code (absent: 200).
    pub const STATUS: &str = "sdk-status";
    /// The sender's deadline in milliseconds: a broker that can expire a waiting message
    /// (RabbitMQ) drops a request nobody can use any more.
    pub const TIMEOUT_MS: &str = "sdk-timeout-ms";
    /// The pattern a message was sent to, for brokers whose routing key may differ from it
    /// (RabbitMQ, when the SDK publishes a message again straight to its queue).
    pub const PATTERN: &str = "sdk-pattern";
    /// Which delivery of an event this is, for brokers that do not count (RabbitMQ's
    /// classic queues): set when the SDK delivers it again.
    pub const ATTEMPT: &str = "sdk-attempt";
    /// Why a message went to the dead letters.
    pub const DEAD_REASON: &str = "sdk-dead-reason";
    /// The pattern a dead-lettered message was sent to.
    pub const DEAD_PATTERN: &str = "sdk-dead-pattern";
}

/// Whether a message asks for a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `send`: request/reply, answered by one handler, bounded by the caller's deadline.
    Request,
    /// `emit`: an event, kept by the broker until every subscribed group handled it.
    Event,
    /// `send_to_service`: a message for one service's own durable queue (named from the
    /// service's URL), handled like an event by that service alone.
    Queue,
}

impl Kind {
    /// `request` or `event`, for labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Event => "event",
            Kind::Queue => "queue",
        }
    }
}

/// One message as a broker carries it.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Where it is sent (a concrete pattern).
    pub pattern: Pattern,
    /// Every header: the SDK's, the caller's, and `traceparent`.
    pub headers: HeaderMap,
    /// The body (JSON, as the client serialized it).
    pub payload: Bytes,
}

impl Envelope {
    /// The message id (empty if the sender set none).
    pub fn id(&self) -> &str {
        header(&self.headers, headers::MESSAGE_ID)
    }

    /// The correlation id (empty if the sender set none).
    pub fn correlation_id(&self) -> &str {
        header(&self.headers, headers::CORRELATION_ID)
    }

    /// The urgency (medium if the sender said nothing, or nothing readable).
    pub fn urgency(&self) -> Urgency {
        header(&self.headers, headers::URGENCY)
            .parse()
            .unwrap_or_default()
    }
}

/// A reply to a request.
#[derive(Clone, Debug)]
pub struct Reply {
    /// 200, or the handler's failure.
    pub status: StatusCode,
    /// Headers (the correlation id, the status).
    pub headers: HeaderMap,
    /// The body.
    pub payload: Bytes,
}

impl Reply {
    /// A reply with `status` and `payload`, its headers carrying the status and
    /// `correlation_id`.
    pub fn new(status: StatusCode, correlation_id: &str, payload: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(headers::STATUS),
            HeaderValue::from(status.as_u16()),
        );
        if let Ok(value) = HeaderValue::from_str(correlation_id) {
            if !correlation_id.is_empty() {
                headers.insert(HeaderName::from_static(headers::CORRELATION_ID), value);
            }
        }
        Reply {
            status,
            headers,
            payload,
        }
    }

    /// The status a reply's headers carry (200 when they carry none).
    pub fn status_of(headers: &HeaderMap) -> StatusCode {
        headers
            .get(headers::STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(|v| StatusCode::from_u16(v).ok())
            .unwrap_or(StatusCode::OK)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A fresh random id (128 bits, hex): message and correlation ids.
pub(crate) fn new_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}
