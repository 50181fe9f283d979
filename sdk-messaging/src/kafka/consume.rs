//! A handler's consumer: a group member per service and pattern, its deliveries, and how
//! each is settled (reply, commit, produce again, dead letter).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::stream;
use http::HeaderValue;
use rdkafka::{
    consumer::{Consumer as _, StreamConsumer},
    message::OwnedMessage,
    Message as _,
};
use sdk::BoxError;
use sdk_base::backoff::Reconnect;
use sdk_base::sync::Unpoisoned as _;
use tokio::sync::mpsc;

use super::{
    foreign, from_kafka, header, progress::Progress, to_kafka, topic_regex, KafkaBroker, FOR_GROUP,
    NOT_BEFORE, REPLY_KEY, REPLY_TO,
};
use crate::{
    broker::{broken, BoxFuture, Deliveries, Delivery, Settle, Subscription},
    envelope::{headers, now_ms, Kind},
    Envelope, Pattern, Reply, Wire,
};

/// Starts consuming what `subscription` asks for.
pub(super) async fn subscribe(
    broker: KafkaBroker,
    subscription: Subscription,
) -> Result<Deliveries, BoxError> {
    if subscription.kind == Kind::Queue {
        return Err(crate::broker::unsupported("kafka", "service queues"));
    }
    let settings = &broker.0.settings;
    let kind = subscription.kind;
    let topics = if subscription.pattern.has_wildcard() {
        let base = broker.topic(kind, "");
        topic_regex(base.trim_end_matches('.'), &subscription.pattern)
    } else {
        let topic = broker.topic(kind, subscription.pattern.as_str());
        broker.create_topic(&topic, settings.partitions).await?;
        topic
    };
    let group = settings.group_id.clone().unwrap_or_else(|| {
        let part = if kind == Kind::Request { "req" } else { "ev" };
        format!(
            "{}.{}.{part}.{}",
            settings.topic_prefix, subscription.group, subscription.pattern
        )
    });
    let consumer = consumer(&broker, &group, &topics)?;
    let (sender, receiver) = mpsc::channel(subscription.prefetch.max(1));
    if kind == Kind::Request && broker.0.wire == Wire::Sdk {
        // Said before `start` returns, so a `send` right after finds this server; then
        // every few seconds while it runs, and once more, "left", when it stops.
        let instance = crate::envelope::new_id();
        let pattern = subscription.pattern.as_str().to_owned();
        super::presence::beat(&broker, &pattern, &instance, super::presence::ALIVE_FOR).await?;
        broker
            .0
            .presence
            .keep_beating(broker.clone(), pattern, instance, sender.clone());
    }
    let session_timeout = settings.session_timeout;
    let again = (broker.0.wire != Wire::Sdk).then(|| sender.downgrade());
    let source = Source {
        broker,
        group: group.into(),
        consumer: Arc::new(consumer),
        progress: Arc::new(Mutex::new(Progress::default())),
        kind,
        again,
    };
    let consumer = source.consumer.clone();
    tokio::spawn(source.pump(sender));
    if !subscription.pattern.has_wildcard() {
        // Returns once the group has given this member its partitions (or a member
        // beyond the partition count has waited a session for some), so that
        // `start()` means consuming.
        let give_up = tokio::time::Instant::now() + session_timeout;
        while consumer.assignment().map_or(true, |a| a.count() == 0)
            && tokio::time::Instant::now() < give_up
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(Box::pin(stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|delivery| (delivery, receiver)) },
    )))
}

/// A consumer of `topics` (a name, or a `^` regex) in `group`, storing offsets only once
/// settled (see `Progress`).
fn consumer(broker: &KafkaBroker, group: &str, topics: &str) -> Result<StreamConsumer, BoxError> {
    let settings = &broker.0.settings;
    let session = settings.session_timeout.as_millis().max(1000);
    let consumer: StreamConsumer = super::client_config(settings, &broker.0.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 5).max(200).to_string())
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| broken(format!("consumer {group}: {e}")))?;
    consumer
        .subscribe(&[topics])
        .map_err(|e| broken(format!("subscribing to {topics}: {e}")))?;
    Ok(consumer)
}

/// One consumer and what its deliveries share.
#[derive(Clone)]
struct Source {
    broker: KafkaBroker,
    /// The consumer group's id.
    group: Arc<str>,
    consumer: Arc<StreamConsumer>,
    progress: Arc<Mutex<Progress>>,
    kind: Kind,
    /// Where a foreign wire's failed record is delivered again (see `again_here`).
    again: Option<mpsc::WeakSender<Delivery>>,
}

impl Source {
    /// Takes records until the server stops (the receiver is gone).
    async fn pump(self, sender: mpsc::Sender<Delivery>) {
        let mut reconnect = Reconnect::new();
        loop {
            let record = tokio::select! {
                () = sender.closed() => return,
                record = self.consumer.recv() => record.map(|m| m.detach()),
            };
            let record = match record {
                Ok(record) => {
                    reconnect.succeeded();
                    record
                }
                Err(e) => {
                    tracing::debug!(error = %e, "kafka consumer");
                    tokio::time::sleep(reconnect.failed()).await;
                    continue;
                }
            };
            let Some((delivery, not_before)) = self.delivery(&record) else {
                continue;
            };
            let wait = not_before.saturating_sub(now_ms());
            if wait > 0 {
                // A retried event waits for its time without holding up the others.
                let sender = sender.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let _ = sender.send(delivery).await;
                });
            } else if sender.send(delivery).await.is_err() {
                return;
            }
        }
    }

    /// A record as a delivery, and the time before which it must not be handled.
    fn delivery(&self, record: &OwnedMessage) -> Option<(Delivery, u64)> {
        let (topic, partition, offset) = (record.topic(), record.partition(), record.offset());
        let base = self.broker.topic(self.kind, "");
        let name = topic.strip_prefix(base.as_str())?;
        let Ok(pattern) = Pattern::message(name) else {
            tracing::warn!(topic, "a record on a topic that names no pattern; skipped");
            return None;
        };
        self.progress.locked().started(topic, partition, offset);
        if self.broker.0.wire != Wire::Sdk {
            return self.foreign_delivery(record, pattern).map(|d| (d, 0));
        }
        let mut headers = record.headers().map(from_kafka).unwrap_or_default();
        if let Some(group) = headers.remove(FOR_GROUP) {
            if group.as_bytes() != self.group.as_bytes() {
                // Another group's retry: this group handled the event already.
                self.finish(topic, partition, offset);
                return None;
            }
        }
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let attempt = number(headers::ATTEMPT).map_or(1, |a| u32::try_from(a).unwrap_or(u32::MAX));
        let not_before = number(NOT_BEFORE).unwrap_or(0);
        let reply_to = headers
            .get(REPLY_TO)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reply_key = headers.remove(REPLY_KEY);
        headers.remove(REPLY_TO);
        headers.remove(NOT_BEFORE);
        let payload = bytes::Bytes::copy_from_slice(record.payload().unwrap_or_default());
        let message = Envelope {
            pattern,
            headers,
            payload,
        };
        let answer = (reply_to, reply_key, None);
        Some((self.hand_over(record, message, attempt, answer), not_before))
    }

    /// The delivery of `record`, read as `message`, settled by answering as `answer`
    /// says: where to (`reply_to`), with this SDK's reply key or as a foreign wire's role.
    fn hand_over(
        &self,
        record: &OwnedMessage,
        mut message: Envelope,
        attempt: u32,
        answer: (Option<String>, Option<HeaderValue>, Option<foreign::Role>),
    ) -> Delivery {
        if let Some(sent) = record.timestamp().to_millis() {
            // The time the request waited in Kafka is its caller's too; with none left it
            // is answered 504 unhandled.
            message.charge_wait(u64::try_from(sent).unwrap_or(0));
        }
        let (reply_to, reply_key, role) = answer;
        let settle = KafkaSettle {
            source: self.clone(),
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            message: message.clone(),
            attempt,
            reply_to: reply_to.clone(),
            reply_key,
            role,
        };
        Delivery {
            message,
            attempt,
            reply_to,
            settle: Box::new(settle),
        }
    }

    /// A record of a foreign wire as a delivery (`None`: the other kind's, too old, or
    /// an answer on a request's topic; finished here).
    fn foreign_delivery(&self, record: &OwnedMessage, pattern: Pattern) -> Option<Delivery> {
        let (topic, partition, offset) = (record.topic(), record.partition(), record.offset());
        let wire = self.broker.0.wire;
        let role = foreign::role(wire, record.headers());
        let mut headers = record.headers().map(from_kafka).unwrap_or_default();
        let written = record
            .timestamp()
            .to_millis()
            .and_then(|ms| u64::try_from(ms).ok());
        let fresh = |headers: &http::HeaderMap| {
            sdk::deadline::remaining(headers).is_some()
                || written.is_none_or(|at| now_ms().saturating_sub(at) < FOREIGN_REQUEST_AGE_MS)
        };
        let reply_to = match (&role, self.kind) {
            (foreign::Role::Request { id, reply_to, .. }, Kind::Request) if fresh(&headers) => {
                // A request's id is the one its caller knows; an event keeps the id a Rust
                // emitter gave it (its headers travel), which its handlers deduplicate by.
                headers.remove(headers::MESSAGE_ID_NAME);
                if let Ok(id) = HeaderValue::from_str(id) {
                    headers.insert(headers::MESSAGE_ID_NAME, id);
                }
                Some(reply_to.clone())
            }
            (foreign::Role::Event, Kind::Event) => None,
            (other, kind) => {
                if matches!(
                    (other, kind),
                    (foreign::Role::Request { .. }, Kind::Request)
                ) {
                    tracing::debug!(%topic, offset, "a request older than a minute is skipped");
                }
                self.finish(topic, partition, offset);
                return None;
            }
        };
        let message = Envelope {
            pattern,
            headers,
            payload: foreign::json(record.payload()),
        };
        Some(self.hand_over(record, message, 1, (reply_to, None, Some(role))))
    }
}

/// A request of a foreign wire, which carries no deadline, older than this when read has
/// no caller left (Ascender's wait 20 s by default): it is skipped, so a service whose
/// consumer group is new does not act on a topic's past requests.
const FOREIGN_REQUEST_AGE_MS: u64 = 60_000;

struct KafkaSettle {
    source: Source,
    topic: String,
    partition: i32,
    offset: i64,
    message: Envelope,
    attempt: u32,
    reply_to: Option<String>,
    reply_key: Option<HeaderValue>,
    /// A foreign wire's request or event (see `foreign`); `None` on this SDK's.
    role: Option<foreign::Role>,
}

impl Source {
    /// The record at `offset` is done with: its offset may be committed once those before
    /// it are.
    fn finish(&self, topic: &str, partition: i32, offset: i64) {
        let upto = self.progress.locked().settled(topic, partition, offset);
        if let Some(upto) = upto {
            // Fails when the partition has moved to another member meanwhile: that member
            // delivers the record again (at least once).
            if let Err(e) = self.consumer.store_offset(topic, partition, upto) {
                tracing::debug!(%topic, error = %e, "offset not stored");
            }
        }
    }
}

impl KafkaSettle {
    /// The event again for this group alone, not before `delay`, as delivery `attempt`.
    fn again(self: Box<Self>, delay: Duration, attempt: u32) -> BoxFuture<Result<(), BoxError>> {
        if self.role.is_some() {
            return self.again_here(delay, attempt);
        }
        Box::pin(async move {
            let mut headers = self.message.headers.clone();
            headers.insert(headers::ATTEMPT, HeaderValue::from(attempt));
            let at = now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(0));
            let kafka = to_kafka(&headers)
                .insert(header(NOT_BEFORE, &at.to_string()))
                .insert(header(FOR_GROUP, &self.source.group));
            let id = self.message.id().to_owned();
            let key = (!id.is_empty()).then_some(id.as_str());
            // Stored again first; only then is this delivery let go.
            self.source
                .broker
                .produce(&self.topic, key, kafka, Some(&self.message.payload), None)
                .await?;
            self.finish();
            Ok(())
        })
    }

    /// On a foreign wire, whose topics its peers read too, a failed record is not
    /// produced again: it is delivered again from this process after `delay`, and its
    /// offset stays uncommitted meanwhile, so a restart has Kafka deliver it again.
    fn again_here(
        mut self: Box<Self>,
        delay: Duration,
        attempt: u32,
    ) -> BoxFuture<Result<(), BoxError>> {
        self.attempt = attempt;
        let Some(again) = self.source.again.clone() else {
            return Box::pin(async { Ok(()) });
        };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(again) = again.upgrade() else {
                return; // the server stopped: Kafka delivers it again after a restart
            };
            let delivery = Delivery {
                message: self.message.clone(),
                attempt,
                reply_to: self.reply_to.clone(),
                settle: self,
            };
            let _ = again.send(delivery).await;
        });
        Box::pin(async { Ok(()) })
    }

    /// The record is done with.
    fn finish(&self) {
        self.source.finish(&self.topic, self.partition, self.offset);
    }
}

impl Settle for KafkaSettle {
    fn reply(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let wire = self.source.broker.0.wire;
            if let Some(role) = &self.role {
                if let Some(answer) = foreign::answer(wire, &self.topic, role, &reply) {
                    self.source
                        .broker
                        .produce(
                            &answer.topic,
                            None,
                            answer.headers,
                            answer.value.as_deref(),
                            answer.partition,
                        )
                        .await?;
                }
            } else if let (Some(reply_to), Some(key)) = (&self.reply_to, &self.reply_key) {
                let mut headers = reply.headers.clone();
                if reply.status != http::StatusCode::OK {
                    headers.insert(
                        headers::STATUS_NAME,
                        HeaderValue::from(reply.status.as_u16()),
                    );
                }
                headers.insert(REPLY_KEY, key.clone());
                let broker = &self.source.broker;
                broker
                    .produce(
                        reply_to,
                        None,
                        to_kafka(&headers),
                        Some(&reply.payload),
                        Some(0),
                    )
                    .await?;
            } else if self.source.kind == Kind::Event {
                // An event's handler answered: nothing to send.
            }
            self.finish();
            Ok(())
        })
    }

    fn ack(self: Box<Self>) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            self.finish();
            Ok(())
        })
    }

    fn retry(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        let next = self.attempt + 1;
        self.again(delay, next)
    }

    fn defer(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        let same = self.attempt;
        self.again(delay, same)
    }

    fn dead_letter(self: Box<Self>, reason: String) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let broker = &self.source.broker;
            let dead = broker.dead_topic();
            broker.create_topic(&dead, 1).await?;
            let mut headers = self.message.headers.clone();
            let text = |s: &str| {
                HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("?"))
            };
            headers.insert(headers::DEAD_REASON, text(&reason));
            headers.insert(headers::DEAD_PATTERN, text(self.message.pattern.as_str()));
            broker
                .produce(
                    &dead,
                    None,
                    to_kafka(&headers),
                    Some(&self.message.payload),
                    None,
                )
                .await?;
            self.finish();
            Ok(())
        })
    }
}
