//! NestJS's format over core NATS as a [`Broker`]: the subject is the pattern, requests
//! and replies are NestJS packets (see [`nestjs`](super::nestjs)), this SDK's headers travel
//! as NATS headers (NestJS ignores them; a Rust handler keeps the caller's deadline and
//! trace).
//!
//! - **`send`** is a NATS request with a fresh inbox; with nothing subscribed NATS answers
//!   "no responders" and the call fails at once with `NoResponder`. A NestJS handler that
//!   answers with a stream sends several packets; the first one is the answer.
//! - **`emit`** is a core publish, flushed to the server: at most once (no JetStream here,
//!   as NestJS reads none), and NATS cannot say whether anyone listened.
//! - A server's handlers subscribe in queue groups, so a service's instances share the
//!   work: `<group>` for requests and `<group>.events` for events (NestJS puts both kinds
//!   on one subject; the two groups keep a request from going to an event handler).

use std::{fmt, sync::Arc};

use async_nats::{connection::State, RequestErrorKind};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use sdk::BoxError;
use tokio::sync::mpsc;

use super::{nestjs::NestJs, Answer, Codec, Raw, RequestSettle};
use crate::{
    broker::{broken, no_responder, not_connected, BoxFuture, Deliveries},
    envelope::new_id,
    nats::{from_nats, to_nats},
    Broker, Envelope, Kind, MessagingError, Reply, Subscription,
};

/// Messages a handler's reader holds before NATS's own buffer fills (core NATS then drops
/// the slow consumer's messages).
const HANDLER_BUFFER: usize = 1_000;

/// NestJS over NATS. Cheap to clone.
#[derive(Clone)]
pub(crate) struct NestNatsBroker {
    client: async_nats::Client,
    codec: Arc<NestJs>,
}

impl NestNatsBroker {
    /// Connects to the NATS server at `url` as the SDK's own NATS transport does.
    pub(crate) async fn connect(url: &str) -> Result<NestNatsBroker, MessagingError> {
        let client = crate::nats::connect_client(url).await?;
        Ok(NestNatsBroker {
            client,
            codec: Arc::new(NestJs),
        })
    }

    fn check_connected(&self) -> Result<(), BoxError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(not_connected(format!("the NATS connection is {state:?}"))),
        }
    }

    async fn request_once(&self, message: Envelope) -> Result<Reply, BoxError> {
        self.check_connected()?;
        let pattern = message.pattern.as_str();
        let id = new_id();
        let request = async_nats::Request::new()
            .headers(to_nats(&message.headers, false))
            .payload(Bytes::from(self.codec.request(
                pattern,
                &id,
                &message.payload,
            )))
            // The pipeline's deadline bounds the wait.
            .timeout(None);
        let answer = match self.client.send_request(pattern.to_owned(), request).await {
            Ok(answer) => answer,
            Err(e) if e.kind() == RequestErrorKind::NoResponders => return Err(no_responder()),
            Err(e) => return Err(broken(e)),
        };
        super::nestjs::answer(&answer.payload, pattern)
    }
}

impl fmt::Debug for NestNatsBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NestNatsBroker")
            .field("state", &self.client.connection_state())
            .finish()
    }
}

impl Broker for NestNatsBroker {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn request(&self, message: Envelope) -> BoxFuture<Result<Reply, BoxError>> {
        let this = self.clone();
        Box::pin(async move { this.request_once(message).await })
    }

    fn publish(&self, message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_connected()?;
            let pattern = message.pattern.as_str();
            let event = this.codec.event(pattern, &message.payload);
            this.client
                .publish_with_headers(
                    pattern.to_owned(),
                    to_nats(&message.headers, false),
                    Bytes::from(event),
                )
                .await
                .map_err(broken)?;
            this.client.flush().await.map_err(broken)
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            let queue = match subscription.kind {
                Kind::Request => subscription.group.clone(),
                Kind::Event => format!("{}.events", subscription.group),
                Kind::Queue => return Err(crate::broker::unsupported("nestjs", "service queues")),
            };
            let (sender, receiver) = mpsc::channel(HANDLER_BUFFER);
            for subject in subscription.pattern.nats_subjects("") {
                let subscriber = this
                    .client
                    .queue_subscribe(subject, queue.clone())
                    .await
                    .map_err(|e| Box::new(e) as BoxError)?;
                tokio::spawn(forward(subscriber, sender.clone()));
            }
            let kind = subscription.kind;
            let deliveries = stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|raw| (raw, receiver))
            })
            .filter_map(move |raw| {
                let client = this.client.clone();
                let codec = this.codec.clone();
                let delivery = super::delivery(&*this.codec, kind, raw, &sender, |id, raw| {
                    Box::new(RequestSettle(Box::new(NatsAnswer {
                        client,
                        codec,
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
        self.client.connection_state() == State::Connected
    }

    fn flush(&self) -> BoxFuture<()> {
        let client = self.client.clone();
        Box::pin(async move {
            if let Err(e) = client.flush().await {
                tracing::debug!(error = %e, "nats flush");
            }
        })
    }
}

/// Hands what a NATS subscriber reads to a handler's reader, until either ends.
async fn forward(mut subscriber: async_nats::Subscriber, sender: mpsc::Sender<Raw>) {
    while let Some(message) = subscriber.next().await {
        let headers = message.headers.as_ref().map(from_nats).unwrap_or_default();
        let raw = Raw::new(
            message.subject.to_string(),
            message.reply.as_ref().map(ToString::to_string),
            headers,
            message.payload,
        );
        if sender.send(raw).await.is_err() {
            return;
        }
    }
}

/// Where a request read from NATS is answered: its inbox.
struct NatsAnswer {
    client: async_nats::Client,
    codec: Arc<NestJs>,
    reply_to: Option<String>,
    id: String,
}

impl Answer for NatsAnswer {
    fn answer(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let Some(reply_to) = self.reply_to else {
                return Ok(()); // published without an inbox: nobody waits
            };
            let packet = Bytes::from(self.codec.reply(&self.id, &reply));
            self.client
                .publish(reply_to, packet)
                .await
                .map_err(|e| Box::new(e) as BoxError)
        })
    }
}
