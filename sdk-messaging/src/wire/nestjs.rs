//! NestJS microservices' format (`@nestjs/microservices` 10 to 12), the same on Redis and
//! NATS:
//!
//! - a request is `{"pattern": P, "data": D, "id": ID}` on the channel (subject) `P`;
//! - an event is `{"pattern": P, "data": D}`, with no id;
//! - a reply is `{"err": E, "response": R, "isDisposed": true, "id": ID}`, on Redis on the
//!   channel `P.reply`, on NATS to the request's inbox. A NestJS handler that returns a
//!   stream answers with several packets, the last one `isDisposed`; the caller keeps the
//!   last answer, as NestJS's `lastValueFrom` does.
//!
//! A failure travels as `err`: NestJS's own are `{"status": "error", "message": M}`; this
//! side adds `statusCode`, the status of its reply, and takes a foreign error's status
//! from `statusCode` or a numeric `status` (else 500), its body being the error as JSON.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::{
    error_status, failure_message, json_or_string, Codec, Incoming, ReplyBody, ReplyPacket,
};
use crate::Reply;

/// NestJS's format.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NestJs;

impl Codec for NestJs {
    fn name(&self) -> &'static str {
        "nestjs"
    }

    fn reply_channels<'a>(&self, pattern: &'a str) -> Vec<Cow<'a, str>> {
        vec![Cow::Owned(format!("{pattern}.reply"))]
    }

    fn reply_channel<'a>(&self, pattern: &'a str, _reply: &Reply) -> Cow<'a, str> {
        Cow::Owned(format!("{pattern}.reply"))
    }

    fn request(&self, pattern: &str, id: &str, payload: &[u8]) -> Vec<u8> {
        packet(pattern, Some(id), payload)
    }

    fn event(&self, pattern: &str, payload: &[u8]) -> Vec<u8> {
        packet(pattern, None, payload)
    }

    fn incoming(&self, bytes: &[u8]) -> Result<Option<Incoming>, String> {
        let Value::Object(mut packet) = serde_json::from_slice::<Value>(bytes)
            .map_err(|e| format!("not a NestJS packet (not JSON: {e})"))?
        else {
            return Err("not a NestJS packet (not a JSON object)".into());
        };
        if !packet.contains_key("pattern") {
            // A reply (`response`, `err`, `isDisposed`) on a channel a handler shares.
            return Ok(None);
        }
        let id = match packet.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id),
            Some(other) => Some(other.to_string()),
        };
        let data = packet.remove("data").unwrap_or(Value::Null);
        let data = serde_json::to_vec(&data).map_err(|e| e.to_string())?;
        Ok(Some(Incoming {
            id,
            data: Bytes::from(data),
        }))
    }

    fn reply(&self, id: &str, reply: &Reply) -> Vec<u8> {
        let mut out = Vec::with_capacity(reply.payload.len() + id.len() + 48);
        if reply.succeeded() {
            out.extend_from_slice(b"{\"response\":");
            out.extend_from_slice(&json_or_string(&reply.payload));
        } else {
            out.extend_from_slice(b"{\"err\":");
            out.extend_from_slice(error_of(reply).to_string().as_bytes());
        }
        out.extend_from_slice(b",\"isDisposed\":true,\"id\":");
        push_string(&mut out, id);
        out.push(b'}');
        out
    }

    fn reply_packet(&self, bytes: &[u8]) -> Option<ReplyPacket> {
        let Value::Object(mut packet) = serde_json::from_slice::<Value>(bytes).ok()? else {
            return None;
        };
        let id = match packet.remove("id")? {
            Value::String(id) => id,
            other => other.to_string(),
        };
        let body = body_of(packet)?;
        Some(ReplyPacket { id, body })
    }
}

/// What a reply packet says, its id aside: on RabbitMQ and NATS the broker ties a reply to
/// its request (a correlation id, an inbox), and NestJS's RabbitMQ server sends no `id`.
pub(crate) fn reply_body(bytes: &[u8]) -> Option<ReplyBody> {
    let Value::Object(packet) = serde_json::from_slice::<Value>(bytes).ok()? else {
        return None;
    };
    body_of(packet)
}

/// The answer a broker matched to a request on `pattern` (by correlation id or inbox): the
/// first packet's answer, `null` for a stream that ended without one.
#[cfg(any(feature = "nats", feature = "rabbitmq"))]
pub(crate) fn answer(bytes: &[u8], pattern: &str) -> Result<Reply, sdk::BoxError> {
    match reply_body(bytes) {
        Some(ReplyBody::Answer { reply, .. }) => Ok(reply),
        Some(ReplyBody::Done | ReplyBody::KeepWaiting) => {
            Ok(Reply::new(StatusCode::OK, Bytes::from_static(b"null")))
        }
        None => Err(crate::broker::broken(format!(
            "the answer to a request on {pattern} is not a NestJS packet"
        ))),
    }
}

fn body_of(mut packet: serde_json::Map<String, Value>) -> Option<ReplyBody> {
    let last = packet.get("isDisposed").and_then(Value::as_bool) == Some(true);
    Some(match (packet.remove("err"), packet.remove("response")) {
        (Some(err), _) if !err.is_null() => ReplyBody::Answer {
            reply: failure(&err),
            last: true,
        },
        (_, Some(response)) => ReplyBody::Answer {
            reply: Reply::new(StatusCode::OK, Bytes::from(response.to_string())),
            last,
        },
        _ if last => ReplyBody::Done,
        _ => return None,
    })
}

/// This side's failed `reply` as a NestJS `err`.
pub(crate) fn error_of(reply: &Reply) -> Value {
    serde_json::json!({
        "status": "error",
        "statusCode": reply.status.as_u16(),
        "message": failure_message(reply),
    })
}

/// A NestJS `err` as a failed reply: its status from `statusCode` or a numeric `status`
/// (else 500), its body the error as JSON.
pub(crate) fn failure(err: &Value) -> Reply {
    Reply::new(
        error_status(err, &["statusCode", "status"]),
        Bytes::from(err.to_string()),
    )
}

/// A NestJS packet's pattern, and whether it is a request (it has an id): what a consumer
/// of one queue for every pattern (NestJS's RabbitMQ server) routes by.
#[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))]
pub(crate) fn peek(bytes: &[u8]) -> Option<(String, bool)> {
    // A map, not a struct: serde would read a JSON array into a struct's fields in order.
    let Value::Object(mut packet) = serde_json::from_slice::<Value>(bytes).ok()? else {
        return None;
    };
    let pattern = match packet.remove("pattern")? {
        Value::String(pattern) => pattern,
        other => other.to_string(),
    };
    Some((pattern, packet.get("id").is_some_and(|id| !id.is_null())))
}

fn packet(pattern: &str, id: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let data = json_or_string(payload);
    let mut out = Vec::with_capacity(data.len() + pattern.len() + 64);
    out.extend_from_slice(b"{\"pattern\":");
    push_string(&mut out, pattern);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(&data);
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        push_string(&mut out, id);
    }
    out.push(b'}');
    out
}

/// Appends `text` as a JSON string.
pub(crate) fn push_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("as written")
    }

    #[test]
    fn requests_and_events_are_written_as_nestjs_writes_them() {
        let request = NestJs.request("math.sum", "7f", b"[1,2]");
        assert_eq!(
            json(&request),
            serde_json::json!({"pattern": "math.sum", "data": [1, 2], "id": "7f"})
        );
        let event = NestJs.event("user.created", b"{\"id\":1}");
        assert_eq!(
            json(&event),
            serde_json::json!({"pattern": "user.created", "data": {"id": 1}})
        );
    }

    #[test]
    fn what_nestjs_sends_is_read() {
        let incoming = NestJs
            .incoming(br#"{"pattern":"math.sum","data":[1,2],"id":"abc"}"#)
            .expect("as written")
            .expect("as written");
        assert_eq!(incoming.id.as_deref(), Some("abc"));
        assert_eq!(&incoming.data[..], b"[1,2]");
        let event = NestJs
            .incoming(br#"{"pattern":"user.created","data":{"id":1}}"#)
            .expect("as written")
            .expect("as written");
        assert_eq!(event.id, None);
        assert!(NestJs
            .incoming(br#"{"response":1,"id":"x","isDisposed":true}"#)
            .expect("as written")
            .is_none());
        assert!(NestJs.incoming(b"not json").is_err());
    }

    #[test]
    fn replies_go_both_ways() {
        let ok = NestJs.reply("abc", &Reply::new(StatusCode::OK, Bytes::from_static(b"3")));
        assert_eq!(
            json(&ok),
            serde_json::json!({"response": 3, "isDisposed": true, "id": "abc"})
        );
        let failed = NestJs.reply(
            "abc",
            &Reply::new(
                StatusCode::CONFLICT,
                Bytes::from_static(br#"{"error":"taken"}"#),
            ),
        );
        assert_eq!(
            json(&failed)["err"],
            serde_json::json!({"status": "error", "statusCode": 409, "message": "taken"})
        );

        let packet = NestJs
            .reply_packet(br#"{"err":null,"response":{"sum":3},"isDisposed":true,"id":"abc"}"#)
            .expect("as written");
        assert_eq!(packet.id, "abc");
        let ReplyBody::Answer { reply, last } = packet.body else {
            panic!("an answer")
        };
        assert!(last);
        assert_eq!(json(&reply.payload), serde_json::json!({"sum": 3}));

        let packet = NestJs
            .reply_packet(
                br#"{"err":{"status":"error","message":"Internal server error"},"id":"abc"}"#,
            )
            .expect("as written");
        let ReplyBody::Answer { reply, last } = packet.body else {
            panic!("an answer")
        };
        assert!(last);
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);

        let packet = NestJs
            .reply_packet(br#"{"isDisposed":true,"id":"abc"}"#)
            .expect("as written");
        assert!(matches!(packet.body, ReplyBody::Done));
    }

    #[test]
    fn a_queue_consumer_routes_by_the_packets_pattern() {
        assert_eq!(
            peek(br#"{"pattern":"math.sum","data":[1],"id":"a"}"#),
            Some(("math.sum".to_owned(), true))
        );
        assert_eq!(
            peek(br#"{"pattern":"user.created","data":{}}"#),
            Some(("user.created".to_owned(), false))
        );
        assert_eq!(peek(b"[1,2]"), None);
    }

    #[test]
    fn a_reply_without_an_id_is_read_where_the_broker_matched_it() {
        // NestJS's RabbitMQ server answers without `id`.
        let body = reply_body(br#"{"response":6,"isDisposed":true}"#).expect("a reply");
        let ReplyBody::Answer { reply, last } = body else {
            panic!("an answer")
        };
        assert!(last);
        assert_eq!(&reply.payload[..], b"6");
        assert!(NestJs
            .reply_packet(br#"{"response":6,"isDisposed":true}"#)
            .is_none());
    }
}
