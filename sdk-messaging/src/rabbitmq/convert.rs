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

/// The properties a message is published with: its id, correlation id and urgency as the
/// AMQP properties made for them (`message_id`, `correlation_id`, `priority`), the JSON
/// content type, and a header table only for what has no property (`traceparent`, the
/// caller's own): a table costs the broker on every message, about a fifth of a
/// persistent publish's time on RabbitMQ 3.12 (docs/benchmarks.md). An event or a queued
/// message is persistent, a request expires with its caller's deadline.
pub(crate) fn properties(message: &Envelope, kind: Kind) -> BasicProperties {
    let mut table = FieldTable::default();
    for (name, value) in &message.headers {
        let as_property = *name == headers::MESSAGE_ID_NAME
            || *name == headers::URGENCY_NAME
            || *name == headers::CORRELATION_ID_NAME;
        if !as_property {
            table.insert(name.as_str().into(), long_string(value.as_bytes()));
        }
    }
    let correlation_id = message.correlation_id();
    match kind {
        // A request's AMQP correlation id is taken by its reply (see `rpc`): the message's
        // own (its id, when the sender gave none) travels as a header.
        Kind::Request => {
            table.insert(
                headers::CORRELATION_ID.into(),
                long_string(correlation_id.as_bytes()),
            );
        }
        // Published straight to the service's queue: the routing key is the queue's name.
        Kind::Queue => {
            table.insert(
                headers::PATTERN.into(),
                long_string(message.pattern.as_str().as_bytes()),
            );
        }
        Kind::Event => {}
    }
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_priority(message.urgency().priority());
    if !table.inner().is_empty() {
        properties = properties.with_headers(table);
    }
    if !message.id().is_empty() {
        properties = properties.with_message_id(message.id().into());
    }
    if kind != Kind::Request && correlation_id != message.id() {
        properties = properties.with_correlation_id(correlation_id.into());
    }
    match kind {
        Kind::Event | Kind::Queue => properties.with_delivery_mode(PERSISTENT),
        Kind::Request => match header(&message.headers, sdk::deadline::DEADLINE_HEADER.as_str()) {
            Some(ms) if ms.parse::<u64>().is_ok() => properties.with_expiration(ms.into()),
            _ => properties,
        },
    }
}

fn long_string(bytes: &[u8]) -> AMQPValue {
    AMQPValue::LongString(LongString::from(bytes.to_vec()))
}

/// A message's headers as a field table, with the pattern it was sent to.
pub(super) fn table_of(headers: &HeaderMap, pattern: &Pattern) -> FieldTable {
    let mut table = to_table(headers);
    table.insert(
        headers::PATTERN.into(),
        long_string(pattern.as_str().as_bytes()),
    );
    table
}

pub(super) fn to_table(headers: &HeaderMap) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(name.as_str().into(), long_string(value.as_bytes()));
    }
    table
}

pub(crate) fn from_table(table: Option<&FieldTable>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(table) = table else {
        return headers;
    };
    for (name, value) in table {
        let Some(name) = headers::name(name.as_str().as_bytes()) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Urgency;

    fn event(extra: &[(&'static str, &'static str)]) -> Envelope {
        let mut headers = HeaderMap::new();
        headers.insert(headers::MESSAGE_ID_NAME, HeaderValue::from_static("id1"));
        headers.insert(
            sdk::trace::TRACEPARENT,
            HeaderValue::from_static("00-ab-cd-01"),
        );
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        Envelope {
            pattern: Pattern::message("order.placed").expect("pattern"),
            headers,
            payload: bytes::Bytes::from_static(b"{}"),
        }
    }

    fn table_names(properties: &BasicProperties) -> Vec<String> {
        let mut names: Vec<String> = properties
            .headers()
            .as_ref()
            .map(|t| t.inner().keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn an_event_carries_its_id_correlation_and_urgency_as_properties_and_reads_back() {
        let plain = properties(&event(&[]), Kind::Event);
        assert_eq!(table_names(&plain), ["traceparent"]);
        assert_eq!(
            plain.correlation_id(),
            &None,
            "the id is the correlation id"
        );
        let back = envelope("order.placed", &plain, b"{}".to_vec()).expect("envelope");
        assert_eq!((back.id(), back.correlation_id()), ("id1", "id1"));
        assert_eq!(back.urgency(), Urgency::Medium);
        assert_eq!(back.pattern.as_str(), "order.placed");

        let given = event(&[
            (headers::CORRELATION_ID, "c9"),
            (headers::URGENCY, "critical"),
        ]);
        let given = properties(&given, Kind::Event);
        assert_eq!(table_names(&given), ["traceparent"]);
        let back = envelope("order.placed", &given, b"{}".to_vec()).expect("envelope");
        assert_eq!((back.id(), back.correlation_id()), ("id1", "c9"));
        assert_eq!(back.urgency(), Urgency::Critical);
        assert_eq!(
            back.headers
                .get(sdk::trace::TRACEPARENT)
                .map(|v| v.as_bytes()),
            Some(&b"00-ab-cd-01"[..])
        );
    }

    #[test]
    fn a_queued_message_names_its_pattern_and_a_request_its_correlation_in_the_table() {
        let queued = properties(&event(&[]), Kind::Queue);
        assert_eq!(table_names(&queued), [headers::PATTERN, "traceparent"]);
        let back = envelope("queue_orders", &queued, b"{}".to_vec()).expect("envelope");
        assert_eq!(back.pattern.as_str(), "order.placed");
        let request = properties(&event(&[]), Kind::Request);
        assert_eq!(
            table_names(&request),
            [headers::CORRELATION_ID, "traceparent"]
        );
    }
}
