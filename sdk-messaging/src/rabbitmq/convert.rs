//! Between the SDK's messages and AMQP's: headers as a field table, urgency as priority,
//! the id and correlation id as properties.

use http::{HeaderMap, HeaderName, HeaderValue};
use lapin::{
    types::{AMQPValue, FieldTable, LongString},
    BasicProperties,
};

use crate::{
    envelope::{headers, Kind},
    Envelope, Pattern,
};

/// Persistent (survives a broker restart once confirmed).
const PERSISTENT: u8 = 2;

/// The properties a message is published with: its headers, priority, id, correlation id,
/// JSON content type; an event persistent, a request expiring with its caller's deadline.
pub(super) fn properties(message: &Envelope, kind: Kind) -> BasicProperties {
    let mut table = table_of(&message.headers, &message.pattern);
    if kind == Kind::Request && !message.headers.contains_key(headers::CORRELATION_ID) {
        // A request's AMQP correlation id is taken by its reply (see `rpc`): the message's
        // own (its id, when the sender gave none) travels as a header.
        table.insert(
            headers::CORRELATION_ID.into(),
            AMQPValue::LongString(LongString::from(
                message.correlation_id().as_bytes().to_vec(),
            )),
        );
    }
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_priority(message.urgency().priority())
        .with_headers(table);
    if !message.id().is_empty() {
        properties = properties.with_message_id(message.id().into());
    }
    if !message.correlation_id().is_empty() {
        properties = properties.with_correlation_id(message.correlation_id().into());
    }
    match kind {
        Kind::Event | Kind::Queue => properties.with_delivery_mode(PERSISTENT),
        Kind::Request => match header(&message.headers, headers::TIMEOUT_MS) {
            Some(ms) if ms.parse::<u64>().is_ok() => properties.with_expiration(ms.into()),
            _ => properties,
        },
    }
}

/// A message's headers as a field table, with the pattern it was sent to.
pub(super) fn table_of(headers: &HeaderMap, pattern: &Pattern) -> FieldTable {
    let mut table = to_table(headers);
    table.insert(
        headers::PATTERN.into(),
        AMQPValue::LongString(LongString::from(pattern.as_str().as_bytes().to_vec())),
    );
    table
}

pub(super) fn to_table(headers: &HeaderMap) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(
            name.as_str().into(),
            AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
        );
    }
    table
}

pub(super) fn from_table(table: Option<&FieldTable>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(table) = table else {
        return headers;
    };
    for (name, value) in table {
        let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        let text = match value {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.as_str().to_owned(),
            AMQPValue::LongInt(n) => n.to_string(),
            AMQPValue::LongLongInt(n) => n.to_string(),
            AMQPValue::ShortShortUInt(n) => n.to_string(),
            _ => continue,
        };
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.append(name, value);
        }
    }
    headers
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The message a delivery carries: sent to the pattern its `sdk-pattern` header names (a
/// message the SDK published again to its queue keeps it), else its routing key; `None` when
/// that is not a pattern.
pub(super) fn envelope(
    routing_key: &str,
    properties: &BasicProperties,
    data: Vec<u8>,
) -> Option<Envelope> {
    let mut headers = from_table(properties.headers().as_ref());
    let pattern = match headers.remove(headers::PATTERN) {
        Some(value) => Pattern::message(value.to_str().ok()?).ok()?,
        None => Pattern::message(routing_key).ok()?,
    };
    // Properties set by another AMQP client count too.
    let mut set = |name: &'static str, value: Option<&lapin::types::ShortString>| {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v.as_str()).ok()) {
            headers
                .entry(HeaderName::from_static(name))
                .or_insert(value);
        }
    };
    set(headers::MESSAGE_ID, properties.message_id().as_ref());
    set(
        headers::CORRELATION_ID,
        properties.correlation_id().as_ref(),
    );
    if let Some(priority) = properties.priority() {
        let urgency = crate::Urgency::from_priority(*priority);
        headers
            .entry(headers::URGENCY_NAME)
            .or_insert(HeaderValue::from_static(urgency.as_str()));
    }
    Some(Envelope {
        pattern,
        headers,
        payload: bytes::Bytes::from(data),
    })
}
