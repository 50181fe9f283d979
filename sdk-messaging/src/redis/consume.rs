//! One handler's consumer: binds its stream (stream, group and binding, again whenever
//! Redis comes back without them), reads new entries while the server has room for them,
//! and claims the entries of consumers that died with them unsettled.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures_util::stream;
use redis::{
    aio::ConnectionManager,
    streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply},
    Value,
};
use sdk::BoxError;
use sdk_base::backoff::Reconnect;
use tokio::sync::mpsc;

use super::{failed, frame, routes::Keys, settle::RedisSettle, RedisBroker, BLOCK};
use crate::{
    broker::{Deliveries, Delivery, Subscription},
    envelope::{headers, new_id, Kind},
    Envelope, Pattern,
};

/// How long a request stream stays alive after its last consumer's last refresh.
const ALIVE_FOR: Duration = Duration::from_secs(6);

struct Consumer {
    broker: RedisBroker,
    connection: ConnectionManager,
    stream: String,
    group: String,
    pattern: Pattern,
    kind: Kind,
}

/// Binds `subscription`'s stream and starts reading it.
pub(super) async fn start(
    broker: RedisBroker,
    subscription: Subscription,
) -> Result<Deliveries, BoxError> {
    let keys = &broker.shared.keys;
    let stream = match subscription.kind {
        Kind::Request => keys.requests(&subscription.group, &subscription.pattern),
        _ => keys.events(&subscription.group, &subscription.pattern),
    };
    let mut consumer = Consumer {
        connection: broker.blocking_connection().await?,
        broker,
        stream,
        group: subscription.group,
        pattern: subscription.pattern,
        kind: subscription.kind,
    };
    consumer.bind().await?;
    let (sender, receiver) = mpsc::channel(subscription.prefetch.max(1));
    if consumer.kind == Kind::Request {
        // Alive before `start` returns, so a `send` right after it finds this consumer.
        let me = new_id();
        mark_alive(&consumer.broker, &consumer.stream, &me)
            .await
            .map_err(failed)?;
        tokio::spawn(keep_alive(
            consumer.broker.clone(),
            consumer.stream.clone(),
            me,
            sender.clone(),
        ));
    }
    tokio::spawn(consumer.run(sender));
    let deliveries = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|delivery| (delivery, receiver))
    });
    Ok(Box::pin(deliveries))
}

/// Keeps this consumer in its request stream's `alive` set while the server runs, and
/// takes it out as soon as the server stops: with no consumer left a `send` fails with
/// `NoResponder` at once. A consumer that dies without stopping lapses after `ALIVE_FOR`.
async fn keep_alive(
    broker: RedisBroker,
    stream: String,
    me: String,
    sender: mpsc::Sender<Delivery>,
) {
    let alive = Keys::alive(&stream);
    loop {
        tokio::select! {
            () = sender.closed() => break,
            () = tokio::time::sleep(ALIVE_FOR / 3) => {}
        }
        if let Err(e) = mark_alive(&broker, &stream, &me).await {
            tracing::debug!(stream = %stream, error = %e, "redis keep-alive");
        }
    }
    let mut connection = broker.shared.commands.clone();
    let removed: redis::RedisResult<()> = redis::cmd("ZREM")
        .arg(&alive)
        .arg(&me)
        .query_async(&mut connection)
        .await;
    if let Err(e) = removed {
        tracing::debug!(stream = %stream, error = %e, "redis keep-alive: could not leave");
    }
}

/// Marks consumer `me` of request stream `stream` alive for `ALIVE_FOR` more.
async fn mark_alive(broker: &RedisBroker, stream: &str, me: &str) -> redis::RedisResult<()> {
    let millis = u64::try_from(ALIVE_FOR.as_millis()).unwrap_or(u64::MAX);
    let mut connection = broker.shared.commands.clone();
    broker
        .shared
        .keep_alive
        .key(Keys::alive(stream))
        .arg(me)
        .arg(millis)
        .invoke_async(&mut connection)
        .await
}

impl Consumer {
    /// Creates the stream and group (reading from the stream's start, so nothing appended
    /// since the binding is missed) and registers the binding if it is not there.
    async fn bind(&mut self) -> Result<(), BoxError> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.connection)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(failed(e)),
            _ => {}
        }
        let keys = &self.broker.shared.keys;
        let mut pipe = redis::pipe();
        pipe.hget(keys.bindings(), &self.stream);
        let (bound,): (Option<String>,) = pipe
            .query_async(&mut self.connection)
            .await
            .map_err(failed)?;
        if bound.as_deref() != Some(self.pattern.as_str()) {
            redis::pipe()
                .atomic()
                .hset(keys.bindings(), &self.stream, self.pattern.as_str())
                .ignore()
                .set(keys.version(), new_id())
                .ignore()
                .query_async::<()>(&mut self.connection)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    async fn run(mut self, sender: mpsc::Sender<Delivery>) {
        let claim_every = (self.broker.shared.settings.ack_wait / 2).min(Duration::from_secs(5));
        let mut last_claim = Instant::now();
        let mut reconnect = Reconnect::new();
        let mut bound = true;
        loop {
            if !bound {
                bound = self.bind().await.is_ok();
            }
            let Ok(room) = sender.reserve().await else {
                return; // the server stopped
            };
            let count = sender.capacity() + 1;
            drop(room);
            let read = if bound && last_claim.elapsed() >= claim_every {
                last_claim = Instant::now();
                self.claim(count).await
            } else if bound {
                self.read(count).await
            } else {
                Err(None)
            };
            match read {
                Ok(entries) => {
                    reconnect.succeeded();
                    for (entry, earlier) in entries {
                        let Some(delivery) = self.delivery(entry, earlier).await else {
                            continue;
                        };
                        if sender.send(delivery).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Err(Some(e)) if e.code() == Some("NOGROUP") => {
                    tracing::info!(stream = %self.stream, "redis lost the consumer group; binding again");
                    bound = false;
                }
                Err(Some(e)) => {
                    tracing::debug!(stream = %self.stream, error = %e, "redis consumer")
                }
                Err(None) => {}
            }
            tokio::time::sleep(reconnect.failed()).await;
        }
    }

    /// New entries for this group, waiting up to a second for some.
    async fn read(
        &mut self,
        count: usize,
    ) -> Result<Vec<(StreamId, u32)>, Option<redis::RedisError>> {
        let consumer = &self.broker.shared.consumer;
        let sizes = self.group.len() + consumer.len() + self.stream.len() + 64;
        let reply: Option<StreamReadReply> = super::command("XREADGROUP", 10, sizes)
            .arg("GROUP")
            .arg(&self.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.connection)
            .await
            .map_err(Some)?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| (entry, 0))
            .collect())
    }

    /// Entries another consumer (or an earlier life of this one) took and left unsettled
    /// for `ack_wait`, with how often each was delivered before.
    async fn claim(
        &mut self,
        count: usize,
    ) -> Result<Vec<(StreamId, u32)>, Option<redis::RedisError>> {
        let idle =
            u64::try_from(self.broker.shared.settings.ack_wait.as_millis()).unwrap_or(u64::MAX);
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(count)
            .query_async(&mut self.connection)
            .await
            .map_err(Some)?;
        if pending.ids.is_empty() {
            return Ok(Vec::new());
        }
        let delivered: HashMap<String, u32> = pending
            .ids
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    u32::try_from(p.times_delivered).unwrap_or(u32::MAX),
                )
            })
            .collect();
        let claimed: StreamClaimReply = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.broker.shared.consumer)
            .arg(idle)
            .arg(delivered.keys().collect::<Vec<_>>())
            .query_async(&mut self.connection)
            .await
            .map_err(Some)?;
        let mut entries: Vec<(StreamId, u32)> = claimed
            .ids
            .into_iter()
            .map(|entry| {
                let earlier = delivered.get(&entry.id).copied().unwrap_or(1);
                (entry, earlier)
            })
            .collect();
        entries.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        tracing::info!(stream = %self.stream, claimed = entries.len(), "redis claimed unsettled entries");
        Ok(entries)
    }

    /// The delivery of `entry`, delivered `earlier` times before; `None` (and settled) for
    /// one nobody can use: not the SDK's, or a request whose caller stopped waiting.
    async fn delivery(&self, mut entry: StreamId, earlier: u32) -> Option<Delivery> {
        let decoded = match entry.map.remove("m") {
            Some(Value::BulkString(bytes)) => frame::decode(bytes.into()),
            _ => None,
        };
        let reply_to = match entry.map.get("r") {
            Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
            _ => None,
        };
        let pattern = decoded.as_ref().and_then(|(headers, _)| {
            let name = headers.get(headers::PATTERN)?.to_str().ok()?;
            Pattern::message(name).ok()
        });
        let settle = RedisSettle::new(
            self.broker.clone(),
            self.stream.clone(),
            self.group.clone(),
            entry.id.clone(),
            reply_to.clone(),
        );
        let (Some((headers, payload)), Some(pattern)) = (decoded, pattern) else {
            // Written by something else: kept among the dead letters as it was, never lost.
            tracing::warn!(stream = %self.stream, id = %entry.id, "not an SDK message; dead-lettered");
            let poison = Envelope {
                pattern: self.pattern.clone(),
                headers: http::HeaderMap::new(),
                payload: raw_entry(&entry),
            };
            let reason = "not an SDK message (no frame `m` with the SDK's headers)".to_owned();
            let settle: Box<dyn crate::broker::Settle> = Box::new(settle.with_message(poison, 1));
            if let Err(e) = settle.dead_letter(reason).await {
                tracing::warn!(stream = %self.stream, error = %e, "could not dead-letter an entry");
            }
            return None;
        };
        let mut message = Envelope {
            pattern,
            headers,
            payload,
        };
        if self.kind == Kind::Request && !charge_wait(&entry.id, &mut message) {
            let _ = settle.ack_entry().await;
            return None;
        }
        let attempt = message
            .headers
            .get(headers::ATTEMPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
            .saturating_add(earlier);
        Some(Delivery {
            settle: Box::new(settle.with_message(message.clone(), attempt)),
            message,
            attempt,
            reply_to,
        })
    }
}

/// What a foreign entry held, for its dead letter: its `m` field as it is, or else every
/// field as a JSON object (bytes that are not UTF-8 shown lossily).
fn raw_entry(entry: &StreamId) -> bytes::Bytes {
    if let Some(Value::BulkString(bytes)) = entry.map.get("m") {
        return bytes::Bytes::from(bytes.clone());
    }
    let fields: serde_json::Map<String, serde_json::Value> = entry
        .map
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => format!("{other:?}"),
            };
            (name.clone(), serde_json::Value::String(text))
        })
        .collect();
    bytes::Bytes::from(serde_json::Value::Object(fields).to_string())
}

/// Charges a request appended at stream id `id` (milliseconds first) the time it waited
/// in the stream; `false` when its caller's deadline has passed.
fn charge_wait(id: &str, message: &mut Envelope) -> bool {
    match id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()) {
        Some(appended) => message.charge_wait(appended),
        None => true,
    }
}
