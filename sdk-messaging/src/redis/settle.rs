//! Settling a stream entry: each outcome is one transaction that writes what must survive
//! (a reply, the retried message, the dead letter) together with the ack (`XACK` and
//! `XDEL`), so the entry is never let go of before what replaces it is stored.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use redis::Pipeline;
use sdk::BoxError;

use super::{failed, frame, replies::REPLY_FOR, RedisBroker};
use crate::{
    broker::{BoxFuture, Settle},
    envelope::headers,
    Envelope, Reply,
};

/// Dead letters kept at most (the oldest go first).
const MAX_DEAD_LETTERS: usize = 100_000;
/// How long a reply list is kept after its last reply, for a caller that reads it late.
const REPLY_LIST_MS: u64 = 60_000;

/// One entry of one group's stream, to be settled.
pub(super) struct RedisSettle {
    broker: RedisBroker,
    stream: String,
    group: String,
    id: String,
    reply_to: Option<String>,
    message: Option<(Envelope, u32)>,
}

impl RedisSettle {
    pub(super) fn new(
        broker: RedisBroker,
        stream: String,
        group: String,
        id: String,
        reply_to: Option<String>,
    ) -> RedisSettle {
        RedisSettle {
            broker,
            stream,
            group,
            id,
            reply_to,
            message: None,
        }
    }

    /// The message the entry holds, delivered for the `attempt`th time.
    pub(super) fn with_message(mut self, message: Envelope, attempt: u32) -> RedisSettle {
        self.message = Some((message, attempt));
        self
    }

    /// Acks the entry alone.
    pub(super) async fn ack_entry(&self) -> Result<(), BoxError> {
        self.finish(Pipeline::with_capacity(2)).await
    }

    /// Runs `pipe` and the ack in one transaction.
    async fn finish(&self, mut pipe: Pipeline) -> Result<(), BoxError> {
        let (stream, id) = (self.stream.len(), self.id.len());
        let mut ack = super::command("XACK", 3, stream + self.group.len() + id);
        ack.arg(&self.stream).arg(&self.group).arg(&self.id);
        let mut delete = super::command("XDEL", 2, stream + id);
        delete.arg(&self.stream).arg(&self.id);
        pipe.atomic()
            .add_command(ack)
            .ignore()
            .add_command(delete)
            .ignore();
        pipe.query_async::<()>(&mut self.broker.shared.commands.clone())
            .await
            .map_err(failed)
    }

    /// The message again with `header` set, as one frame.
    fn frame_with(&self, set: &[(&'static str, &str)]) -> Option<Vec<u8>> {
        let (message, _) = self.message.as_ref()?;
        let mut headers = message.headers.clone();
        for (name, value) in set {
            headers.insert(HeaderName::from_static(name), printable(value));
        }
        Some(frame::encode(&headers, &[], &message.payload))
    }
}

impl RedisSettle {
    /// The entry again after `delay`, its attempt counted up by `counted` (0 or 1).
    fn again(self: Box<Self>, delay: Duration, counted: u32) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            // A request is answered or its caller gives up; only events come back.
            let attempt = match (&self.reply_to, &self.message) {
                (None, Some((_, attempt))) => attempt.saturating_add(counted).to_string(),
                _ => return self.ack_entry().await,
            };
            tokio::time::sleep(delay).await;
            let Some(frame) = self.frame_with(&[(headers::ATTEMPT, &attempt)]) else {
                return self.ack_entry().await;
            };
            let mut pipe = redis::pipe();
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("m")
                .arg(frame)
                .ignore();
            self.finish(pipe).await
        })
    }
}

/// A header value for any text: what a header cannot carry is shown as `?`.
fn printable(text: &str) -> HeaderValue {
    let shown: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&shown).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

impl Settle for RedisSettle {
    fn reply(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let Some(reply_to) = self.reply_to.clone() else {
                return self.ack_entry().await; // nobody waits
            };
            let id = self
                .message
                .as_ref()
                .map_or("", |(message, _)| message.id());
            // The SDK's ids are hex; anything else a header can carry goes as it is.
            let shown;
            let id = if id.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                id
            } else {
                shown = printable(id);
                shown.to_str().unwrap_or("?")
            };
            let frame = frame::encode(&reply.headers, &[(REPLY_FOR, id)], &reply.payload);
            let mut push = super::command("LPUSH", 2, reply_to.len() + frame.len());
            push.arg(&reply_to).arg(frame);
            let mut expire = super::command("PEXPIRE", 2, reply_to.len() + 20);
            expire.arg(&reply_to).arg(REPLY_LIST_MS);
            let mut pipe = Pipeline::with_capacity(4);
            pipe.add_command(push).ignore().add_command(expire).ignore();
            self.finish(pipe).await
        })
    }

    fn ack(self: Box<Self>) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { self.ack_entry().await })
    }

    fn retry(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        self.again(delay, 1)
    }

    fn defer(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        self.again(delay, 0)
    }

    fn dead_letter(self: Box<Self>, reason: String) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let pattern = match &self.message {
                Some((message, _)) => message.pattern.as_str().to_owned(),
                None => return self.ack_entry().await,
            };
            let Some(frame) = self.frame_with(&[
                (headers::DEAD_REASON, &reason),
                (headers::DEAD_PATTERN, &pattern),
            ]) else {
                return self.ack_entry().await;
            };
            let mut pipe = redis::pipe();
            pipe.cmd("XADD")
                .arg(self.broker.shared.keys.dead())
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_DEAD_LETTERS)
                .arg("*")
                .arg("m")
                .arg(frame)
                .arg("group")
                .arg(&self.group)
                .ignore();
            self.finish(pipe).await
        })
    }
}
