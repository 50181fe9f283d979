//! The Kafka transport (feature `kafka`, rdkafka over librdkafka).
//!
//! - **Topics**: an event for pattern `user.created` goes to `<prefix>.ev.user.created`, a
//!   request for `user.create` to `<prefix>.req.user.create` (prefix `sdk`), keyed by its
//!   message id. Event topics are created by the first `emit` (or the first handler)
//!   with `partitions` partitions; request topics by the first handler, so a `send` to a
//!   pattern no handler ever served fails at once with `NoResponder`, and so does one whose
//!   servers all stopped or died (each server heartbeats on `<prefix>.presence`).
//! - **`emit`** returns once the broker has acknowledged the record with `acks=all` (the
//!   producer is idempotent: a record librdkafka resends is stored once). Events are kept
//!   by the topic's retention, whoever consumes them; a group that starts later reads from
//!   the beginning.
//! - **Handlers** consume in a consumer group per service and pattern (`group_id` names it
//!   instead when set); wildcard patterns subscribe by regular expression, and topics
//!   made later are picked up within a second. Offsets are committed only up to the
//!   oldest message still being handled, so a consumer that dies (or loses a partition
//!   in a rebalance) leaves nothing handled-but-uncommitted behind: at least once, with
//!   duplicates dropped by message id. A failed event is produced again to its topic with
//!   its attempt count and a not-before time (Kafka has no per-message nack); one given
//!   up on goes to `<prefix>.dead` with the reason before it is committed.
//! - **Request/reply without lost replies**: each connection has a reply topic of its
//!   own, `<prefix>.reply.<instance id>`, one partition, which it reads by assignment,
//!   not through a consumer group. No rebalance ever moves it, so the reference SDK's loss
//!   (replies on a shared topic whose partitions move to another instance while requests
//!   are in flight) cannot happen: a server answers to the topic the request names, and
//!   only the connection that sent it reads that topic. Requests themselves are consumed
//!   in a group; one whose partition moves mid-flight is handled again by the new owner
//!   and answered twice, and the second answer is ignored. A request whose caller's
//!   deadline passed before a server got to it is answered 504 without being handled.
//!   The reply topic is not deleted when the connection closes (see docs/guide/messaging.md).
//! - **Foreign wires**: with `wire = "nestjs"` or `"ascender"` the topic is the pattern
//!   itself and records are framed as those frameworks frame them (see `foreign`); groups,
//!   commits and dead letters stay as above, presence heartbeats are not written (a topic
//!   that does not exist is the only `NoResponder`), and a failed event is delivered again
//!   from this process instead of being written again to a topic the peers read.

mod consume;
mod foreign;
mod presence;
mod progress;

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use http::{HeaderMap, HeaderValue};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer as _, StreamConsumer},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
    ClientConfig, Message as _, Offset, TopicPartitionList,
};
use sdk::BoxError;
use sdk_base::sync::Unpoisoned as _;
use tokio::sync::oneshot;

use crate::{
    broker::{broken, no_responder, BoxFuture, Deliveries, Subscription},
    envelope::Kind,
    Broker, Envelope, KafkaSettings, MessagingError, Pattern, Reply, Wire,
};

/// Where a request's reply goes (the sender's reply topic).
const REPLY_TO: &str = "sdk-reply-to";
/// Which of the sender's waiting requests a reply answers.
const REPLY_KEY: &str = "sdk-reply-key";
/// A redelivered event is not handled before this Unix time in milliseconds.
const NOT_BEFORE: &str = "sdk-not-before";
/// On a retried event: the consumer group whose handler failed it. The retry is produced to
/// the event's own topic, which every group reads; the other groups, which handled the
/// event already, let it pass unhandled.
const FOR_GROUP: &str = "sdk-for-group";

/// A Kafka connection as a [`Broker`]. Cheap to clone.
#[derive(Clone)]
pub struct KafkaBroker(Arc<Shared>);

struct Shared {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    settings: KafkaSettings,
    brokers: String,
    /// The topic this connection reads replies on: its own; Ascender's shared one.
    reply_topic: String,
    /// The wire format: this SDK's, or NestJS's or Ascender's (see `foreign`).
    wire: Wire,
    /// The reader of replies, assigned more topics as requests need them (Ascender's
    /// failures come on the request's topic).
    replies: Arc<StreamConsumer>,
    /// The topics `replies` reads.
    reading: tokio::sync::Mutex<HashSet<String>>,
    /// Requests waiting for their reply, by reply key.
    pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    connected: AtomicBool,
    reply_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Who serves which request pattern, from the servers' heartbeats.
    presence: presence::Presence,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.reply_task.locked().take() {
            task.abort();
        }
        // The reply topic is left behind, empty: deleting it made librdkafka 2.12's
        // metadata cache crash on the next metadata answer from tansu (a null topic name).
    }
}

impl KafkaBroker {
    /// Connects to the brokers `url` lists (`kafka://host:9092,host2:9092`, or the
    /// settings' `brokers`), creates this connection's reply topic and starts reading it.
    pub async fn connect(
        url: &str,
        settings: KafkaSettings,
    ) -> Result<KafkaBroker, MessagingError> {
        Self::connect_wire(url, settings, Wire::Sdk).await
    }

    /// Connects as [`connect`](Self::connect) does, speaking `wire`: for NestJS the reply
    /// topic is this connection's own as well; for Ascender it is `_rpc:response`, read
    /// from its end.
    pub(crate) async fn connect_wire(
        url: &str,
        settings: KafkaSettings,
        wire: Wire,
    ) -> Result<KafkaBroker, MessagingError> {
        let brokers = settings.brokers_for(url)?;
        let base = client_config(&settings, &brokers);
        let producer: FutureProducer = base
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| config_error(&brokers, e))?;
        let admin: AdminClient<DefaultClientContext> =
            base.create().map_err(|e| config_error(&brokers, e))?;
        let instance = crate::envelope::new_id();
        let own = format!("{}.reply.{instance}", settings.topic_prefix);
        let replies = Arc::new(reply_consumer(&settings, &brokers, &own)?);
        let reply_topic = match wire {
            Wire::Ascender => foreign::ASCENDER_RESPONSES.to_owned(),
            _ => own,
        };
        let broker = KafkaBroker(Arc::new(Shared {
            producer,
            admin,
            brokers,
            reply_topic: reply_topic.clone(),
            wire,
            replies: replies.clone(),
            reading: tokio::sync::Mutex::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            topics: Mutex::new(HashSet::new()),
            connected: AtomicBool::new(false),
            reply_task: Mutex::new(None),
            presence: presence::Presence::default(),
            settings,
        }));
        broker.reachable().await?;
        match broker.replies_come().await {
            Err(e) if wire == Wire::Ascender => {
                // Apache Kafka refuses `_rpc:response` as a topic name (`:`): events still
                // work, and each request says why it cannot.
                tracing::warn!(error = %e, "kafka: Ascender's reply topic cannot be read");
            }
            other => other.map_err(MessagingError::Broker)?,
        }
        let task = tokio::spawn(read_replies(Arc::downgrade(&broker.0), replies));
        *broker.0.reply_task.locked() = Some(task);
        broker.0.connected.store(true, Ordering::Release);
        Ok(broker)
    }

    /// Makes the topic replies come on (if need be) and has the reply reader read it.
    async fn replies_come(&self) -> Result<(), BoxError> {
        let topic = &self.0.reply_topic;
        self.create_topic(topic, 1).await?;
        self.read_replies_on(topic).await
    }

    /// Has the reply reader read `topic` too, from its end as it is now (every partition),
    /// before a request that may be answered there is sent. This connection's own reply
    /// topic is new and read from its start.
    async fn read_replies_on(&self, topic: &str) -> Result<(), BoxError> {
        let mut reading = self.0.reading.lock().await;
        if reading.contains(topic) {
            return Ok(());
        }
        let this = self.clone();
        let name = topic.to_owned();
        let assignment = tokio::task::spawn_blocking(move || this.ends(&name))
            .await
            .map_err(|e| broken(e.to_string()))??;
        self.0
            .replies
            .incremental_assign(&assignment)
            .map_err(|e| broken(format!("reading {topic}: {e}")))?;
        reading.insert(topic.to_owned());
        Ok(())
    }

    /// Each partition of `topic` at its end (its high watermark); the start for this
    /// connection's own reply topic. Blocks its thread.
    fn ends(&self, topic: &str) -> Result<TopicPartitionList, BoxError> {
        let wait = Duration::from_secs(5);
        let admin = self.0.admin.inner();
        let mut assignment = TopicPartitionList::new();
        if topic == self.0.reply_topic && self.0.wire != Wire::Ascender {
            assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
            return Ok(assignment);
        }
        // All topics are asked for (see `topic_exists`).
        let metadata = admin.fetch_metadata(None, wait)?;
        let partitions = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()));
        for partition in partitions {
            let (_, high) = admin.fetch_watermarks(topic, partition, wait)?;
            assignment.add_partition_offset(topic, partition, Offset::Offset(high))?;
        }
        if assignment.count() == 0 {
            // Not in the brokers' metadata yet: asked again by the next request.
            return Err(broken(format!("{topic} has no partitions yet")));
        }
        Ok(assignment)
    }

    /// Fails, naming the brokers but no credentials, when none answers within 5 s.
    async fn reachable(&self) -> Result<(), MessagingError> {
        let this = self.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            this.0
                .admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|_| ())
        })
        .await;
        match fetched {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(MessagingError::Broker(
                format!(
                    "could not connect to {}: {e}",
                    sdk_base::redact_url(&self.0.brokers)
                )
                .into(),
            )),
            Err(e) => Err(MessagingError::Broker(Box::new(e))),
        }
    }

    /// This connection's reply topic.
    pub fn reply_topic(&self) -> &str {
        &self.0.reply_topic
    }

    /// The topic of `pattern`'s messages of `kind`: the pattern itself on a foreign wire.
    pub(crate) fn topic(&self, kind: Kind, pattern: &str) -> String {
        if self.0.wire != Wire::Sdk {
            return pattern.to_owned();
        }
        let part = match kind {
            Kind::Request => "req",
            Kind::Event | Kind::Queue => "ev",
        };
        format!("{}.{part}.{pattern}", self.0.settings.topic_prefix)
    }

    fn dead_topic(&self) -> String {
        format!("{}.dead", self.0.settings.topic_prefix)
    }

    /// Creates `topic` (with `partitions`) unless it is known to exist.
    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), BoxError> {
        if self.0.topics.locked().contains(topic) {
            return Ok(());
        }
        let replication = TopicReplication::Fixed(self.0.settings.replication_factor);
        let new = NewTopic::new(topic, partitions, replication);
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .0
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| broken(format!("creating topic {topic}: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(broken(format!("creating topic {name}: {code}")));
                }
            }
        }
        self.0.topics.locked().insert(topic.to_owned());
        Ok(())
    }

    /// Whether `topic` exists on the brokers (cached once it does).
    async fn topic_exists(&self, topic: &str) -> Result<bool, BoxError> {
        if self.0.topics.locked().contains(topic) {
            return Ok(true);
        }
        let this = self.clone();
        let name = topic.to_owned();
        // librdkafka's metadata call blocks its thread. All topics are asked for, not the
        // one: a request for a single topic the broker does not know can end with
        // librdkafka's metadata cache crashing on tansu's answer (seen with 2.12).
        let exists = tokio::task::spawn_blocking(move || {
            let metadata = this
                .0
                .admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(5))?;
            Ok::<_, rdkafka::error::KafkaError>(
                metadata
                    .topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty()),
            )
        })
        .await
        .map_err(|e| broken(e.to_string()))?
        .map_err(|e| crate::broker::not_connected(e.to_string()))?;
        if exists {
            self.0.topics.locked().insert(topic.to_owned());
        }
        Ok(exists)
    }

    /// Produces a record and waits for the brokers' acknowledgement.
    async fn produce(
        &self,
        topic: &str,
        key: Option<&str>,
        headers: OwnedHeaders,
        payload: Option<&[u8]>,
        partition: Option<i32>,
    ) -> Result<(), BoxError> {
        let mut record = FutureRecord::<str, [u8]>::to(topic).headers(headers);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        match self.0.producer.send(record, Duration::from_secs(0)).await {
            Ok(_) => {
                self.0.connected.store(true, Ordering::Release);
                Ok(())
            }
            Err((e, _)) => Err(broken(format!("producing to {topic}: {e}"))),
        }
    }
}

/// The settings every client of a connection shares.
pub(crate) fn client_config(settings: &KafkaSettings, brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", &settings.client_id)
        // Quiet: failures reach callers as typed errors, and the connection's health.
        .set("log_level", "3");
    config
}

/// The reader of replies: assigned, not in a group (`group` is a name of its own).
fn reply_consumer(
    settings: &KafkaSettings,
    brokers: &str,
    group: &str,
) -> Result<StreamConsumer, MessagingError> {
    client_config(settings, brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| config_error(brokers, e))
}

fn config_error(brokers: &str, e: rdkafka::error::KafkaError) -> MessagingError {
    MessagingError::Broker(format!("kafka at {}: {e}", sdk_base::redact_url(brokers)).into())
}

impl fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("brokers", &sdk_base::redact_url(&self.0.brokers))
            .field("reply_topic", &self.0.reply_topic)
            .field("settings", &self.0.settings)
            .finish()
    }
}

impl Broker for KafkaBroker {
    fn name(&self) -> &'static str {
        "kafka"
    }

    /// Waits for the servers that stopped to have said so on the presence topic.
    fn flush(&self) -> BoxFuture<()> {
        let this = self.clone();
        Box::pin(async move { this.0.presence.leaving().await })
    }

    fn request(&self, message: Envelope) -> BoxFuture<Result<Reply, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            let topic = this.topic(Kind::Request, message.pattern.as_str());
            let wire = this.0.wire;
            if wire == Wire::Sdk && this.0.presence.first() {
                presence::start_reader(&this);
            }
            if !this.topic_exists(&topic).await?
                || (wire == Wire::Sdk && !this.0.presence.served(message.pattern.as_str()))
            {
                return Err(no_responder());
            }
            if wire == Wire::Ascender {
                this.replies_come().await?;
                this.read_replies_on(&topic).await?;
            }
            let key = crate::envelope::new_id();
            let (sender, receiver) = oneshot::channel();
            this.0.pending.locked().insert(key.clone(), sender);
            // Forgets the wait however this ends (answered, failed, or dropped at the
            // deadline).
            let _waiting = Waiting(&this.0.pending, &key);
            let headers = to_kafka(&message.headers);
            let (headers, value) = match wire {
                Wire::Sdk => (
                    headers
                        .insert(header(REPLY_TO, &this.0.reply_topic))
                        .insert(header(REPLY_KEY, &key)),
                    Some(Cow::Borrowed(&message.payload[..])),
                ),
                _ => (
                    foreign::request_headers(wire, headers, &key, &this.0.reply_topic),
                    foreign::value(wire, &message.payload),
                ),
            };
            this.produce(&topic, Some(message.id()), headers, value.as_deref(), None)
                .await?;
            receiver
                .await
                .map_err(|_| broken("the connection closed before the reply came"))
        })
    }

    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            let topic = this.topic(Kind::Event, message.pattern.as_str());
            let value = match this.0.wire {
                Wire::Sdk => {
                    this.create_topic(&topic, this.0.settings.partitions)
                        .await?;
                    Some(Cow::Borrowed(&message.payload[..]))
                }
                // A foreign framework's handlers make their topics: with none, nobody
                // listens.
                wire if this.topic_exists(&topic).await? => foreign::value(wire, &message.payload),
                _ => return Err(no_responder()),
            };
            let id = message.id().to_owned();
            let key = (!id.is_empty()).then_some(id.as_str());
            this.produce(
                &topic,
                key,
                to_kafka(&message.headers),
                value.as_deref(),
                None,
            )
            .await
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move { consume::subscribe(this, subscription).await })
    }

    fn is_connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }
}

/// Removes a request's entry from the pending map when its wait ends.
struct Waiting<'a>(&'a Mutex<HashMap<String, oneshot::Sender<Reply>>>, &'a str);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.locked().remove(self.1);
    }
}

/// How often an idle connection asks the brokers whether they are there (its health).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The least time between two probes when the consumer reports errors.
const PROBE_AFTER_ERROR: Duration = Duration::from_millis(250);

/// Reads the reply topic until the broker is dropped, handing each reply to its waiter;
/// while nothing comes, probes the brokers every second for the connection's health.
async fn read_replies(shared: std::sync::Weak<Shared>, consumer: Arc<StreamConsumer>) {
    let mut probed = tokio::time::Instant::now();
    loop {
        let message = match tokio::time::timeout(PROBE_EVERY, consumer.recv()).await {
            Ok(Ok(message)) => message,
            other => {
                // Quiet for a second, or an error from the consumer (which it repeats for
                // as long as the brokers are gone: it must not keep the probe from
                // running, as it once did): ask the brokers, at most every 250 ms.
                if let Ok(Err(e)) = &other {
                    tracing::debug!(error = %e, "kafka reply topic");
                }
                if probed.elapsed() < PROBE_AFTER_ERROR {
                    tokio::time::sleep(PROBE_AFTER_ERROR).await;
                    continue;
                }
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                probe(&shared).await;
                probed = tokio::time::Instant::now();
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.connected.store(true, Ordering::Release);
        deliver_reply(&shared, &message);
    }
}

/// Records whether the brokers answer a metadata request about the reply topic.
async fn probe(shared: &Arc<Shared>) {
    let this = KafkaBroker(shared.clone());
    let answered = tokio::task::spawn_blocking(move || {
        this.0
            .admin
            .inner()
            .fetch_metadata(Some(&this.0.reply_topic), Duration::from_millis(900))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    shared.connected.store(answered, Ordering::Release);
}

/// Hands a reply to the request waiting for it (a reply nobody waits for is dropped).
fn deliver_reply(shared: &Shared, message: &rdkafka::message::BorrowedMessage<'_>) {
    if shared.wire != Wire::Sdk {
        let Some((key, Some(reply))) =
            foreign::read_reply(shared.wire, message.headers(), message.payload())
        else {
            return; // not a reply, or a defer: the caller's deadline decides
        };
        if let Some(waiter) = shared.pending.locked().remove(&key) {
            let _ = waiter.send(reply);
        }
        return;
    }
    let headers = message.headers().map(from_kafka).unwrap_or_default();
    let Some(key) = headers.get(REPLY_KEY).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let waiter = shared.pending.locked().remove(key);
    if let Some(waiter) = waiter {
        let payload = bytes::Bytes::copy_from_slice(message.payload().unwrap_or_default());
        let mut headers = headers.clone();
        headers.remove(REPLY_KEY);
        let _ = waiter.send(Reply {
            status: Reply::status_of(&headers),
            headers,
            payload,
        });
    }
}

/// The text of a record's header `name`, if it has one that is UTF-8.
pub(crate) fn header_text<'a>(
    headers: Option<&'a impl rdkafka::message::Headers>,
    name: &str,
) -> Option<&'a str> {
    headers?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// A message's headers as Kafka record headers.
pub(crate) fn to_kafka(headers: &HeaderMap) -> OwnedHeaders {
    let mut kafka = OwnedHeaders::new_with_capacity(headers.len() + 2);
    for (name, value) in headers {
        kafka = kafka.insert(Header {
            key: name.as_str(),
            value: Some(value.as_bytes()),
        });
    }
    kafka
}

/// Kafka record headers as a message's (those that are not valid HTTP headers are left out).
pub(crate) fn from_kafka(kafka: &impl rdkafka::message::Headers) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for h in kafka.iter() {
        let (Some(name), Some(value)) = (crate::envelope::headers::name(h.key.as_bytes()), h.value)
        else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    headers
}

/// The regular expression of topics `pattern` covers (librdkafka subscribes by one when
/// the subscription starts with `^`).
pub(crate) fn topic_regex(prefix: &str, pattern: &Pattern) -> String {
    let token = "[A-Za-z0-9_-]+";
    let mut regex = format!("^{}", escape(prefix));
    let parts: Vec<&str> = pattern.as_str().split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        // No dot before the first part when there is no prefix (a foreign wire's topics).
        let dot = if i == 0 && prefix.is_empty() {
            ""
        } else {
            "\\."
        };
        match *part {
            "*" => regex.push_str(&format!("{dot}{token}")),
            "#" if i == parts.len() - 1 && dot.is_empty() => {
                regex.push_str(&format!("{token}(\\.{token})*"));
            }
            "#" if i == parts.len() - 1 => regex.push_str(&format!("(\\.{token})*")),
            literal => {
                regex.push_str(dot);
                regex.push_str(&escape(literal));
            }
        }
    }
    regex.push('$');
    regex
}

fn escape(text: &str) -> String {
    text.replace('.', "\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_topic_expressions() {
        let regex = |p| topic_regex("sdk.ev", &Pattern::handler(p).expect("pattern"));
        assert_eq!(regex("user.*"), "^sdk\\.ev\\.user\\.[A-Za-z0-9_-]+$");
        assert_eq!(regex("user.#"), "^sdk\\.ev\\.user(\\.[A-Za-z0-9_-]+)*$");
        assert_eq!(regex("a.*.c"), "^sdk\\.ev\\.a\\.[A-Za-z0-9_-]+\\.c$");
        let bare = |p| topic_regex("", &Pattern::handler(p).expect("pattern"));
        assert_eq!(bare("user.*"), "^user\\.[A-Za-z0-9_-]+$");
        assert_eq!(bare("*.created"), "^[A-Za-z0-9_-]+\\.created$");
    }
}
