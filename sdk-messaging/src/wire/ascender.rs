//! The Ascender Framework's format on Redis (`ascender-framework` 2.x, read from its
//! source and checked against the real package in the interop tests):
//!
//! - a request is `{"correlationId": ID, "payload": "<JSON text>"}` on the channel that is
//!   the pattern (the payload is JSON inside a JSON string, as Ascender's `parse_data`
//!   writes it);
//! - an event is `{"payload": "<JSON text>"}`, with no correlation id;
//! - an answer is `{"correlationId": "response-ID", "payload": "<JSON text>"}` on the shared
//!   channel `_rpc:response`. A failure is the same with the payload
//!   `{"error", "code", "details", "metadata"}` (Ascender's `RPCException`), published on
//!   the request's pattern: Ascender does so, and a caller here listens there too. An
//!   Ascender caller does not, so it never learns of a failure and waits out its timeout,
//!   with this side's handlers as with its own; a failure on `_rpc:response` would reach
//!   it, but Ascender 2.1 then ends its one stream of answers with that error, and every
//!   later call of that client fails with it (the interop test shows both);
//! - `{"correlationId": "defer-ID", "payload": "defer"}` asks the caller to wait longer:
//!   here the caller's deadline decides, so it changes nothing.
//!
//! A failure's status is its `code` when that is a 4xx or 5xx, else 500.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::{
    error_status, failure_message, json_or_string, nestjs::push_string, Codec, Incoming, ReplyBody,
    ReplyPacket,
};
use crate::Reply;

/// The channel (on Kafka the topic) Ascender's callers read answers on.
pub(crate) const RESPONSES: &str = "_rpc:response";

/// Ascender's format.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ascender;

impl Codec for Ascender {
    fn name(&self) -> &'static str {
        "ascender"
    }

    fn reply_channels<'a>(&self, pattern: &'a str) -> Vec<Cow<'a, str>> {
        vec![Cow::Borrowed(RESPONSES), Cow::Borrowed(pattern)]
    }

    fn reply_channel<'a>(&self, pattern: &'a str, reply: &Reply) -> Cow<'a, str> {
        if reply.succeeded() {
            Cow::Borrowed(RESPONSES)
        } else {
            Cow::Borrowed(pattern)
        }
    }

    fn request(&self, _pattern: &str, id: &str, payload: &[u8]) -> Vec<u8> {
        message(Some(id), &json_or_string(payload))
    }

    fn event(&self, _pattern: &str, payload: &[u8]) -> Vec<u8> {
        message(None, &json_or_string(payload))
    }

    fn incoming(&self, bytes: &[u8]) -> Result<Option<Incoming>, String> {
        let Value::Object(mut message) = serde_json::from_slice::<Value>(bytes)
            .map_err(|e| format!("not an Ascender message (not JSON: {e})"))?
        else {
            return Err("not an Ascender message (not a JSON object)".into());
        };
        let id = match message.remove("correlationId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if id.starts_with("response-") || id.starts_with("defer-") => {
                // An answer to a request on this pattern (Ascender's failures), or a defer.
                return Ok(None);
            }
            Some(Value::String(id)) => Some(id),
            Some(other) => Some(other.to_string()),
        };
        let payload = unwrap_text(message.remove("payload").unwrap_or(Value::Null));
        let data = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
        Ok(Some(Incoming {
            id,
            data: Bytes::from(data),
        }))
    }

    fn reply(&self, id: &str, reply: &Reply) -> Vec<u8> {
        let text = if reply.succeeded() {
            String::from_utf8_lossy(&json_or_string(&reply.payload)).into_owned()
        } else {
            error_of(reply).to_string()
        };
        let mut out = Vec::with_capacity(text.len() + id.len() + 48);
        out.extend_from_slice(b"{\"correlationId\":");
        push_string(&mut out, &format!("response-{id}"));
        out.extend_from_slice(b",\"payload\":");
        push_string(&mut out, &text);
        out.push(b'}');
        out
    }

    fn reply_packet(&self, bytes: &[u8]) -> Option<ReplyPacket> {
        let Value::Object(mut message) = serde_json::from_slice::<Value>(bytes).ok()? else {
            return None;
        };
        let Value::String(correlation) = message.remove("correlationId")? else {
            return None;
        };
        if let Some(id) = correlation.strip_prefix("defer-") {
            return Some(ReplyPacket {
                id: id.to_owned(),
                body: ReplyBody::KeepWaiting,
            });
        }
        let id = correlation.strip_prefix("response-")?.to_owned();
        let payload = unwrap_text(message.remove("payload").unwrap_or(Value::Null));
        let reply = answer_of(&payload);
        Some(ReplyPacket {
            id,
            body: ReplyBody::Answer { reply, last: true },
        })
    }
}

/// This side's failed `reply` as Ascender's `RPCException`.
pub(crate) fn error_of(reply: &Reply) -> Value {
    serde_json::json!({
        "error": failure_message(reply),
        "code": reply.status.as_u16(),
        "details": null,
        "metadata": {},
    })
}

/// An Ascender answer's payload as a reply: failed, with its `code` as the status (when a
/// 4xx or 5xx, else 500), when it has `RPCException`'s four keys.
pub(crate) fn answer_of(payload: &Value) -> Reply {
    let failed = ["error", "code", "details", "metadata"]
        .iter()
        .all(|key| payload.get(key).is_some());
    let status = if failed {
        error_status(payload, &["code"])
    } else {
        StatusCode::OK
    };
    Reply::new(status, Bytes::from(payload.to_string()))
}

/// `{"correlationId": ID, "payload": "<JSON text>"}`, without the id for an event.
fn message(id: Option<&str>, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() * 2 + 64);
    out.push(b'{');
    if let Some(id) = id {
        out.extend_from_slice(b"\"correlationId\":");
        push_string(&mut out, id);
        out.push(b',');
    }
    out.extend_from_slice(b"\"payload\":");
    push_string(&mut out, &String::from_utf8_lossy(json));
    out.push(b'}');
    out
}

/// A payload as Ascender means it: a string holding JSON is that JSON; any other string,
/// or a payload sent as a plain value, is itself.
fn unwrap_text(payload: Value) -> Value {
    match payload {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("as written")
    }

    #[test]
    fn requests_and_events_carry_json_in_a_string() {
        assert_eq!(
            json(&Ascender.request("math.sum", "c1", b"[1,2]")),
            serde_json::json!({"correlationId": "c1", "payload": "[1,2]"})
        );
        assert_eq!(
            json(&Ascender.event("user.created", b"{\"id\":1}")),
            serde_json::json!({"payload": "{\"id\":1}"})
        );
    }

    #[test]
    fn what_ascender_sends_is_read() {
        let request = Ascender
            .incoming(br#"{"correlationId":"c1","payload":"{\"a\": 1}"}"#)
            .expect("as written")
            .expect("as written");
        assert_eq!(request.id.as_deref(), Some("c1"));
        assert_eq!(json(&request.data), serde_json::json!({"a": 1}));
        let event = Ascender
            .incoming(br#"{"payload":"\"hello\""}"#)
            .expect("as written")
            .expect("as written");
        assert_eq!(event.id, None);
        assert_eq!(json(&event.data), serde_json::json!("hello"));
        assert!(Ascender
            .incoming(br#"{"correlationId":"response-c1","payload":"{}"}"#)
            .expect("as written")
            .is_none());
    }

    #[test]
    fn answers_and_failures_go_both_ways() {
        let ok = Ascender.reply("c1", &Reply::new(StatusCode::OK, Bytes::from_static(b"6")));
        assert_eq!(
            json(&ok),
            serde_json::json!({"correlationId": "response-c1", "payload": "6"})
        );
        let failed = Ascender.reply(
            "c1",
            &Reply::new(
                StatusCode::NOT_FOUND,
                Bytes::from_static(br#"{"error":"no such"}"#),
            ),
        );
        let payload: Value =
            serde_json::from_str(json(&failed)["payload"].as_str().expect("as written"))
                .expect("as written");
        assert_eq!(
            payload,
            serde_json::json!({"error": "no such", "code": 404, "details": null, "metadata": {}})
        );

        let packet = Ascender
            .reply_packet(br#"{"correlationId":"response-c1","payload":"{\"error\":\"bad\",\"code\":422,\"details\":null,\"metadata\":{}}"}"#)
            .expect("as written");
        assert_eq!(packet.id, "c1");
        let ReplyBody::Answer { reply, .. } = packet.body else {
            panic!("an answer")
        };
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        let packet = Ascender
            .reply_packet(br#"{"correlationId":"defer-c1","payload":"defer"}"#)
            .expect("as written");
        assert!(matches!(packet.body, ReplyBody::KeepWaiting));
        assert!(Ascender
            .reply_packet(br#"{"correlationId":"c1","payload":"1"}"#)
            .is_none());
    }
}
