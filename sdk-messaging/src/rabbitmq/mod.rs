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
//!   `prefetch` and acknowledged by hand after the handler.
//! - **Redelivery and dead letters**: classic queues do not count deliveries, so a failed
//!   event is published again to its queue with `sdk-attempt` one higher (after the
//!   backoff's delay) and only then acknowledged; one given up on is published to the
//!   direct exchange `sdk.dead` (routing key: the group; queue `sdk.dead.<group>`) with the
//!   reason, and only then acknowledged. Every such publish is confirmed first, so a crash in
//!   between duplicates a message (dropped by id) and never loses one.
//! - **Recovery**: a dropped connection is recovered by lapin, with its channels, exchanges,
//!   queues, bindings, prefetch and consumers, after the SDK's reconnect backoff (100 ms
//!   doubling to 5 s, jittered, without end). While it is down, `send` and `emit` fail at
//!   once as not connected, which the pipeline retries within the deadline.

mod convert;
mod rpc;
mod settle;

use std::{fmt, sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    options::{
        BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use sdk::BoxError;

use self::{convert::properties, rpc::Rpc, settle::RabbitSettle};
use crate::{
    broker::{broken, no_responder, not_connected, BoxFuture, Deliveries, Subscription},
    envelope::{headers, Kind},
    Broker, Envelope, MessagingError, RabbitSettings, Reply,
};

/// A RabbitMQ connection as a [`Broker`].
#[derive(Clone)]
pub struct RabbitBroker {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    /// Publishes events, with confirms.
    publisher: Channel,
    rpc: Rpc,
    settings: RabbitSettings,
}

impl RabbitBroker {
    /// Connects to `url` (`amqp://user:password@host:5672/%2f`; the password is never
    /// printed) and declares the exchanges.
    pub async fn connect(
        url: &str,
        settings: RabbitSettings,
    ) -> Result<RabbitBroker, MessagingError> {
        let fail = |what: &str, e: lapin::Error| {
            MessagingError::Broker(format!("{what} {}: {e}", sdk::registry::redact_url(url)).into())
        };
        let reconnect = sdk::retry::ExponentialBackoff::reconnect();
        let properties = ConnectionProperties::default()
            .with_connection_name("sdk-messaging".into())
            .enable_auto_recover()
            .configure_backoff(move |b| {
                b.with_min_delay(reconnect.step(1))
                    .with_max_delay(reconnect.step(u32::MAX))
                    .with_jitter()
                    .with_max_times(usize::MAX)
            });
        let connection = Connection::connect(url, properties)
            .await
            .map_err(|e| fail("could not connect to", e))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| fail("could not open a channel on", e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| fail("could not enable confirms on", e))?;
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
                .map_err(|e| fail(&format!("could not declare the exchange {name} on"), e))?;
        }
        let rpc = Rpc::new(&connection)
            .await
            .map_err(|e| fail("could not set up replies on", e))?;
        Ok(RabbitBroker {
            inner: Arc::new(Inner {
                connection,
                publisher,
                rpc,
                settings,
            }),
        })
    }

    fn check_connected(&self) -> Result<(), BoxError> {
        if self.inner.connection.status().connected() {
            Ok(())
        } else {
            Err(not_connected(
                "the RabbitMQ connection is down (recovering)",
            ))
        }
    }

    /// Declares a handler's durable priority queue and binds it to `exchange` by `key`.
    async fn declare_queue(
        &self,
        channel: &Channel,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> Result<(), BoxError> {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
        if let Some(expires) = self.inner.settings.queue_expires {
            let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
            .await
            .map_err(|e| broken(format!("queue {queue}: {e}")))?;
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
    async fn confirmed(
        channel: &Channel,
        exchange: &str,
        key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BoxError> {
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
        match confirm.await.map_err(broken)? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(no_responder()),
            Confirmation::Nack(_) => Err(broken("the broker refused the message (nack)")),
        }
    }
}

impl fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("connected", &self.inner.connection.status().connected())
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
            this.check_connected()?;
            let exchange = this.inner.settings.requests_exchange.clone();
            this.inner.rpc.call(&exchange, message).await
        })
    }

    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_connected()?;
            let properties = properties(&message, Kind::Event);
            Self::confirmed(
                &this.inner.publisher,
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
        Box::pin(async move { this.consume(subscription).await })
    }

    fn is_connected(&self) -> bool {
        self.inner.connection.status().connected()
    }
}

impl RabbitBroker {
    async fn consume(&self, subscription: Subscription) -> Result<Deliveries, BoxError> {
        let settings = &self.inner.settings;
        let channel = self
            .inner
            .connection
            .create_channel()
            .await
            .map_err(|e| not_connected(format!("channel: {e}")))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broken)?;
        let prefetch = u16::try_from(subscription.prefetch.max(1)).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(broken)?;
        let (queue, exchange) = match subscription.kind {
            Kind::Request => (
                format!("sdk.rpc.{}.{}", subscription.group, subscription.pattern),
                &settings.requests_exchange,
            ),
            Kind::Event => (
                format!("{}.{}", subscription.group, subscription.pattern),
                &settings.events_exchange,
            ),
        };
        self.declare_queue(&channel, &queue, exchange, subscription.pattern.as_str())
            .await?;
        let dead_queue = format!("sdk.dead.{}", subscription.group);
        self.declare_queue(
            &channel,
            &dead_queue,
            &settings.dead_letter_exchange,
            &subscription.group,
        )
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
        let deliveries = futures_util::stream::unfold(
            (consumer, channel, context),
            |(mut consumer, channel, context)| async move {
                loop {
                    match consumer.next().await {
                        Some(Ok(delivery)) => {
                            if let Some(next) = RabbitSettle::delivery(delivery, &context) {
                                return Some((next, (consumer, channel, context)));
                            }
                        }
                        Some(Err(error)) => {
                            tracing::warn!(queue = %context.queue, %error, "rabbitmq consumer; waiting for recovery");
                            if let Err(error) = channel.wait_for_recovery(error).await {
                                tracing::warn!(queue = %context.queue, %error, "rabbitmq consumer could not recover");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                        None => return None,
                    }
                }
            },
        );
        Ok(Box::pin(deliveries) as Deliveries)
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
