//! Settling a RabbitMQ delivery: a reply to its reply-to address, an ack, a confirmed
//! republish (a retry with its attempt counted, or a dead letter), each acked only after
//! what replaces it is confirmed.

use std::{sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue};
use lapin::{
    message::Delivery as AmqpDelivery,
    options::{BasicAckOptions, BasicPublishOptions},
    Acker, BasicProperties, Channel,
};
use sdk::BoxError;

use super::{attempt_of, convert, RabbitBroker};
use crate::{
    broker::{BoxFuture, Delivery, Settle},
    envelope::headers,
    Envelope, Reply,
};

/// A handler's queue, as its deliveries' settlements need it.
pub(super) struct Queue {
    pub(super) channel: Channel,
    pub(super) queue: String,
    pub(super) dead_exchange: String,
    pub(super) group: String,
}

pub(super) struct RabbitSettle {
    queue: Arc<Queue>,
    acker: Acker,
    message: Envelope,
    properties: BasicProperties,
    attempt: u32,
}

impl RabbitSettle {
    /// The SDK's delivery of an AMQP one (`None`, after acking it, for a routing key that is
    /// not a pattern: nothing could handle it).
    pub(super) fn delivery(delivery: AmqpDelivery, queue: &Arc<Queue>) -> Option<Delivery> {
        let AmqpDelivery {
            routing_key,
            redelivered,
            properties,
            data,
            acker,
            ..
        } = delivery;
        let Some(message) = convert::envelope(routing_key.as_str(), &properties, data.clone())
        else {
            // Nothing can handle it; kept among the dead letters as it came, never lost.
            tracing::warn!(queue = %queue.queue, key = %routing_key, "a message whose routing key is not a pattern; dead-lettered");
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut table = properties.headers().clone().unwrap_or_default();
                for (name, value) in [
                    (headers::DEAD_REASON, "its routing key names no pattern"),
                    (headers::DEAD_PATTERN, routing_key.as_str()),
                ] {
                    table.insert(
                        name.into(),
                        lapin::types::AMQPValue::LongString(value.into()),
                    );
                }
                let properties = properties.with_headers(table);
                let stored = RabbitBroker::confirmed(
                    &queue.channel,
                    &queue.dead_exchange,
                    &queue.group,
                    &data,
                    properties,
                )
                .await;
                match stored {
                    Ok(()) => acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            });
            return None;
        };
        // A redelivery after a lost consumer counts as one more attempt.
        let attempt = attempt_of(&message.headers) + u32::from(redelivered);
        let reply_to = properties
            .reply_to()
            .as_ref()
            .map(|r| r.as_str().to_owned());
        Some(Delivery {
            attempt,
            reply_to,
            settle: Box::new(RabbitSettle {
                queue: queue.clone(),
                acker,
                message: message.clone(),
                properties,
                attempt,
            }),
            message,
        })
    }

    async fn ack(&self) -> Result<(), BoxError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| Box::new(e) as BoxError)
    }
}

impl Settle for RabbitSettle {
    fn reply(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            if let Some(reply_to) = self.properties.reply_to().as_ref() {
                let mut properties = BasicProperties::default()
                    .with_headers(convert::to_table(&reply.headers))
                    .with_content_type("application/json".into());
                if let Some(id) = self.properties.correlation_id().as_ref() {
                    properties = properties.with_correlation_id(id.clone());
                }
                // To the caller's reply-to address; a caller gone by now is not an error.
                let published = self
                    .queue
                    .channel
                    .basic_publish(
                        "".into(),
                        reply_to.clone(),
                        BasicPublishOptions::default(),
                        &reply.payload,
                        properties,
                    )
                    .await;
                if let Ok(confirm) = published {
                    let _ = confirm.await;
                }
            }
            self.ack().await
        })
    }

    fn ack(self: Box<Self>) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { RabbitSettle::ack(&self).await })
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
            let mut headers = self.message.headers.clone();
            for (name, value) in [
                (headers::DEAD_REASON, reason.as_str()),
                (headers::DEAD_PATTERN, self.message.pattern.as_str()),
            ] {
                let value = HeaderValue::from_str(value)
                    .unwrap_or_else(|_| HeaderValue::from_static("(not printable)"));
                headers.insert(HeaderName::from_static(name), value);
            }
            self.replace(&self.queue.dead_exchange, &self.queue.group, headers)
                .await
        })
    }
}

impl RabbitSettle {
    /// The message again after `delay`, as delivery `attempt`.
    fn again(self: Box<Self>, delay: Duration, attempt: u32) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let mut headers = self.message.headers.clone();
            headers.insert(
                HeaderName::from_static(headers::ATTEMPT),
                HeaderValue::from(attempt),
            );
            self.replace("", &self.queue.queue, headers).await
        })
    }

    /// Publishes a copy of the message with `headers` to `exchange` by `key`, and lets the
    /// original go only once the copy is confirmed: a crash in between duplicates it (the
    /// consumer drops the duplicate by id), it never loses it.
    async fn replace(
        &self,
        exchange: &str,
        key: &str,
        headers: http::HeaderMap,
    ) -> Result<(), BoxError> {
        let properties = self
            .properties
            .clone()
            .with_headers(convert::table_of(&headers, &self.message.pattern));
        RabbitBroker::confirmed(
            &self.queue.channel,
            exchange,
            key,
            &self.message.payload,
            properties,
        )
        .await?;
        self.ack().await
    }
}
