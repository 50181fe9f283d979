//! NestJS's format over RabbitMQ as a [`Broker`], as NestJS's `Transport.RMQ` uses it: a
//! service consumes one queue for all its patterns, and callers send to that queue.
//!
//! - **`send`** publishes the NestJS request packet to the queue `[nestjs] queue` names (the
//!   default exchange), `mandatory`, with RabbitMQ's direct reply-to and a correlation id;
//!   the answer is NestJS's reply packet. A queue that does not exist makes the call
//!   `NoResponder` at once.
//! - **`emit`** publishes the event packet to the same queue, persistent, and returns once
//!   RabbitMQ confirmed it (NestJS itself publishes without a confirmation).
//! - **A server** of group `G` consumes the durable queue `G` (declared as NestJS declares
//!   its own: durable, no arguments), the name NestJS callers give as `options.queue`. One
//!   consumer per queue hands each message to the handler whose pattern matches best; a
//!   request no handler takes is answered with NestJS's "no matching message handler".
//! - Like NestJS's default (`noAck: true`), a message is as good as acknowledged once it
//!   reaches its handler's reader (the ack is sent then, so that RabbitMQ's prefetch bounds
//!   what a slow handler leaves waiting here): a failed event is delivered again
//!   in-process with the backoff and lost if the process stops (see the `wire` module).
//! - The connection is the RabbitMQ transport's own, with its recovery and supervisor; a
//!   consumer subscribes again on a replaced connection.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, Weak},
};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::StatusCode;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
    types::FieldTable,
    BasicProperties,
};
use sdk::BoxError;
use sdk_base::{backoff::Reconnect, sync::Unpoisoned as _};
use tokio::sync::mpsc;

use super::{nestjs::NestJs, Answer, Codec, Raw, RequestSettle};
use crate::{
    broker::{broken, BoxFuture, Deliveries},
    rabbitmq::{
        convert::{from_table, properties},
        RabbitBroker,
    },
    Broker, Envelope, Kind, MessagingError, Pattern, RabbitSettings, Reply, Subscription,
};

/// Messages a handler's reader holds before the consumer waits for it.
const HANDLER_BUFFER: usize = 1_000;
/// Messages RabbitMQ delivers to a queue's consumer before it acknowledged them.
const PREFETCH: u16 = 100;
/// What NestJS answers a request no handler takes.
const NO_HANDLER: &str = "There is no matching message handler defined in the remote service.";

/// The handlers of one consumed queue.
type Routes = Vec<(Pattern, Kind, mpsc::Sender<Raw>)>;

/// NestJS over RabbitMQ. Cheap to clone.
#[derive(Clone)]
pub(crate) struct NestRabbitBroker {
    rabbit: RabbitBroker,
    codec: Arc<NestJs>,
    /// The queue `send` and `emit` go to (empty: none set).
    target: Arc<str>,
    /// The consumed queues' handlers, by queue.
    queues: Arc<Mutex<HashMap<String, Routes>>>,
}

impl NestRabbitBroker {
    /// Connects to the RabbitMQ at `url`; `send` and `emit` go to the queue `target`.
    pub(crate) async fn connect(
        url: &str,
        settings: RabbitSettings,
        target: String,
    ) -> Result<NestRabbitBroker, MessagingError> {
        Ok(NestRabbitBroker {
            rabbit: RabbitBroker::connect(url, settings).await?,
            codec: Arc::new(NestJs),
            target: target.into(),
            queues: Arc::default(),
        })
    }

    fn target(&self) -> Result<&str, BoxError> {
        if self.target.is_empty() {
            return Err(broken(
                "no queue to send to: set [messaging.NAME.nestjs] queue to the NestJS service's queue",
            ));
        }
        Ok(&self.target)
    }

    async fn request_once(&self, message: Envelope) -> Result<Reply, BoxError> {
        let queue = self.target()?;
        let pattern = message.pattern.as_str();
        let id = crate::envelope::new_id();
        let packet = self.codec.request(pattern, &id, &message.payload);
        // The packet's id is the AMQP correlation id too, as NestJS sends them (and as a
        // NestJS or Rust server answers: with the packet's id).
        let answer = self
            .rabbit
            .call_queue(queue, &packet, properties(&message, Kind::Request), id)
            .await?;
        super::nestjs::answer(&answer.payload, pattern)
    }
}

impl fmt::Debug for NestRabbitBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NestRabbitBroker")
            .field("rabbit", &self.rabbit)
            .field("queue", &self.target)
            .finish()
    }
}

impl Broker for NestRabbitBroker {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn request(&self, message: Envelope) -> BoxFuture<Result<Reply, BoxError>> {
        let this = self.clone();
        Box::pin(async move { this.request_once(message).await })
    }

    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            let queue = this.target()?;
            let event = this.codec.event(message.pattern.as_str(), &message.payload);
            this.rabbit
                .publish_to_queue(queue, &event, properties(&message, Kind::Event))
                .await
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            if subscription.kind == Kind::Queue {
                return Err(crate::broker::unsupported("nestjs", "service queues"));
            }
            let (sender, receiver) = mpsc::channel(HANDLER_BUFFER);
            let queue = subscription.group.clone();
            let first = {
                let mut queues = this.queues.locked();
                let routes = queues.entry(queue.clone()).or_default();
                routes.push((
                    subscription.pattern.clone(),
                    subscription.kind,
                    sender.clone(),
                ));
                routes.len() == 1
            };
            if first {
                // Declared here, so a mistake (a queue declared with other arguments) is
                // the caller's to see; the consumer declares it again on each connection.
                let (channel, _) = this.rabbit.channel().await?;
                declare(&channel, &queue).await?;
                tokio::spawn(consume(this.clone(), Arc::downgrade(&this.queues), queue));
            }
            let kind = subscription.kind;
            let deliveries = stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|raw| (raw, receiver))
            })
            .filter_map(move |raw| {
                let broker = this.clone();
                let delivery = super::delivery(&*this.codec, kind, raw, &sender, |id, raw| {
                    Box::new(RequestSettle(Box::new(RabbitAnswer {
                        broker,
                        reply_to: raw.reply_to.clone(),
                        id,
                    })))
                });
                async move { delivery }
            });
            Ok(Box::pin(deliveries) as Deliveries)
        })
    }

    fn is_connected(&self) -> bool {
        self.rabbit.is_connected()
    }
}

/// Declares `queue` as NestJS does: durable, no arguments.
async fn declare(channel: &lapin::Channel, queue: &str) -> Result<(), BoxError> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .map(|_| ())
        .map_err(|e| broken(format!("queue {queue}: {e}")))
}

/// Consumes `queue` while its broker lives, on each connection in turn, handing each
/// message to its handler.
async fn consume(
    broker: NestRabbitBroker,
    queues: Weak<Mutex<HashMap<String, Routes>>>,
    queue: String,
) {
    let mut reconnect = Reconnect::new();
    loop {
        if queues.strong_count() == 0 {
            return;
        }
        let opened = async {
            let (channel, generation) = broker.rabbit.channel().await?;
            declare(&channel, &queue).await?;
            // Acknowledged by hand once handed to its handler's reader (not `noAck`, whose
            // consumer ignores the prefetch): a slow handler then holds the broker back at
            // `PREFETCH` messages instead of letting this process buffer without end.
            channel
                .basic_qos(PREFETCH, BasicQosOptions::default())
                .await
                .map_err(broken)?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(broken)?;
            Ok::<_, BoxError>((channel, consumer, generation))
        };
        let (channel, mut consumer, mut generation) = match opened.await {
            Ok(opened) => opened,
            Err(e) => {
                tracing::debug!(%queue, error = %e, "nestjs over rabbitmq: could not consume");
                tokio::time::sleep(reconnect.failed()).await;
                continue;
            }
        };
        reconnect.succeeded();
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = generation.changed() => break,
            };
            match next {
                Some(Ok(delivery)) => {
                    let Some(queues) = queues.upgrade() else {
                        return;
                    };
                    let acker = delivery.acker.clone();
                    route(&broker, &queues, &queue, delivery).await;
                    if let Err(e) = acker.ack(BasicAckOptions::default()).await {
                        tracing::debug!(%queue, error = %e, "nestjs over rabbitmq: could not ack");
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(%queue, error = %e, "nestjs over rabbitmq: consumer failed");
                    break;
                }
                None => break,
            }
        }
        // Closed, so a consumer that failed on a connection that lives on leaves no channel.
        let _ = channel.close(200, "consuming again".into()).await;
        tokio::time::sleep(reconnect.failed()).await;
    }
}

/// Hands one message of `queue` to the handler whose pattern matches it best; a request no
/// handler takes is answered as NestJS answers it.
async fn route(
    broker: &NestRabbitBroker,
    queues: &Mutex<HashMap<String, Routes>>,
    queue: &str,
    delivery: lapin::message::Delivery,
) {
    let Some((pattern, request)) = super::nestjs::peek(&delivery.data) else {
        tracing::warn!(%queue, "dropping a message that is not a NestJS packet");
        return;
    };
    let kind = if request { Kind::Request } else { Kind::Event };
    let sender = {
        let queues = queues.locked();
        let routes = queues.get(queue).map(Vec::as_slice).unwrap_or_default();
        let candidates = routes.iter().filter(|(_, k, _)| *k == kind);
        let best = crate::pattern::best(candidates.clone().map(|(p, _, _)| p), &pattern);
        best.and_then(|best| candidates.clone().find(|(p, _, _)| p == best))
            .map(|(_, _, sender)| sender.clone())
    };
    let reply_to = delivery
        .properties
        .reply_to()
        .as_ref()
        .map(|r| r.as_str().to_owned());
    let Some(sender) = sender else {
        if request {
            answer_no_handler(broker, &delivery.data, reply_to).await;
        } else {
            tracing::warn!(%queue, %pattern, "no handler for an event; dropped");
        }
        return;
    };
    let headers = from_table(delivery.properties.headers().as_ref());
    let raw = Raw::new(pattern, reply_to, headers, Bytes::from(delivery.data));
    if sender.send(raw).await.is_err() {
        tracing::debug!(%queue, "a handler stopped; dropping its message");
    }
}

async fn answer_no_handler(broker: &NestRabbitBroker, data: &[u8], reply_to: Option<String>) {
    let Ok(Some(incoming)) = broker.codec.incoming(data) else {
        return;
    };
    let (Some(id), Some(reply_to)) = (incoming.id, reply_to) else {
        return;
    };
    let body = serde_json::json!({ "error": NO_HANDLER }).to_string();
    let reply = Reply::new(StatusCode::NOT_FOUND, Bytes::from(body));
    let answer = Box::new(RabbitAnswer {
        broker: broker.clone(),
        reply_to: Some(reply_to),
        id,
    });
    if let Err(e) = answer.answer(reply).await {
        tracing::debug!(error = %e, "could not answer a request no handler takes");
    }
}

/// Where a request read from RabbitMQ is answered: its `replyTo`, with its id as the
/// correlation id (NestJS sets both alike).
struct RabbitAnswer {
    broker: NestRabbitBroker,
    reply_to: Option<String>,
    id: String,
}

impl Answer for RabbitAnswer {
    fn answer(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let Some(reply_to) = self.reply_to else {
                return Ok(()); // sent without a reply queue: nobody waits
            };
            let packet = self.broker.codec.reply(&self.id, &reply);
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_correlation_id(self.id.as_str().into());
            self.broker
                .rabbit
                .publish_to_queue(&reply_to, &packet, properties)
                .await
        })
    }
}
