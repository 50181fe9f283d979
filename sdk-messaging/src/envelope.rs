//! What a broker carries: a message ([`Envelope`]) and a reply ([`Reply`]), with the SDK's
//! headers.
//!
//! A message's id, correlation id and urgency travel as headers (`sdk-message-id`,
//! `sdk-correlation-id`, `sdk-urgency`), beside the caller's own and the W3C `traceparent`
//! the pipeline adds, so every transport carries them the same way (NATS headers, AMQP
//! properties and headers, Redis stream fields). A reply's status travels as `sdk-status`:
//! 200 for a handler that answered, the handler's status for one that failed with one, 500
//! otherwise, 400 for a request that did not decode. Every header costs on both ends of
//! every message, so one that says what a reader assumes anyway is left out: the urgency
//! when it is medium, the correlation id when it is the message's id, a reply's status when
//! it is 200; the sender's deadline travels with requests only.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::{Pattern, Urgency};

/// The SDK's header names.
pub mod headers {
    use http::HeaderName;

    /// A message's unique id: the same on every attempt, so consumers drop duplicates.
    pub const MESSAGE_ID: &str = "sdk-message-id";
    /// The id that ties a reply (and the calls a handler makes) to the request.
    pub const CORRELATION_ID: &str = "sdk-correlation-id";
    /// `low`, `medium`, `high` or `critical`.
    pub const URGENCY: &str = "sdk-urgency";
    /// A reply's status code (absent: 200).
    pub const STATUS: &str = "sdk-status";
    /// The pattern a message was sent to, for brokers whose routing key may differ from it
    /// (RabbitMQ, when the SDK publishes a message again straight to its queue).
    pub const PATTERN: &str = "sdk-pattern";
    /// Which delivery of an event this is, for brokers that do not count (RabbitMQ's
    /// classic queues): set when the SDK delivers it again.
    pub const ATTEMPT: &str = "sdk-attempt";
    /// [`MESSAGE_ID`] as a header name.
    pub const MESSAGE_ID_NAME: HeaderName = HeaderName::from_static(MESSAGE_ID);
    /// [`CORRELATION_ID`] as a header name.
    pub const CORRELATION_ID_NAME: HeaderName = HeaderName::from_static(CORRELATION_ID);
    /// [`URGENCY`] as a header name.
    pub const URGENCY_NAME: HeaderName = HeaderName::from_static(URGENCY);
    /// [`STATUS`] as a header name.
    pub const STATUS_NAME: HeaderName = HeaderName::from_static(STATUS);
    /// Why a message went to the dead letters.
    pub const DEAD_REASON: &str = "sdk-dead-reason";
    /// The pattern a dead-lettered message was sent to.
    pub const DEAD_PATTERN: &str = "sdk-dead-pattern";

    /// The header name `name` read from a broker: one of the names every message carries
    /// without parsing or allocating (a parsed name that is not one of HTTP's standard
    /// headers is a copy of its bytes), any other parsed; `None` if it is not a valid one.
    #[cfg_attr(
        not(any(
            feature = "nats",
            feature = "rabbitmq",
            feature = "redis",
            feature = "kafka"
        )),
        allow(dead_code)
    )] // read by the transports
    pub(crate) fn name(name: &[u8]) -> Option<HeaderName> {
        /// The names a message or reply carries most, as they are written on the wire.
        const KNOWN: [HeaderName; 6] = [
            MESSAGE_ID_NAME,
            sdk::trace::TRACEPARENT,
            sdk::deadline::DEADLINE_HEADER,
            STATUS_NAME,
            CORRELATION_ID_NAME,
            URGENCY_NAME,
        ];
        match KNOWN.iter().find(|known| known.as_str().as_bytes() == name) {
            Some(known) => Some(known.clone()),
            None => HeaderName::from_bytes(name).ok(),
        }
    }
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

/// Slack for clocks that differ a little, before a request is taken to be past its deadline.
#[cfg_attr(not(any(feature = "redis", feature = "kafka")), allow(dead_code))] // used by those transports
const CLOCK_SLACK_MS: u64 = 1000;

/// Unix time in milliseconds.
#[cfg_attr(not(any(feature = "redis", feature = "kafka")), allow(dead_code))] // used by those transports
pub(crate) fn now_ms() -> u64 {
    sdk_base::clock::now_unix_ms()
}

impl Envelope {
    /// Charges the time this request waited in the broker since `stored_ms` (Unix
    /// milliseconds, the broker's or sender's clock, less a second for clocks that differ)
    /// to the time its caller said it would wait ([`sdk::deadline::DEADLINE_HEADER`]), so
    /// the handler gets what is really left; `false` when nothing is (a consumer that got
    /// to it this late answers nobody).
    #[cfg_attr(not(any(feature = "redis", feature = "kafka")), allow(dead_code))] // used by those transports
    pub(crate) fn charge_wait(&mut self, stored_ms: u64) -> bool {
        let Some(left) = sdk::deadline::remaining(&self.headers) else {
            return true;
        };
        let waited = now_ms()
            .saturating_sub(stored_ms)
            .saturating_sub(CLOCK_SLACK_MS);
        let left = u64::try_from(left.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(waited);
        self.headers.insert(
            sdk::deadline::DEADLINE_HEADER,
            http::HeaderValue::from(left),
        );
        left > 0
    }

    /// The message id (empty if the sender set none).
    pub fn id(&self) -> &str {
        header(&self.headers, &headers::MESSAGE_ID_NAME)
    }

    /// The correlation id: the one the sender gave, else the message's id (a message
    /// carries `sdk-correlation-id` only when it differs from its id).
    pub fn correlation_id(&self) -> &str {
        match header(&self.headers, &headers::CORRELATION_ID_NAME) {
            "" => self.id(),
            given => given,
        }
    }

    /// The urgency (medium if the sender said nothing, or nothing readable).
    pub fn urgency(&self) -> Urgency {
        header(&self.headers, &headers::URGENCY_NAME)
            .parse()
            .unwrap_or_default()
    }
}

/// A reply to a request.
#[derive(Clone, Debug)]
pub struct Reply {
    /// 200, or the handler's failure.
    pub status: StatusCode,
    /// Headers (the status, when not 200).
    pub headers: HeaderMap,
    /// The body.
    pub payload: Bytes,
}

impl Reply {
    /// Whether the handler succeeded (a 2xx): what a foreign wire writes as an answer
    /// rather than an error.
    pub(crate) fn succeeded(&self) -> bool {
        self.status.is_success()
    }

    /// A reply with `status` and `payload`, its headers carrying the status unless it is
    /// 200 (what a reply without one means). Nothing else: each transport ties a reply to
    /// its request by its own means (a NATS inbox, an AMQP correlation id, the request's
    /// id on Redis).
    pub fn new(status: StatusCode, payload: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        if status != StatusCode::OK {
            headers.insert(headers::STATUS_NAME, HeaderValue::from(status.as_u16()));
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
            .get(&headers::STATUS_NAME)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(|v| StatusCode::from_u16(v).ok())
            .unwrap_or(StatusCode::OK)
    }
}

/// A header as text ("" if absent or unreadable). `name` is a `HeaderName`, not text: a
/// `&str` would be parsed and validated again on every lookup.
fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A fresh random id (128 bits, 32 hex digits): message and correlation ids.
#[cfg_attr(not(any(feature = "redis", feature = "kafka")), allow(dead_code))] // used by those transports
pub(crate) fn new_id() -> String {
    new_id_bytes().iter().map(|&b| char::from(b)).collect()
}

/// A fresh id as a header value.
pub(crate) fn new_id_value() -> HeaderValue {
    // Hex digits are always a valid value; the fallback is never taken.
    HeaderValue::from_bytes(&new_id_bytes()).unwrap_or(HeaderValue::from_static("0"))
}

fn new_id_bytes() -> [u8; 32] {
    sdk::trace::hex_id(fastrand::u128(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_from_a_broker_are_the_known_ones_or_parsed() {
        for known in [
            "sdk-message-id",
            "traceparent",
            "x-request-deadline",
            "sdk-status",
        ] {
            assert_eq!(
                headers::name(known.as_bytes()).map(|n| n.as_str().to_owned()),
                Some(known.to_owned())
            );
        }
        assert_eq!(
            headers::name(b"X-Tenant"),
            Some(HeaderName::from_static("x-tenant"))
        );
        assert_eq!(headers::name(b"bad name"), None);
    }

    fn envelope(pairs: &[(&'static str, &'static str)]) -> Envelope {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        Envelope {
            pattern: Pattern::message("user.create").expect("a pattern"),
            headers,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn what_a_message_leaves_out_reads_as_its_default() {
        let plain = envelope(&[(headers::MESSAGE_ID, "abc")]);
        assert_eq!(plain.correlation_id(), "abc", "the id stands in");
        assert_eq!(plain.urgency(), Urgency::Medium);
        let given = envelope(&[
            (headers::MESSAGE_ID, "abc"),
            (headers::CORRELATION_ID, "req-42"),
            (headers::URGENCY, "critical"),
        ]);
        assert_eq!(given.correlation_id(), "req-42");
        assert_eq!(given.urgency(), Urgency::Critical);
    }

    #[test]
    fn a_reply_carries_its_status_only_when_it_is_not_200() {
        let ok = Reply::new(StatusCode::OK, Bytes::from_static(b"{}"));
        assert!(ok.headers.is_empty(), "{:?}", ok.headers);
        assert_eq!(Reply::status_of(&ok.headers), StatusCode::OK);
        let refused = Reply::new(StatusCode::UNPROCESSABLE_ENTITY, Bytes::new());
        assert_eq!(
            Reply::status_of(&refused.headers),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_eq!(new_id_value().len(), 32);
    }

    #[test]
    fn the_wait_in_the_broker_is_charged_to_the_callers_deadline() {
        let left = |e: &Envelope| sdk::deadline::remaining(&e.headers).map(|d| d.as_millis());
        // No deadline: nothing to charge, and the request is handled.
        let mut none = envelope(&[]);
        assert!(none.charge_wait(now_ms().saturating_sub(60_000)));
        assert_eq!(left(&none), None);
        // 5 s to go when sent, stored 3 s ago: 3 s less a second of clock slack are
        // charged, so about 3 s are left.
        let mut waited = envelope(&[("x-request-deadline", "5000")]);
        assert!(waited.charge_wait(now_ms().saturating_sub(3_000)));
        let after = left(&waited).unwrap_or_default();
        assert!((2_900..=3_000).contains(&after), "{after} ms left");
        // Stored within the slack: nothing charged.
        let mut fresh = envelope(&[("x-request-deadline", "5000")]);
        assert!(fresh.charge_wait(now_ms()));
        assert_eq!(left(&fresh), Some(5_000));
        // 1 s to go, stored 10 s ago: nothing is left, and the consumer answers nobody.
        let mut late = envelope(&[("x-request-deadline", "1000")]);
        assert!(!late.charge_wait(now_ms().saturating_sub(10_000)));
        assert_eq!(left(&late), Some(0));
    }
}
