//! Requests over RabbitMQ's direct reply-to: one channel that consumes
//! `amq.rabbitmq.reply-to` (no queue to declare, nothing to clean up) and publishes the
//! requests, each with a correlation id of its own; replies are matched back to their
//! waiting callers by it.

use std::{collections::HashMap, sync::Arc};

use futures_util::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, ConfirmSelectOptions},
    types::FieldTable,
    Channel, Connection,
};
use sdk::BoxError;
use sdk_base::backoff::Reconnect;
use sdk_base::sync::Unpoisoned as _;
use tokio::sync::oneshot;

use super::{
    convert::{from_table, properties},
    RabbitBroker,
};
use crate::{broker::broken, envelope::Kind, Envelope, Reply};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

type Waiting = Arc<std::sync::Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

pub(super) struct Rpc {
    channel: Channel,
    waiting: Waiting,
}

impl Rpc {
    pub(super) async fn new(connection: &Connection) -> Result<Rpc, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                REPLY_TO.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiting: Waiting = Arc::default();
        let replies = waiting.clone();
        let recovering = channel.clone();
        tokio::spawn(async move {
            let mut reconnect = Reconnect::new();
            while let Some(next) = consumer.next().await {
                match next {
                    Ok(delivery) => {
                        reconnect.succeeded();
                        let Some(id) = delivery.properties.correlation_id().as_ref() else {
                            continue;
                        };
                        let Some(waiter) = replies.locked().remove(id.as_str()) else {
                            continue; // its caller gave up
                        };
                        let headers = from_table(delivery.properties.headers().as_ref());
                        let _ = waiter.send(Reply {
                            status: Reply::status_of(&headers),
                            headers,
                            payload: bytes::Bytes::from(delivery.data),
                        });
                    }
                    Err(error) => {
                        if recovering.wait_for_recovery(error).await.is_err() {
                            tokio::time::sleep(reconnect.failed()).await;
                        }
                    }
                }
            }
        });
        Ok(Rpc { channel, waiting })
    }

    /// Publishes `message` to `exchange` and waits for its reply (the caller's deadline
    /// drops this future, and the waiting entry with it).
    pub(super) async fn call(&self, exchange: &str, message: Envelope) -> Result<Reply, BoxError> {
        let properties = properties(&message, Kind::Request);
        let id = crate::envelope::new_id();
        self.call_to(
            exchange,
            message.pattern.as_str(),
            &message.payload,
            properties,
            id,
        )
        .await
    }

    /// Publishes `payload` to `exchange` with `key` and the correlation id `id` (fresh for
    /// each call), and waits for its reply.
    pub(super) async fn call_to(
        &self,
        exchange: &str,
        key: &str,
        payload: &[u8],
        properties: lapin::BasicProperties,
        id: String,
    ) -> Result<Reply, BoxError> {
        let (sender, receiver) = oneshot::channel();
        self.waiting.locked().insert(id.clone(), sender);
        let _forget = Forget {
            waiting: &self.waiting,
            id: &id,
        };
        let properties = properties
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id(id.as_str().into());
        RabbitBroker::confirmed(&self.channel, exchange, key, payload, properties).await?;
        receiver
            .await
            .map_err(|_| broken("the reply channel closed before the reply came"))
    }
}

/// Removes a request's waiting entry however the call ends.
struct Forget<'a> {
    waiting: &'a Waiting,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiting.locked().remove(self.id);
    }
}
