//! The NATS transport (feature `nats`, async-nats): core request/reply for `send`,
//! JetStream for durable `emit`.
//!
//! - **`send`** publishes on the pattern itself (`user.create`) with a reply inbox. A
//!   server's handlers subscribe in a queue group named after the service, so each request
//!   goes to one instance. With no subscriber the server answers "no responders" at once,
//!   and the call fails in milliseconds with `NoHealthyInstance { reason: NoResponder }`.
//! - **`emit`** publishes to JetStream on `<subject_prefix>.<pattern>` (`events.user.created`)
//!   in the stream `SDK_EVENTS` (created when first needed: file storage, kept 7 days). The
//!   call returns once JetStream has confirmed it. The message id travels in
//!   `sdk-message-id`, by which consumers drop a duplicate (a publish retried after a lost
//!   confirmation). With [`NatsSettings::publish_dedup`] it travels as `Nats-Msg-Id`
//!   instead, so JetStream itself stores such a publish once, at about a third of the
//!   publish rate.
//! - **Event handlers** are durable pull consumers, one per group and pattern, with explicit
//!   acks (`max_ack_pending` = the server's prefetch): a handler that succeeded acks, one that
//!   failed naks with the backoff's delay, and a message given up on is published to the
//!   dead-letter stream (`SDK_DEAD`, on `dead.<pattern>`, with the reason in `sdk-dead-reason`)
//!   before it is terminated, so it is never just dropped. A consumer restarted (or a process
//!   killed with `kill -9`) goes on from its last ack; unacked messages come back after
//!   `ack_wait`.
//! - **Connection**: lost connections are restored by async-nats with the SDK's reconnect
//!   backoff (100 ms doubling to 5 s, full jitter); subscriptions are restored with them.
//!   While the connection is down, a `send` or `emit` fails at once as not connected
//!   (`Transport { connect: true }`), which the pipeline retries within the deadline.

use std::{
    fmt,
    hash::{Hash as _, Hasher as _},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::{
    connection::State,
    jetstream::{
        self,
        consumer::pull,
        context::{PublishError, PublishErrorKind},
        AckKind,
    },
    HeaderMap as NatsHeaders, RequestErrorKind,
};
use futures_util::{stream, StreamExt};
use http::{HeaderMap, HeaderValue};
use sdk::{retry::Backoff as _, retry::ExponentialBackoff, BoxError};
use sdk_base::backoff::Reconnect;
use tokio::sync::mpsc;

use crate::{
    broker::Subscription,
    broker::{broken, no_responder, not_connected, BoxFuture, Deliveries, Delivery, Settle},
    envelope::{headers, Kind},
    Broker, Envelope, MessagingError, NatsSettings, Pattern, Reply,
};

/// How long emitted events are kept in the stream when nobody consumes them.
const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long dead letters are kept.
const DEAD_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// A NATS connection as a [`Broker`]. Cheap to clone (one reference count: every message
/// takes a clone into its future, and async-nats's own handles allocate when cloned).
#[derive(Clone)]
pub struct NatsBroker(Arc<Shared>);

struct Shared {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    settings: NatsSettings,
    /// Whether the streams are known to exist (cleared when a publish or consumer finds
    /// them gone, after a JetStream reset).
    streams_ready: AtomicBool,
    /// Deliveries deferred (not counted as attempts) per consumer and stream sequence:
    /// JetStream counts every delivery, so the deferrals are taken off its count here.
    /// Bounded; a process that restarts forgets them, and then they count.
    deferred: moka::sync::Cache<(String, u64), u32>,
}

impl NatsBroker {
    /// Connects to `url` (`nats://host:4222`, credentials allowed and never printed).
    pub async fn connect(url: &str, settings: NatsSettings) -> Result<NatsBroker, MessagingError> {
        Ok(Self::from_client(connect_client(url).await?, settings))
    }

    /// A broker over a connected async-nats client.
    pub fn from_client(client: async_nats::Client, settings: NatsSettings) -> NatsBroker {
        NatsBroker(Arc::new(Shared {
            jetstream: jetstream::new(client.clone()),
            client,
            settings,
            streams_ready: AtomicBool::new(false),
            deferred: moka::sync::Cache::new(100_000),
        }))
    }

    /// The async-nats client underneath.
    pub fn client(&self) -> &async_nats::Client {
        &self.0.client
    }

    fn event_subject(&self, pattern: &Pattern) -> String {
        let prefix = &self.0.settings.subject_prefix;
        let mut subject = String::with_capacity(prefix.len() + 1 + pattern.as_str().len());
        subject.push_str(prefix);
        subject.push('.');
        subject.push_str(pattern.as_str());
        subject
    }

    /// Creates the event and dead-letter streams if they are not there (once, and again
    /// after they were found gone). Creating one that exists changes nothing, so two
    /// callers racing here do no harm.
    async fn ensure_streams(&self) -> Result<(), BoxError> {
        if self.0.streams_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let settings = &self.0.settings;
        for (name, prefix, max_age) in [
            (&settings.stream, &settings.subject_prefix, EVENTS_MAX_AGE),
            (
                &settings.dead_letter_stream,
                &settings.dead_letter_prefix,
                DEAD_MAX_AGE,
            ),
        ] {
            self.0
                .jetstream
                .get_or_create_stream(jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("{prefix}.>")],
                    storage: jetstream::stream::StorageType::File,
                    max_age,
                    ..Default::default()
                })
                .await
                .map_err(|e| broken(format!("stream {name}: {e}")))?;
        }
        self.0.streams_ready.store(true, Ordering::Release);
        Ok(())
    }

    fn check_connected(&self) -> Result<(), BoxError> {
        match self.0.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(not_connected(format!("the NATS connection is {state:?}"))),
        }
    }
}

impl fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBroker")
            .field("state", &self.0.client.connection_state())
            .field("settings", &self.0.settings)
            .finish()
    }
}

impl Broker for NatsBroker {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn request(&self, message: Envelope) -> BoxFuture<Result<Reply, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_connected()?;
            let request = async_nats::Request::new()
                .headers(to_nats(&message.headers, false))
                .payload(message.payload)
                // The pipeline's deadline bounds the wait.
                .timeout(None);
            match this
                .0
                .client
                .send_request(message.pattern.as_str().to_owned(), request)
                .await
            {
                Ok(reply) => {
                    let headers = reply.headers.as_ref().map(from_nats).unwrap_or_default();
                    Ok(Reply {
                        status: Reply::status_of(&headers),
                        headers,
                        payload: reply.payload,
                    })
                }
                Err(e) if e.kind() == RequestErrorKind::NoResponders => Err(no_responder()),
                Err(e) => Err(broken(e)),
            }
        })
    }

    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_connected()?;
            this.ensure_streams().await?;
            match this.publish_once(&message).await {
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                    // JetStream lost the stream (reset or wiped): create it and try again.
                    this.0.streams_ready.store(false, Ordering::Release);
                    this.ensure_streams().await?;
                    this.publish_once(&message).await.map_err(broken)
                }
                result => result.map_err(broken),
            }
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            match subscription.kind {
                Kind::Request => this.subscribe_requests(subscription).await,
                Kind::Event => this.subscribe_events(subscription).await,
                Kind::Queue => Err(crate::broker::unsupported("nats", "service queues")),
            }
        })
    }

    fn is_connected(&self) -> bool {
        self.0.client.connection_state() == State::Connected
    }

    fn flush(&self) -> BoxFuture<()> {
        let this = self.clone();
        Box::pin(async move {
            if let Err(e) = this.0.client.flush().await {
                tracing::debug!(error = %e, "nats flush");
            }
        })
    }
}

impl NatsBroker {
    /// Publishes `message` to JetStream and waits for its confirmation.
    async fn publish_once(&self, message: &Envelope) -> Result<(), PublishError> {
        // With `publish_dedup`, the message id travels as `Nats-Msg-Id` (see `to_nats`).
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .headers(to_nats(&message.headers, self.0.settings.publish_dedup));
        let ack = self
            .0
            .jetstream
            .send_publish(self.event_subject(&message.pattern), publish)
            .await?;
        ack.await.map(|_| ())
    }

    async fn subscribe_requests(&self, subscription: Subscription) -> Result<Deliveries, BoxError> {
        let mut subscribers = Vec::new();
        for subject in subscription.pattern.nats_subjects("") {
            let subscriber = self
                .0
                .client
                .queue_subscribe(subject, subscription.group.clone())
                .await
                .map_err(|e| Box::new(e) as BoxError)?;
            subscribers.push(subscriber);
        }
        let broker = self.clone();
        let deliveries = stream::select_all(subscribers).filter_map(move |message| {
            let broker = broker.clone();
            async move {
                let pattern = Pattern::message(message.subject.as_str()).ok()?;
                let headers = message.headers.as_ref().map(from_nats).unwrap_or_default();
                let reply_to = message.reply.as_ref().map(|r| r.to_string());
                Some(Delivery {
                    message: Envelope {
                        pattern,
                        headers,
                        payload: message.payload,
                    },
                    attempt: 1,
                    settle: Box::new(RequestSettle {
                        broker,
                        reply_to: reply_to.clone(),
                    }),
                    reply_to,
                })
            }
        });
        Ok(Box::pin(deliveries))
    }

    async fn subscribe_events(&self, subscription: Subscription) -> Result<Deliveries, BoxError> {
        self.ensure_streams().await?;
        let (sender, receiver) = mpsc::channel(subscription.prefetch.max(1));
        let subjects = subscription
            .pattern
            .nats_subjects(&self.0.settings.subject_prefix);
        for (index, subject) in subjects.into_iter().enumerate() {
            let durable = durable_name(&subscription.group, &subscription.pattern, index);
            let consumer = self
                .consumer(&durable, &subject, subscription.prefetch)
                .await?;
            tokio::spawn(pull(
                self.clone(),
                consumer,
                durable,
                subject,
                sender.clone(),
            ));
        }
        let deliveries = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|delivery| (delivery, receiver))
        });
        Ok(Box::pin(deliveries))
    }

    async fn consumer(
        &self,
        durable: &str,
        subject: &str,
        prefetch: usize,
    ) -> Result<jetstream::consumer::PullConsumer, BoxError> {
        let stream = self
            .0
            .jetstream
            .get_stream(&self.0.settings.stream)
            .await
            .map_err(|e| broken(format!("stream {}: {e}", self.0.settings.stream)))?;
        stream
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_owned()),
                    filter_subject: subject.to_owned(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.0.settings.ack_wait,
                    max_ack_pending: i64::try_from(prefetch.max(1)).unwrap_or(i64::MAX),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| broken(format!("consumer {durable}: {e}")))
    }
}

/// Pulls one consumer's messages into `sender` until the receiver is gone, taking the
/// consumer up again (after the reconnect backoff) whenever its stream of messages breaks.
async fn pull(
    broker: NatsBroker,
    mut consumer: jetstream::consumer::PullConsumer,
    durable: String,
    subject: String,
    sender: mpsc::Sender<Delivery>,
) {
    let mut reconnect = Reconnect::new();
    loop {
        match consumer.messages().await {
            Ok(mut messages) => {
                while let Some(next) = messages.next().await {
                    match next {
                        Ok(message) => {
                            reconnect.succeeded();
                            let Some(delivery) = broker.event_delivery(message) else {
                                continue;
                            };
                            if sender.send(delivery).await.is_err() {
                                return; // the server stopped
                            }
                        }
                        Err(e) => {
                            tracing::debug!(consumer = %durable, error = %e, "nats consumer");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(consumer = %durable, error = %e, "nats consumer unavailable"),
        }
        if sender.is_closed() {
            return;
        }
        let wait = reconnect.failed();
        tokio::time::sleep(wait).await;
        // The consumer (or its stream) may be gone, after a JetStream reset: create it again.
        broker.0.streams_ready.store(false, Ordering::Release);
        if broker.ensure_streams().await.is_ok() {
            match broker
                .consumer(&durable, &subject, sender.max_capacity())
                .await
            {
                Ok(again) => consumer = again,
                Err(e) => tracing::debug!(consumer = %durable, error = %e, "nats consumer"),
            }
        }
    }
}

impl NatsBroker {
    fn event_delivery(&self, message: jetstream::Message) -> Option<Delivery> {
        let subject = message.subject.as_str();
        let name = subject
            .strip_prefix(self.0.settings.subject_prefix.as_str())
            .and_then(|s| s.strip_prefix('.'));
        let Some(pattern) = name.and_then(|name| Pattern::message(name).ok()) else {
            // Left unsettled it would come back after every `ack_wait`, for ever.
            tracing::warn!(%subject, "an event on a subject that names no pattern; dead-lettered");
            let settle = Box::new(EventSettle {
                broker: self.clone(),
                message,
            });
            tokio::spawn(settle.dead_letter("its subject names no pattern".to_owned()));
            return None;
        };
        let attempt = message
            .info()
            .map(|info| {
                let delivered = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
                let key = (info.consumer.to_owned(), info.stream_sequence);
                let deferred = self.0.deferred.get(&key).unwrap_or(0);
                delivered.saturating_sub(deferred).max(1)
            })
            .unwrap_or(1);
        let headers = message.headers.as_ref().map(from_nats).unwrap_or_default();
        let payload = message.payload.clone();
        Some(Delivery {
            message: Envelope {
                pattern,
                headers,
                payload,
            },
            attempt,
            reply_to: None,
            settle: Box::new(EventSettle {
                broker: self.clone(),
                message,
            }),
        })
    }
}

/// A durable consumer's name for `group` and `pattern`: NATS allows no `.`, `*` or `>`, so
/// those are spelled out, and a hash of the exact pair keeps two pairs from meeting.
fn durable_name(group: &str, pattern: &Pattern, index: usize) -> String {
    let readable: String = format!("{group}__{pattern}")
        .chars()
        .map(|c| match c {
            '.' => '_',
            '*' => 'S',
            '#' => 'H',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => c,
            _ => '_',
        })
        .collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (group, pattern.as_str()).hash(&mut hasher);
    format!("{readable}_{:08x}_{index}", hasher.finish() as u32)
}

struct RequestSettle {
    // The broker, not its async-nats client: cloning that allocates, on every request.
    broker: NatsBroker,
    reply_to: Option<String>,
}

impl Settle for RequestSettle {
    fn reply(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let Some(reply_to) = self.reply_to else {
                return Ok(()); // published without a reply subject: nobody waits
            };
            let client = &self.broker.0.client;
            // A 200 reply has no headers: then none are sent (nor parsed at the caller).
            let published = if reply.headers.is_empty() {
                client.publish(reply_to, reply.payload).await
            } else {
                client
                    .publish_with_headers(reply_to, to_nats(&reply.headers, false), reply.payload)
                    .await
            };
            published.map_err(|e| Box::new(e) as BoxError)
        })
    }

    // Core NATS keeps nothing: a request is answered or it times out at its caller.
    fn ack(self: Box<Self>) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn retry(self: Box<Self>, _delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn defer(self: Box<Self>, _delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn dead_letter(self: Box<Self>, _reason: String) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
}

struct EventSettle {
    broker: NatsBroker,
    message: jetstream::Message,
}

impl Settle for EventSettle {
    fn reply(self: Box<Self>, _reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        self.ack()
    }

    fn ack(self: Box<Self>) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { self.message.ack().await.map_err(|e| e as BoxError) })
    }

    fn retry(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            self.message
                .ack_with(AckKind::Nak(Some(delay)))
                .await
                .map_err(|e| e as BoxError)
        })
    }

    fn defer(self: Box<Self>, delay: Duration) -> BoxFuture<Result<(), BoxError>> {
        if let Ok(info) = self.message.info() {
            let key = (info.consumer.to_owned(), info.stream_sequence);
            let deferred = &self.broker.0.deferred;
            deferred.insert(key.clone(), deferred.get(&key).unwrap_or(0) + 1);
        }
        self.retry(delay)
    }

    fn dead_letter(self: Box<Self>, reason: String) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let settings = &self.broker.0.settings;
            let name = self
                .message
                .subject
                .as_str()
                .strip_prefix(settings.subject_prefix.as_str())
                .unwrap_or(self.message.subject.as_str())
                .trim_start_matches('.')
                .to_owned();
            let mut headers = self.message.headers.clone().unwrap_or_default();
            headers.insert(headers::DEAD_REASON, reason.as_str());
            headers.insert(headers::DEAD_PATTERN, name.as_str());
            let subject = format!("{}.{name}", settings.dead_letter_prefix);
            // Stored among the dead letters first; only then is the original let go.
            let ack = self
                .broker
                .0
                .jetstream
                .publish_with_headers(subject, headers, self.message.payload.clone())
                .await
                .map_err(|e| Box::new(e) as BoxError)?;
            ack.await.map_err(|e| Box::new(e) as BoxError)?;
            self.message
                .ack_with(AckKind::Term)
                .await
                .map_err(|e| e as BoxError)
        })
    }
}

/// An async-nats client connected to `url`, restoring lost connections with the SDK's
/// reconnect backoff (every NATS wire connects this way).
pub(crate) async fn connect_client(url: &str) -> Result<async_nats::Client, MessagingError> {
    let backoff = ExponentialBackoff::reconnect();
    let options = async_nats::ConnectOptions::new()
        .name("sdk-messaging")
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(move |attempts| {
            backoff.delay(u32::try_from(attempts).unwrap_or(u32::MAX))
        })
        .event_callback(|event| async move {
            tracing::info!(%event, "nats connection");
        });
    let client = options.connect(url).await.map_err(|e| {
        MessagingError::Broker(
            format!("could not connect to {}: {e}", sdk_base::redact_url(url)).into(),
        )
    })?;
    Ok(client)
}

/// `traceparent` as a NATS header name (no parsing per message).
const NATS_TRACEPARENT: async_nats::HeaderName = async_nats::HeaderName::from_static("traceparent");

/// The SDK's message id header as a NATS header name.
const NATS_SDK_MESSAGE_ID: async_nats::HeaderName =
    async_nats::HeaderName::from_static(headers::MESSAGE_ID);

/// The other names a message or reply carries most, as NATS header names made once (a
/// name parsed per message is a `String` of its own).
const NATS_KNOWN: [async_nats::HeaderName; 4] = [
    async_nats::HeaderName::from_static("x-request-deadline"),
    async_nats::HeaderName::from_static(headers::STATUS),
    async_nats::HeaderName::from_static(headers::CORRELATION_ID),
    async_nats::HeaderName::from_static(headers::URGENCY),
];

/// A message's headers for NATS. With `dedup`, the SDK's message id goes as `Nats-Msg-Id`,
/// the id JetStream drops a republished duplicate by, so one header serves both
/// (`from_nats` maps it back).
pub(crate) fn to_nats(headers: &HeaderMap, dedup: bool) -> NatsHeaders {
    let mut nats = NatsHeaders::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        if *name == headers::MESSAGE_ID_NAME {
            let name = if dedup {
                async_nats::header::NATS_MESSAGE_ID
            } else {
                NATS_SDK_MESSAGE_ID
            };
            nats.insert(name, value);
        } else if *name == sdk::trace::TRACEPARENT {
            nats.insert(NATS_TRACEPARENT, value);
        } else if let Some(known) = NATS_KNOWN
            .iter()
            .find(|k| AsRef::<str>::as_ref(*k) == name.as_str())
        {
            nats.append(known.clone(), value);
        } else {
            nats.append(name.as_str(), value);
        }
    }
    nats
}

pub(crate) fn from_nats(nats: &NatsHeaders) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, values) in nats.iter() {
        let name = if *name == async_nats::header::NATS_MESSAGE_ID {
            headers::MESSAGE_ID_NAME
        } else if let Some(name) = headers::name(AsRef::<str>::as_ref(name).as_bytes()) {
            name
        } else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value.as_str()) {
                headers.append(name.clone(), value);
            }
        }
    }
    headers
}
