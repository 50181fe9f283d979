//! Foreign wire formats: messaging with services written with NestJS microservices or the
//! Ascender Framework, on the brokers they use, so a fleet moves to this SDK one service
//! at a time.
//!
//! A connection speaks one wire, chosen in its config (`wire = "nestjs"`, `wire =
//! "ascender"`; default `sdk`, this SDK's own). A foreign wire is a [`Broker`](crate::Broker)
//! of its own, so everything above the broker is unchanged: the caller's deadline, retries
//! with the budget, the breaker per pattern, metrics, typed errors, the handlers' contained
//! panics, their retries and dead-letter decisions. What a foreign format cannot carry is
//! lost at its boundary, as the guide's chapter on messaging lists:
//!
//! | | NestJS on Redis | NestJS on NATS | NestJS on RabbitMQ | Ascender on Redis |
//! | --- | --- | --- | --- | --- |
//! | requests | pub/sub on the pattern, replies on `<pattern>.reply` | core request/reply, a queue group per service | to the service's queue, direct reply-to | pub/sub on the pattern, replies on `_rpc:response` (errors on the pattern) |
//! | events | pub/sub: at most once, only to who listens now | core publish: at most once | to the queue, acknowledged on delivery | pub/sub: at most once |
//! | groups | none: every instance gets every message | NATS queue groups | one queue per service | none |
//! | headers (trace, deadline, id) | lost | kept (NATS headers) | kept (AMQP headers) | lost |
//!
//! On Kafka (NestJS and Ascender) the record's value is the payload alone, on the topic
//! that is the pattern, with the correlation in record headers; the Kafka transport speaks
//! those itself (`kafka::foreign`), keeping its consumer groups, commits and dead letters.
//!
//! Where nothing listens, a request or event fails at once with `NoResponder` (Redis counts
//! the subscribers of a `PUBLISH`, NATS answers "no responders", a Kafka topic does not
//! exist) instead of being dropped in silence. An event a handler failed is delivered again in-process with the backoff
//! (a restart forgets it); one given up on is logged, as these formats keep no dead
//! letters.
//!
//! Each format's codec is here (`nestjs`, `ascender`); the brokers are in
//! `redis_pubsub` (Redis pub/sub, for any codec), `nest_nats` and `nest_rabbit`.

// The codecs serve the Redis and NATS brokers; with one of them left out, part of a codec
// is unread (the full build, which clippy checks, reads all of it).
#![cfg_attr(
    not(all(feature = "redis", feature = "nats", feature = "rabbitmq")),
    allow(dead_code)
)]

pub(crate) mod ascender;
#[cfg(feature = "nats")]
pub(crate) mod nest_nats;
#[cfg(feature = "rabbitmq")]
pub(crate) mod nest_rabbit;
pub(crate) mod nestjs;
#[cfg(feature = "redis")]
pub(crate) mod redis_pubsub;

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;

pub use crate::config::Wire;
use crate::Reply;

/// One message read from a foreign wire.
#[derive(Debug, PartialEq)]
pub(crate) struct Incoming {
    /// The request's id; `None` for an event.
    pub id: Option<String>,
    /// The payload, as JSON.
    pub data: Bytes,
}

/// What one reply packet says about the request `id`.
#[derive(Debug)]
pub(crate) struct ReplyPacket {
    pub id: String,
    pub body: ReplyBody,
}

/// A reply packet's content.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// An answer (or a failure); `last` when no more packets follow.
    Answer { reply: Reply, last: bool },
    /// The stream of answers is over (NestJS's `isDisposed` alone).
    Done,
    /// The handler asks for more time (Ascender's `defer`): the caller's deadline decides.
    KeepWaiting,
}

/// A foreign format: how requests, events and replies are written and read. The brokers
/// are generic over it, so each decision about a format is made here, once.
pub(crate) trait Codec: Send + Sync + 'static {
    /// The broker's name: `nestjs-redis`, say.
    fn name(&self) -> &'static str;
    /// The channels on which replies to requests sent to `pattern` come back.
    fn reply_channels<'a>(&self, pattern: &'a str) -> Vec<Cow<'a, str>>;
    /// The channel this side answers a request received on `pattern` on.
    fn reply_channel<'a>(&self, pattern: &'a str, reply: &Reply) -> Cow<'a, str>;
    /// A request to `pattern` with `id` and the JSON `payload`.
    fn request(&self, pattern: &str, id: &str, payload: &[u8]) -> Vec<u8>;
    /// An event to `pattern` with the JSON `payload`.
    fn event(&self, pattern: &str, payload: &[u8]) -> Vec<u8>;
    /// A message read from a handler's channel: `Ok(None)` for one that is not a request
    /// or event (a reply sharing the channel), `Err` for one that does not decode.
    fn incoming(&self, bytes: &[u8]) -> Result<Option<Incoming>, String>;
    /// This side's reply to the request `id`.
    fn reply(&self, id: &str, reply: &Reply) -> Vec<u8>;
    /// A reply packet read from a reply channel (`None`: not a reply).
    fn reply_packet(&self, bytes: &[u8]) -> Option<ReplyPacket>;
}

/// A message as read from a foreign wire, before it is decoded for a handler.
#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
pub(crate) struct Raw {
    /// The channel (subject) it came on: its concrete pattern.
    pub channel: String,
    /// Where a reply goes (NATS's inbox); `None` where the format says.
    pub reply_to: Option<String>,
    pub headers: http::HeaderMap,
    pub payload: Bytes,
    /// Which delivery this is: 1, and one more each time a failed event is delivered again.
    pub attempt: u32,
}

#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
impl Raw {
    /// A message as it arrived (its first delivery).
    pub(crate) fn new(
        channel: String,
        reply_to: Option<String>,
        headers: http::HeaderMap,
        payload: Bytes,
    ) -> Self {
        Raw {
            channel,
            reply_to,
            headers,
            payload,
            attempt: 1,
        }
    }
}

/// The delivery `raw` makes for a handler of `kind`: `None` when it is the other kind's (a
/// request has an id, an event none), not a message at all (a reply sharing the channel),
/// or does not decode (logged). A request is settled by `answer(id, raw)`; an event by
/// [`EventSettle`], which delivers a failed one again through `again`.
#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
pub(crate) fn delivery(
    codec: &dyn Codec,
    kind: crate::Kind,
    raw: Raw,
    again: &tokio::sync::mpsc::Sender<Raw>,
    answer: impl FnOnce(String, &Raw) -> Box<dyn crate::broker::Settle>,
) -> Option<crate::broker::Delivery> {
    let incoming = match codec.incoming(&raw.payload) {
        Ok(incoming) => incoming?,
        Err(reason) => {
            tracing::warn!(wire = codec.name(), channel = %raw.channel, %reason, "dropping a message that does not decode");
            return None;
        }
    };
    if incoming.id.is_some() != (kind == crate::Kind::Request) {
        return None;
    }
    let pattern = crate::Pattern::message(&raw.channel).ok()?;
    let mut headers = raw.headers.clone();
    headers.remove(crate::headers::MESSAGE_ID_NAME);
    if let Some(id) = incoming.id.as_deref() {
        if let Ok(value) = http::HeaderValue::from_str(id) {
            headers.insert(crate::headers::MESSAGE_ID_NAME, value);
        }
    }
    let attempt = raw.attempt;
    let reply_to = raw.reply_to.clone();
    let settle: Box<dyn crate::broker::Settle> = match incoming.id {
        Some(id) => answer(id, &raw),
        None => Box::new(EventSettle {
            again: again.clone(),
            raw,
        }),
    };
    Some(crate::broker::Delivery {
        message: crate::Envelope {
            pattern,
            headers,
            payload: incoming.data,
        },
        attempt,
        reply_to,
        settle,
    })
}

/// Settles an event read from a wire that keeps nothing (pub/sub, core NATS): the broker
/// forgot it once it was handed over, so a failed one is delivered again from here, after
/// the backoff's delay, in this process (a restart loses it), and one given up on is
/// dropped (the server logged it with its reason).
#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
pub(crate) struct EventSettle {
    again: tokio::sync::mpsc::Sender<Raw>,
    raw: Raw,
}

#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
impl EventSettle {
    fn again_after(
        self,
        delay: std::time::Duration,
        attempt: u32,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        let EventSettle { again, mut raw } = self;
        raw.attempt = attempt;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if again.send(raw).await.is_err() {
                tracing::debug!("an event's handler stopped before it was delivered again");
            }
        });
        Box::pin(async { Ok(()) })
    }
}

#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
impl crate::broker::Settle for EventSettle {
    fn reply(
        self: Box<Self>,
        _reply: Reply,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn ack(self: Box<Self>) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn retry(
        self: Box<Self>,
        delay: std::time::Duration,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        let attempt = self.raw.attempt.saturating_add(1);
        self.again_after(delay, attempt)
    }

    fn defer(
        self: Box<Self>,
        delay: std::time::Duration,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        let attempt = self.raw.attempt;
        self.again_after(delay, attempt)
    }

    fn dead_letter(
        self: Box<Self>,
        reason: String,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        tracing::debug!(channel = %self.raw.channel, %reason, "an event given up on is dropped: this wire keeps no dead letters");
        Box::pin(async { Ok(()) })
    }
}

/// A request read from a wire whose only settlement is its answer.
#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
pub(crate) trait Answer: Send + Sync + 'static {
    /// Sends `reply` to the request's caller.
    fn answer(self: Box<Self>, reply: Reply)
        -> crate::broker::BoxFuture<Result<(), sdk::BoxError>>;
}

/// Settles a request with its [`Answer`]; the rest is nothing, as the wire keeps nothing
/// (a request is answered or its caller's deadline passes).
#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
pub(crate) struct RequestSettle<A>(pub Box<A>);

#[cfg(any(feature = "redis", feature = "nats", feature = "rabbitmq"))]
impl<A: Answer> crate::broker::Settle for RequestSettle<A> {
    fn reply(self: Box<Self>, reply: Reply) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        self.0.answer(reply)
    }

    fn ack(self: Box<Self>) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn retry(
        self: Box<Self>,
        _delay: std::time::Duration,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn defer(
        self: Box<Self>,
        _delay: std::time::Duration,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn dead_letter(
        self: Box<Self>,
        _reason: String,
    ) -> crate::broker::BoxFuture<Result<(), sdk::BoxError>> {
        Box::pin(async { Ok(()) })
    }
}

/// JSON for a payload: the bytes themselves when they are JSON (what the client sends), a
/// JSON string of them when not, `null` when empty.
pub(crate) fn json_or_string(payload: &[u8]) -> Cow<'_, [u8]> {
    if payload.is_empty() {
        return Cow::Borrowed(b"null");
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        return Cow::Borrowed(payload);
    }
    let text = String::from_utf8_lossy(payload);
    Cow::Owned(serde_json::to_vec(&text).unwrap_or_else(|_| b"null".to_vec()))
}

/// What a failed reply of this SDK says: the message of its `{"error": ...}` body, or the
/// body as text.
pub(crate) fn failure_message(reply: &Reply) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
    }
    match serde_json::from_slice::<Body>(&reply.payload) {
        Ok(body) => body.error,
        Err(_) => String::from_utf8_lossy(&reply.payload).into_owned(),
    }
}

/// A foreign error's status: `field` when it holds a 4xx or 5xx, else 500.
pub(crate) fn error_status(error: &serde_json::Value, fields: &[&str]) -> StatusCode {
    fields
        .iter()
        .filter_map(|field| error.get(field)?.as_u64())
        .filter_map(|code| StatusCode::from_u16(u16::try_from(code).ok()?).ok())
        .find(|status| status.is_client_error() || status.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_on_the_wire() {
        assert_eq!(&*json_or_string(b"{\"a\":1}"), b"{\"a\":1}");
        assert_eq!(&*json_or_string(b""), b"null");
        assert_eq!(&*json_or_string(b"plain text"), b"\"plain text\"");
    }

    #[test]
    fn a_foreign_errors_status_is_taken_when_it_is_one() {
        let error = serde_json::json!({"statusCode": 409, "code": 7});
        assert_eq!(
            error_status(&error, &["statusCode", "code"]),
            StatusCode::CONFLICT
        );
        let error = serde_json::json!({"code": 7});
        assert_eq!(
            error_status(&error, &["code"]),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
