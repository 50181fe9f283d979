//! NestJS's and Ascender's Kafka transports, as records: what this connection writes and
//! how it reads theirs when its config says `wire = "nestjs"` or `wire = "ascender"`
//! (read from `@nestjs/microservices` 12 and `ascender-framework` 2.1, and checked
//! against both in the interop tests). The topic is the pattern itself; the value is the
//! payload alone; what ties a reply to its request travels in record headers:
//!
//! - **NestJS**: a request carries `kafka_correlationId`, `kafka_replyTopic` and
//!   `kafka_replyPartition`; a record without the first two is an event. The answer goes
//!   to that topic and partition with `kafka_correlationId`, `kafka_nest-is-disposed`, and
//!   on failure `kafka_nest-err` (the error, as JSON text) instead of a value. A string is
//!   written without quotes, and a value that is not a JSON object or array is read as
//!   text.
//! - **Ascender**: a request carries `correlationId`, an event none. The answer goes to
//!   the shared topic `_rpc:response` with `correlationId: response-<id>`; Ascender writes
//!   its failures (`{error, code, details, metadata}`) to the request's own topic instead,
//!   so a caller here reads both, and this side does the same when it answers, as an
//!   Ascender caller that read a failure on `_rpc:response` fails every call it makes
//!   after. `defer-<id>` asks for more time: the caller's deadline decides here.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use rdkafka::message::{Headers, OwnedHeaders};
use serde_json::Value;

use super::{header, header_text as text};
use crate::{
    wire::{ascender, json_or_string, nestjs},
    Reply, Wire,
};

const NEST_CORRELATION: &str = "kafka_correlationId";
const NEST_REPLY_TOPIC: &str = "kafka_replyTopic";
const NEST_REPLY_PARTITION: &str = "kafka_replyPartition";
const NEST_ERR: &str = "kafka_nest-err";
const NEST_DISPOSED: &str = "kafka_nest-is-disposed";
const CORRELATION: &str = "correlationId";

/// The topic Ascender's callers read answers on.
pub(super) const ASCENDER_RESPONSES: &str = ascender::RESPONSES;

/// What a record on a handler's topic is.
#[derive(Debug, PartialEq)]
pub(super) enum Role {
    /// A request with its id, the topic and partition its answer goes to.
    Request {
        id: String,
        reply_to: String,
        partition: Option<i32>,
    },
    Event,
    /// Not for a handler: an answer or a defer on the request's topic (Ascender).
    Neither,
}

/// The role a record of `wire` plays, from its headers.
pub(super) fn role(wire: Wire, headers: Option<&impl Headers>) -> Role {
    match wire {
        Wire::NestJs => match (
            text(headers, NEST_CORRELATION),
            text(headers, NEST_REPLY_TOPIC),
        ) {
            (Some(id), Some(reply_to)) => Role::Request {
                id: id.to_owned(),
                reply_to: reply_to.to_owned(),
                partition: text(headers, NEST_REPLY_PARTITION).and_then(|p| p.parse().ok()),
            },
            _ => Role::Event,
        },
        _ => match text(headers, CORRELATION) {
            None => Role::Event,
            Some(id) if id.starts_with("response-") || id.starts_with("defer-") => Role::Neither,
            Some(id) => Role::Request {
                id: id.to_owned(),
                reply_to: ASCENDER_RESPONSES.to_owned(),
                partition: None,
            },
        },
    }
}

/// The headers `wire`'s request `id` carries besides the message's own, answered on
/// `reply_to` (NestJS; Ascender's answers go to `_rpc:response`).
pub(super) fn request_headers(
    wire: Wire,
    headers: OwnedHeaders,
    id: &str,
    reply_to: &str,
) -> OwnedHeaders {
    match wire {
        Wire::NestJs => headers
            .insert(header(NEST_CORRELATION, id))
            .insert(header(NEST_REPLY_TOPIC, reply_to))
            .insert(header(NEST_REPLY_PARTITION, "0")),
        _ => headers.insert(header(CORRELATION, id)),
    }
}

/// The value `wire` writes for the JSON `payload`; `None` for no value (NestJS's `null`).
pub(super) fn value(wire: Wire, payload: &[u8]) -> Option<Cow<'_, [u8]>> {
    let json = json_or_string(payload);
    if wire != Wire::NestJs {
        return Some(json);
    }
    match serde_json::from_slice::<Value>(&json) {
        Ok(Value::Null) => None,
        Ok(Value::String(text)) => Some(Cow::Owned(text.into_bytes())),
        _ => Some(json),
    }
}

/// A record's value as JSON for a handler or a caller (`null` for none).
pub(super) fn json(value: Option<&[u8]>) -> Bytes {
    match value {
        None => Bytes::from_static(b"null"),
        Some(value) => Bytes::from(json_or_string(value).into_owned()),
    }
}

/// The record that answers a request: its topic, partition, headers and value.
pub(super) struct Answer {
    pub topic: String,
    pub partition: Option<i32>,
    pub headers: OwnedHeaders,
    pub value: Option<Vec<u8>>,
}

/// How this side answers `wire`'s request `id`, read on `topic`, with `reply`.
pub(super) fn answer(wire: Wire, topic: &str, role: &Role, reply: &Reply) -> Option<Answer> {
    let Role::Request {
        id,
        reply_to,
        partition,
    } = role
    else {
        return None;
    };
    let ok = reply.succeeded();
    Some(match wire {
        Wire::NestJs => {
            let mut headers = OwnedHeaders::new()
                .insert(header(NEST_CORRELATION, id))
                .insert(rdkafka::message::Header {
                    key: NEST_DISPOSED,
                    value: Some(&[0u8][..]),
                });
            if !ok {
                let err = nestjs::error_of(reply).to_string();
                headers = headers.insert(header(NEST_ERR, &err));
            }
            Answer {
                topic: reply_to.clone(),
                partition: *partition,
                headers,
                value: ok
                    .then(|| value(wire, &reply.payload).map(Cow::into_owned))
                    .flatten(),
            }
        }
        _ => {
            let correlation = format!("response-{id}");
            let headers = OwnedHeaders::new().insert(header(CORRELATION, &correlation));
            let (topic, value) = if ok {
                (
                    reply_to.clone(),
                    json_or_string(&reply.payload).into_owned(),
                )
            } else {
                let error = ascender::error_of(reply).to_string().into_bytes();
                (topic.to_owned(), error)
            };
            Answer {
                topic,
                partition: None,
                headers,
                value: Some(value),
            }
        }
    })
}

/// A record a caller read: the request it answers, and its reply (`None`: a defer, keep
/// waiting). `None` for a record that answers nothing.
pub(super) fn read_reply(
    wire: Wire,
    headers: Option<&impl Headers>,
    value: Option<&[u8]>,
) -> Option<(String, Option<Reply>)> {
    match wire {
        Wire::NestJs => {
            let id = text(headers, NEST_CORRELATION)?.to_owned();
            if let Some(err) = text(headers, NEST_ERR) {
                let err = serde_json::from_str(err).unwrap_or_else(|_| Value::from(err));
                return Some((id, Some(nestjs::failure(&err))));
            }
            Some((id, Some(Reply::new(StatusCode::OK, json(value)))))
        }
        _ => {
            let correlation = text(headers, CORRELATION)?;
            if let Some(id) = correlation.strip_prefix("defer-") {
                return Some((id.to_owned(), None));
            }
            let id = correlation.strip_prefix("response-")?.to_owned();
            let payload = serde_json::from_slice(&json(value)).unwrap_or(Value::Null);
            Some((id, Some(ascender::answer_of(&payload))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
        pairs
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| h.insert(header(k, v)))
    }

    #[test]
    fn nestjs_requests_are_told_from_events_by_their_reply_topic() {
        let request = headers(&[
            (NEST_CORRELATION, "c1"),
            (NEST_REPLY_TOPIC, "math.sum.reply"),
            (NEST_REPLY_PARTITION, "2"),
        ]);
        assert_eq!(
            role(Wire::NestJs, Some(&request)),
            Role::Request {
                id: "c1".into(),
                reply_to: "math.sum.reply".into(),
                partition: Some(2)
            }
        );
        let event = headers(&[(NEST_CORRELATION, "c1")]);
        assert_eq!(role(Wire::NestJs, Some(&event)), Role::Event);
        assert_eq!(role(Wire::NestJs, None::<&OwnedHeaders>), Role::Event);
    }

    #[test]
    fn ascender_answers_on_a_request_topic_are_for_no_handler() {
        let answer = headers(&[(CORRELATION, "response-c1")]);
        assert_eq!(role(Wire::Ascender, Some(&answer)), Role::Neither);
        let request = headers(&[(CORRELATION, "c1")]);
        assert!(matches!(
            role(Wire::Ascender, Some(&request)),
            Role::Request { reply_to, .. } if reply_to == ASCENDER_RESPONSES
        ));
    }

    #[test]
    fn nestjs_writes_strings_bare_and_null_as_no_value() {
        assert_eq!(value(Wire::NestJs, b"\"hi\"").as_deref(), Some(&b"hi"[..]));
        assert_eq!(value(Wire::NestJs, b"null"), None);
        assert_eq!(
            value(Wire::NestJs, b"{\"a\":1}").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(
            value(Wire::Ascender, b"\"hi\"").as_deref(),
            Some(&b"\"hi\""[..])
        );
        assert_eq!(&json(Some(b"hi")), &b"\"hi\""[..]);
        assert_eq!(&json(None), &b"null"[..]);
    }

    #[test]
    fn failures_go_where_each_framework_writes_them() {
        let failed = Reply::new(
            StatusCode::CONFLICT,
            Bytes::from_static(b"{\"error\":\"taken\"}"),
        );
        let nest = Role::Request {
            id: "c1".into(),
            reply_to: "user.create.reply".into(),
            partition: Some(0),
        };
        let answer = answer(Wire::NestJs, "user.create", &nest, &failed).expect("a request");
        assert_eq!(answer.topic, "user.create.reply");
        assert_eq!(answer.value, None);
        let (id, reply) = read_reply(Wire::NestJs, Some(&answer.headers), None).expect("a reply");
        assert_eq!(id, "c1");
        assert_eq!(reply.expect("an answer").status, StatusCode::CONFLICT);

        let asc = role(Wire::Ascender, Some(&headers(&[(CORRELATION, "c2")])));
        let answer =
            super::answer(Wire::Ascender, "user.create", &asc, &failed).expect("a request");
        assert_eq!(
            answer.topic, "user.create",
            "Ascender's failures go to the request's topic"
        );
        let (id, reply) = read_reply(
            Wire::Ascender,
            Some(&answer.headers),
            answer.value.as_deref(),
        )
        .expect("a reply");
        assert_eq!(id, "c2");
        assert_eq!(reply.expect("an answer").status, StatusCode::CONFLICT);
        let ok = Reply::new(StatusCode::OK, Bytes::from_static(b"3"));
        let answer = super::answer(Wire::Ascender, "math.sum", &asc, &ok).expect("a request");
        assert_eq!(answer.topic, ASCENDER_RESPONSES);
        let defer = headers(&[(CORRELATION, "defer-c2")]);
        assert_eq!(
            read_reply(Wire::Ascender, Some(&defer), Some(b"defer"))
                .map(|(id, r)| (id, r.is_none())),
            Some(("c2".to_owned(), true))
        );
    }
}
