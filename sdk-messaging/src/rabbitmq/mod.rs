//! The RabbitMQ transport (feature `rabbitmq`, lapin 4 with automatic recovery).
//!
//! - **`send`** publishes to the topic exchange `sdk.requests` with the pattern as routing
//!   key, `mandatory`, a message TTL of the caller's deadline, and RabbitMQ's direct reply-to
//!   (`amq.rabbitmq.reply-to`), on a channel with publisher confirms. A request no queue is
//!   bound for comes back as returned, and the call fails at once with
//!   `NoHealthyInstance { reason: NoResponder }`.
//! - **`emit`** publishes persistent messages (delivery mode 2) to the topic exchange
//!   `sdk.events`, `mandatory`, and returns once the broker confirms them: an event no group
//!   is subscribed to is refused the same way rather than dropped.
//! - **Queues** are durable classic queues with `x-max-priority = 10`: urgency is the AMQP
//!   priority (low 1, medium 5, high 8, critical 10). Quorum queues would survive a node's
//!   loss, but take no priorities on RabbitMQ 3 and only two levels on RabbitMQ 4, so the
//!   reference's four levels need classic ones. Each handler has a queue of its own,
//!   `<group>.<pattern>` for events and `sdk.rpc.<group>.<pattern>` for requests, bound with
//!   the pattern (`*` and `#` are AMQP's own), consumed with a prefetch of the server's
//!   `prefetch` and acknowledged by hand after the handler. Request queues are
//!   auto-deleted when their last consumer goes: once every server of a pattern stopped
//!   (or its connection closed: at once for a process that died, within the heartbeat for
//!   a host that vanished), a `send` is unroutable and fails with `NoResponder` at once.
//! - **Redelivery and dead letters**: classic queues do not count deliveries, so a failed
//!   event is published again to its queue with `sdk-attempt` one higher (after the
//!   backoff's delay) and only then acknowledged; one given up on is published to the
//!   direct exchange `sdk.dead` (routing key: the group; queue `sdk.dead.<group>`) with the
//!   reason, and only then acknowledged. Every such publish is confirmed first, so a crash in
//!   between duplicates a message (dropped by id) and never loses one.
//! - **Recovery**: a connection that drops is recovered by lapin (channels, exchanges,
//!   queues, bindings, prefetch and consumers replayed). A connection lapin gives up on, or
//!   one the broker closed (`rabbitmqctl stop_app` closes every connection with 320
//!   CONNECTION_FORCED, which is a close, not an error, to lapin), is replaced by a
//!   supervisor: a new connection after the SDK's reconnect backoff (100 ms doubling to 5 s,
//!   jittered, without end), with the exchanges declared again, and every consumer
//!   subscribed again on it. While the broker is away, `send` and `emit` fail at once as not
//!   connected, which the pipeline retries within the deadline; a publish whose confirmation
//!   was lost with the connection gives up after 5 s and is sent again (with its id).

pub(crate) mod convert;
mod rpc;
mod settle;

use std::{
    fmt,
    sync::{Arc, Weak},
    time::Duration,
};

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use lapin::{
    options::{
        BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use sdk::{retry::ExponentialBackoff, BoxError};
use sdk_base::backoff::Reconnect;

use self::{convert::properties, rpc::Rpc, settle::RabbitSettle};
use crate::{
    broker::{broken, no_responder, not_connected, BoxFuture, Deliveries, Subscription},
    envelope::{headers, Kind},
    Broker, Envelope, MessagingError, RabbitSettings, Reply,
};

/// How long a publish waits for the broker's confirmation.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the connection.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);
/// How long lapin may try to recover a connection before the supervisor replaces it (its
/// recovery can hang in `Reconnecting` after a broker restart, seen with lapin 4.12).
const RECOVERY_GRACE: Duration = Duration::from_secs(10);

/// A RabbitMQ connection as a [`Broker`].
#[derive(Clone)]
pub struct RabbitBroker {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    settings: RabbitSettings,
    /// The current connection and its channels; replaced when it dies.
    link: ArcSwap<Link>,
    /// Counts replacements, so consumers on a replaced connection move to the new one.
    generation: tokio::sync::watch::Sender<u64>,
}

/// One connection with the channels the broker publishes and waits for replies on.
struct Link {
    connection: Connection,
    /// Publishes events, with confirms.
    publisher: Channel,
    rpc: Rpc,
    /// Service queues declared on this connection.
    queues: tokio::sync::Mutex<std::collections::HashSet<String>>,
}

impl RabbitBroker {
    /// Connects to `url` (`amqp://user:password@host:5672/%2f`; the password is never
    /// printed) and declares the exchanges.
    pub async fn connect(
        url: &str,
        settings: RabbitSettings,
    ) -> Result<RabbitBroker, MessagingError> {
        let link = open(url, &settings).await.map_err(|(what, e)| {
            MessagingError::Broker(format!("{what} {}: {e}", sdk_base::redact_url(url)).into())
        })?;
        let inner = Arc::new(Inner {
            url: url.to_owned(),
            settings,
            link: ArcSwap::from_pointee(link),
            generation: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(supervise(Arc::downgrade(&inner)));
        Ok(RabbitBroker { inner })
    }

    fn link(&self) -> Arc<Link> {
        self.inner.link.load_full()
    }

    fn check_connected(&self) -> Result<Arc<Link>, BoxError> {
        let link = self.link();
        if link.connection.status().connected() {
            Ok(link)
        } else {
            Err(not_connected(
                "the RabbitMQ connection is down (recovering)",
            ))
        }
    }
}

/// Opens a connection (lapin's recovery on), its publishing channel with confirms and its
/// reply channel, and declares the exchanges. The error says what failed.
/// How long a first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn open(url: &str, settings: &RabbitSettings) -> Result<Link, (String, lapin::Error)> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: lapin::Error| (what, e)
    };
    let reconnect = ExponentialBackoff::reconnect();
    let properties = ConnectionProperties::default()
        .with_connection_name("sdk-messaging".into())
        .enable_auto_recover()
        .configure_backoff(move |b| {
            b.with_min_delay(reconnect.step(1))
                .with_max_delay(reconnect.step(u32::MAX))
                .with_jitter()
                .with_max_times(usize::MAX)
        });
    // lapin's recovery retries a first connection without end too; a caller of `connect`
    // is told after 5 s, as on the other transports.
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| {
            (
                "could not connect to".to_owned(),
                lapin::Error::from(lapin::ErrorKind::IOError(std::sync::Arc::new(
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5 s"),
                ))),
            )
        })?
        .map_err(fail("could not connect to"))?;
    let publisher = connection
        .create_channel()
        .await
        .map_err(fail("could not open a channel on"))?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(fail("could not enable confirms on"))?;
    for (name, kind) in [
        (&settings.requests_exchange, ExchangeKind::Topic),
        (&settings.events_exchange, ExchangeKind::Topic),
        (&settings.dead_letter_exchange, ExchangeKind::Direct),
    ] {
        publisher
            .exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(fail(&format!("could not declare the exchange {name} on")))?;
    }
    let rpc = Rpc::new(&connection)
        .await
        .map_err(fail("could not set up replies on"))?;
    Ok(Link {
        connection,
        publisher,
        rpc,
        queues: Default::default(),
    })
}

/// Whether lapin is done with a connection (it will not recover it by itself).
fn is_dead(status: &lapin::ConnectionStatus) -> bool {
    status.closed() || status.errored()
}

/// Replaces the connection whenever lapin is done with it, or has been recovering it for
/// longer than [`RECOVERY_GRACE`], until the broker is dropped.
async fn supervise(inner: Weak<Inner>) {
    let mut down_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(SUPERVISE_EVERY).await;
        let Some(inner) = inner.upgrade() else { return };
        let status = inner.link.load().connection.status().clone();
        if status.connected() {
            down_since = None;
            continue;
        }
        let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
        if !is_dead(&status) && since.elapsed() < RECOVERY_GRACE {
            continue;
        }
        tracing::warn!("the RabbitMQ connection is lost; connecting again");
        replace(&inner).await;
        down_since = None;
    }
}

/// Opens a new connection (after the reconnect backoff, until one opens), makes it the
/// current one, moves the consumers to it, and closes the old one.
async fn replace(inner: &Inner) {
    let mut reconnect = Reconnect::new();
    let link = loop {
        match open(&inner.url, &inner.settings).await {
            Ok(link) => break link,
            Err((what, e)) => {
                let wait = reconnect.failed();
                if reconnect.failures() == 1 {
                    tracing::warn!(error = %e, "{what} RabbitMQ");
                }
                tokio::time::sleep(wait).await;
            }
        }
    };
    let old = inner.link.swap(Arc::new(link));
    inner.generation.send_modify(|g| *g += 1);
    tracing::info!("connected to RabbitMQ again");
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            old.connection
                .close(0, "replaced by a new connection".into()),
        )
        .await;
    });
}

impl RabbitBroker {
    /// Declares a durable priority queue, bound to an exchange by a key if `binding` says so.
    async fn declare_queue(
        &self,
        channel: &Channel,
        queue: &str,
        binding: Option<(&str, &str)>,
    ) -> Result<(), BoxError> {
        self.declare_queue_with(channel, queue, binding, QueueDeclareOptions::durable())
            .await
    }

    /// Declares a priority queue with `options`, bound if `binding` says so.
    async fn declare_queue_with(
        &self,
        channel: &Channel,
        queue: &str,
        binding: Option<(&str, &str)>,
        options: QueueDeclareOptions,
    ) -> Result<(), BoxError> {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
        if let Some(expires) = self.inner.settings.queue_expires {
            let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        channel
            .queue_declare(queue.into(), options, arguments)
            .await
            .map_err(|e| broken(format!("queue {queue}: {e}")))?;
        let Some((exchange, key)) = binding else {
            return Ok(());
        };
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broken(format!("binding {queue}: {e}")))
    }

    /// Publishes with a confirmation; a returned (unroutable) message is `NoResponder`.
    ///
    /// A publish on a connection that is being lost can wait for ever (for the frame to go
    /// out, or for a confirmation lost with the connection): it gives up after
    /// [`CONFIRM_TIMEOUT`], so the pipeline sends the message again, on the next connection,
    /// with its id (consumers drop the duplicate).
    async fn confirmed(
        channel: &Channel,
        exchange: &str,
        key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BoxError> {
        let publish = async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties,
                )
                .await
                .map_err(|e| not_connected(format!("publish: {e}")))?;
            confirm.await.map_err(broken)
        };
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, publish)
            .await
            .map_err(|_| broken(format!("no confirmation within {CONFIRM_TIMEOUT:?}")))??;
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(no_responder()),
            Confirmation::Nack(_) => Err(broken("the broker refused the message (nack)")),
        }
    }
}

impl fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("url", &sdk_base::redact_url(&self.inner.url))
            .field("connected", &self.is_connected())
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl Broker for RabbitBroker {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn request(&self, message: Envelope) -> BoxFuture<Result<Reply, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            let link = this.check_connected()?;
            let exchange = &this.inner.settings.requests_exchange;
            link.rpc.call(exchange, message).await
        })
    }

    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            let link = this.check_connected()?;
            let properties = properties(&message, Kind::Event);
            Self::confirmed(
                &link.publisher,
                &this.inner.settings.events_exchange,
                message.pattern.as_str(),
                &message.payload,
                properties,
            )
            .await
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            // The first subscription's mistakes (a queue declared with other arguments) are
            // the caller's to see; later ones are retried on the next connection.
            let first = this.subscribe_once(&subscription).await?;
            Ok(this.deliveries(subscription, first))
        })
    }

    fn is_connected(&self) -> bool {
        self.link().connection.status().connected()
    }

    fn enqueue(&self, queue: &str, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let (this, queue) = (self.clone(), queue.to_owned());
        Box::pin(async move {
            let link = this.check_connected()?;
            if !link.queues.lock().await.contains(&queue) {
                this.declare_queue(&link.publisher, &queue, None).await?;
                link.queues.lock().await.insert(queue.clone());
            }
            let properties = properties(&message, Kind::Queue);
            Self::confirmed(&link.publisher, "", &queue, &message.payload, properties).await
        })
    }
}

/// What other wires take from this transport: its supervised connection (the NestJS wire
/// publishes to a service's queue and consumes its own on it).
impl RabbitBroker {
    /// Publishes `payload` to the queue `queue` (the default exchange) with a confirmation;
    /// a queue that does not exist makes it `NoResponder`.
    pub(crate) async fn publish_to_queue(
        &self,
        queue: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BoxError> {
        let link = self.check_connected()?;
        Self::confirmed(&link.publisher, "", queue, payload, properties).await
    }

    /// Sends `payload` to the queue `queue` with RabbitMQ's direct reply-to and the
    /// correlation id `id` (fresh for each call), and waits for the reply.
    pub(crate) async fn call_queue(
        &self,
        queue: &str,
        payload: &[u8],
        properties: BasicProperties,
        id: String,
    ) -> Result<Reply, BoxError> {
        let link = self.check_connected()?;
        link.rpc.call_to("", queue, payload, properties, id).await
    }

    /// A channel on the current connection, and what changes when the connection is
    /// replaced (then a consumer on the channel subscribes again on a new one).
    pub(crate) async fn channel(
        &self,
    ) -> Result<(Channel, tokio::sync::watch::Receiver<u64>), BoxError> {
        let generation = self.inner.generation.subscribe();
        let link = self.check_connected()?;
        let channel = link
            .connection
            .create_channel()
            .await
            .map_err(|e| not_connected(format!("channel: {e}")))?;
        Ok((channel, generation))
    }
}

/// A subscription on one connection: its consumer, channel and queue.
type Subscribed = (Consumer, Channel, Arc<settle::Queue>);

impl RabbitBroker {
    /// Declares a subscription's queues on the current connection and starts consuming.
    async fn subscribe_once(&self, subscription: &Subscription) -> Result<Subscribed, BoxError> {
        let settings = &self.inner.settings;
        let (channel, _) = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broken)?;
        let prefetch = u16::try_from(subscription.prefetch.max(1)).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(broken)?;
        let queue = match subscription.kind {
            Kind::Request => {
                // Deleted by RabbitMQ when its last consumer goes (a server stopping, or a
                // process whose connection closed): from then on a `send` comes back
                // unroutable, `NoResponder` at once, instead of waiting in a queue nobody
                // reads until its deadline. Requests are answered or abandoned, never kept.
                let queue = format!("sdk.rpc.{}.{}", subscription.group, subscription.pattern);
                let key = subscription.pattern.as_str();
                let options = QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                };
                let binding = Some((settings.requests_exchange.as_str(), key));
                self.declare_queue_with(&channel, &queue, binding, options)
                    .await?;
                queue
            }
            Kind::Event => {
                let queue = format!("{}.{}", subscription.group, subscription.pattern);
                let key = subscription.pattern.as_str();
                self.declare_queue(&channel, &queue, Some((&settings.events_exchange, key)))
                    .await?;
                queue
            }
            // A service's own queue, named from its URL; messages go to it directly.
            Kind::Queue => {
                let queue = subscription.pattern.as_str().to_owned();
                self.declare_queue(&channel, &queue, None).await?;
                queue
            }
        };
        let dead_queue = format!("sdk.dead.{}", subscription.group);
        let dead = (
            settings.dead_letter_exchange.as_str(),
            subscription.group.as_str(),
        );
        self.declare_queue(&channel, &dead_queue, Some(dead))
            .await?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broken)?;
        let context = Arc::new(settle::Queue {
            channel: channel.clone(),
            queue,
            dead_exchange: settings.dead_letter_exchange.clone(),
            group: subscription.group.clone(),
        });
        Ok((consumer, channel, context))
    }

    /// The deliveries of `subscription`, across lapin's recoveries and across connections:
    /// when its consumer ends (its connection closed for good), it subscribes again on the
    /// next one, after the reconnect backoff.
    fn deliveries(&self, subscription: Subscription, first: Subscribed) -> Deliveries {
        let generation = self.inner.generation.subscribe();
        let state = (
            self.clone(),
            subscription,
            Some(first),
            Reconnect::new(),
            generation,
        );
        let stream = futures_util::stream::unfold(
            state,
            |(broker, subscription, mut current, mut reconnect, mut generation)| async move {
                loop {
                    let Some((consumer, channel, queue)) = current.as_mut() else {
                        match broker.subscribe_once(&subscription).await {
                            Ok(subscribed) => {
                                reconnect.succeeded();
                                current = Some(subscribed);
                            }
                            Err(_) => {
                                tokio::time::sleep(reconnect.failed()).await;
                            }
                        }
                        continue;
                    };
                    let next = tokio::select! {
                        next = consumer.next() => next,
                        // The connection was replaced: subscribe on the new one.
                        _ = generation.changed() => {
                            current = None;
                            continue;
                        }
                    };
                    match next {
                        Some(Ok(delivery)) => {
                            if let Some(next) = RabbitSettle::delivery(delivery, queue) {
                                return Some((
                                    next,
                                    (broker, subscription, current, reconnect, generation),
                                ));
                            }
                        }
                        Some(Err(error)) => {
                            tracing::debug!(queue = %queue.queue, %error, "rabbitmq consumer; waiting for recovery");
                            if channel.wait_for_recovery(error).await.is_err() {
                                current = None;
                            }
                        }
                        None => current = None,
                    }
                }
            },
        );
        Box::pin(stream)
    }
}

/// The attempt number an event's headers carry (1 when they carry none).
fn attempt_of(delivery_headers: &http::HeaderMap) -> u32 {
    delivery_headers
        .get(headers::ATTEMPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}
