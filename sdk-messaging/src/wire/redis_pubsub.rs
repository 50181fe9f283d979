//! Redis pub/sub as a [`Broker`], for the foreign formats that use it (NestJS's and
//! Ascender's): each message is `PUBLISH`ed on its pattern, read by whoever is subscribed
//! at that moment, kept by nobody.
//!
//! - One subscriber connection per broker, restored after a drop with the SDK's reconnect
//!   backoff, every channel and glob subscribed again. Routes say which local reader each
//!   message goes to: a server's handler, or the replies of this side's requests.
//! - **`send`** subscribes (once, and awaits Redis's confirmation) to the channels the
//!   format answers on, then publishes the request with a fresh id per attempt and waits for
//!   the packets with that id. `PUBLISH` says how many subscribers got it: none (besides
//!   this side's own reply subscription) fails at once with `NoResponder`.
//! - **`emit`** publishes the event; none listening is `NoResponder` as well.
//! - A handler with wildcards subscribes to a glob covering its pattern (its literal
//!   prefix, then `*`), and the SDK's own matching decides (`*` is one token, `#` any).
//! - Pub/sub has no acknowledgement and no groups: a failed event is delivered again
//!   in-process after the backoff's delay (lost if the process stops), one given up on is
//!   logged; every instance subscribed gets every message.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::HeaderMap;
use redis::aio::{ConnectionManager, PubSubSink};
use sdk::BoxError;
use sdk_base::{backoff::Reconnect, sync::Unpoisoned as _};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{Answer, Codec, Raw, ReplyBody, RequestSettle};
use crate::{
    broker::{no_responder, not_connected, BoxFuture, Deliveries},
    envelope::new_id,
    redis::failed,
    Broker, Envelope, Kind, MessagingError, Pattern, Reply, Subscription,
};

/// Messages a handler's reader may hold before the next ones are dropped (pub/sub has no
/// flow control: Redis would buffer them, and cut off a reader that falls far behind).
const HANDLER_BUFFER: usize = 10_000;

/// What a subscription is to Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Channel(String),
    Glob(String),
}

/// Where the messages of a route go.
#[derive(Clone)]
enum Target {
    Replies,
    Handler(mpsc::Sender<Raw>),
}

#[derive(Default)]
struct State {
    routes: Vec<(Key, Target)>,
    /// The live connection's sink, to subscribe with; `None` while it is down.
    sink: Option<PubSubSink>,
}

struct Shared {
    codec: Arc<dyn Codec>,
    commands: ConnectionManager,
    state: Mutex<State>,
    /// The requests waiting for packets, by id.
    pending: Mutex<HashMap<String, mpsc::UnboundedSender<ReplyBody>>>,
    /// The reply channels subscribed to so far.
    reply_channels: Mutex<HashSet<String>>,
    connected: AtomicBool,
    shown_url: String,
}

/// Redis pub/sub speaking a foreign format. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PubSubBroker {
    shared: Arc<Shared>,
    _listener: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PubSubBroker {
    /// Connects to the Redis at `url`, speaking `codec`.
    pub(crate) async fn connect(
        url: &str,
        codec: Arc<dyn Codec>,
    ) -> Result<PubSubBroker, MessagingError> {
        let shown_url = sdk_base::redact_url(url).into_owned();
        let client = redis::Client::open(url).map_err(|e| {
            MessagingError::Config(format!("{shown_url} is not a Redis URL: {}", e.category()))
        })?;
        let commands = crate::redis::manager(&client, Duration::from_secs(5))
            .await
            .map_err(|e| {
                MessagingError::Broker(format!("could not connect to {shown_url}: {e}").into())
            })?;
        let shared = Arc::new(Shared {
            codec,
            commands,
            state: Mutex::default(),
            pending: Mutex::default(),
            reply_channels: Mutex::default(),
            connected: AtomicBool::new(false),
            shown_url,
        });
        let listener = tokio::spawn(listen(client, Arc::downgrade(&shared)));
        Ok(PubSubBroker {
            shared,
            _listener: Arc::new(AbortOnDrop(listener)),
        })
    }

    fn check_connected(&self) -> Result<(), BoxError> {
        if self.shared.connected.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(not_connected(format!(
                "no pub/sub connection to Redis at {}",
                self.shared.shown_url
            )))
        }
    }

    /// Adds a route, subscribing its key now when the connection is up (else the listener
    /// subscribes it when it connects).
    async fn route(&self, key: Key, target: Target) -> Result<(), BoxError> {
        let sink = {
            let mut state = self.shared.state.locked();
            state.routes.push((key.clone(), target));
            state.sink.clone()
        };
        match sink {
            Some(mut sink) => subscribe(&mut sink, &key).await.map_err(failed),
            None => Ok(()),
        }
    }

    /// Subscribes to the channels replies to `pattern` come on, once each.
    async fn await_replies_on(&self, pattern: &str) -> Result<(), BoxError> {
        for channel in self.shared.codec.reply_channels(pattern) {
            if self
                .shared
                .reply_channels
                .locked()
                .contains(channel.as_ref())
            {
                continue;
            }
            self.route(Key::Channel(channel.to_string()), Target::Replies)
                .await?;
            self.shared
                .reply_channels
                .locked()
                .insert(channel.into_owned());
        }
        Ok(())
    }

    /// Publishes `payload` on `channel`: how many subscribers other than this side's own
    /// reply subscription got it.
    async fn publish_to(&self, channel: &str, payload: Vec<u8>) -> Result<i64, BoxError> {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut self.shared.commands.clone())
            .await
            .map_err(failed)?;
        let own =
            self.shared.reply_channels.locked().contains(channel) && !self.handles_channel(channel);
        Ok(receivers - i64::from(own))
    }

    fn handles_channel(&self, channel: &str) -> bool {
        self.shared
            .state
            .locked()
            .routes
            .iter()
            .any(|(key, target)| {
                matches!(target, Target::Handler(_))
                    && matches!(key, Key::Channel(handled) if handled == channel)
            })
    }

    async fn request_once(&self, message: Envelope) -> Result<Reply, BoxError> {
        self.check_connected()?;
        let pattern = message.pattern.as_str();
        self.await_replies_on(pattern).await?;
        let id = new_id();
        let (sender, mut packets) = mpsc::unbounded_channel();
        self.shared.pending.locked().insert(id.clone(), sender);
        let _waiting = Waiting {
            shared: &self.shared,
            id: &id,
        };
        let request = self.shared.codec.request(pattern, &id, &message.payload);
        if self.publish_to(pattern, request).await? <= 0 {
            return Err(no_responder());
        }
        let mut answer = None;
        // The pipeline's deadline bounds the wait: it drops this future.
        while let Some(body) = packets.recv().await {
            match body {
                ReplyBody::Answer { reply, last: true } => return Ok(reply),
                ReplyBody::Answer { reply, last: false } => answer = Some(reply),
                ReplyBody::Done => break,
                ReplyBody::KeepWaiting => {}
            }
        }
        Ok(answer.unwrap_or_else(|| Reply::new(http::StatusCode::OK, Bytes::from_static(b"null"))))
    }
}

/// Takes a request's id out of the pending map however its wait ends.
struct Waiting<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.pending.locked().remove(self.id);
    }
}

impl fmt::Debug for PubSubBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubBroker")
            .field("wire", &self.shared.codec.name())
            .field("url", &self.shared.shown_url)
            .field("connected", &self.shared.connected.load(Ordering::Relaxed))
            .finish()
    }
}

impl Broker for PubSubBroker {
    fn name(&self) -> &'static str {
        "redis"
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
            let event = this.shared.codec.event(pattern, &message.payload);
            if this.publish_to(pattern, event).await? <= 0 {
                return Err(no_responder());
            }
            Ok(())
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            if subscription.kind == Kind::Queue {
                return Err(crate::broker::unsupported(
                    this.shared.codec.name(),
                    "service queues",
                ));
            }
            let (sender, receiver) = mpsc::channel(HANDLER_BUFFER);
            this.route(
                key_of(&subscription.pattern),
                Target::Handler(sender.clone()),
            )
            .await?;
            let kind = subscription.kind;
            let pattern = subscription.pattern;
            let deliveries = stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|raw| (raw, receiver))
            })
            .filter_map(move |raw| {
                let delivery = pattern.matches(&raw.channel).then(|| {
                    let broker = this.clone();
                    super::delivery(&*this.shared.codec, kind, raw, &sender, move |id, raw| {
                        Box::new(RequestSettle(Box::new(PubSubAnswer {
                            broker,
                            channel: raw.channel.clone(),
                            id,
                        })))
                    })
                });
                let delivery = delivery.flatten();
                async move { delivery }
            });
            Ok(Box::pin(deliveries) as Deliveries)
        })
    }

    fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }
}

/// The Redis subscription that covers `pattern`: the pattern itself as a channel, or, with
/// wildcards, its literal prefix followed by `*` (glob characters in it escaped).
fn key_of(pattern: &Pattern) -> Key {
    if !pattern.has_wildcard() {
        return Key::Channel(pattern.as_str().to_owned());
    }
    let mut glob = String::new();
    for (index, token) in pattern.as_str().split('.').enumerate() {
        if token == "*" || token == "#" {
            break;
        }
        if index > 0 {
            glob.push('.');
        }
        for c in token.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                glob.push('\\');
            }
            glob.push(c);
        }
    }
    // `orders*`, not `orders.*`: `orders.#` matches `orders` itself.
    glob.push('*');
    Key::Glob(glob)
}

async fn subscribe(sink: &mut PubSubSink, key: &Key) -> redis::RedisResult<()> {
    match key {
        Key::Channel(channel) => sink.subscribe(channel).await,
        Key::Glob(glob) => sink.psubscribe(glob).await,
    }
}

/// Keeps the subscriber connection up while the broker lives, and hands each message to its
/// routes.
async fn listen(client: redis::Client, shared: std::sync::Weak<Shared>) {
    let mut reconnect = Reconnect::new();
    loop {
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                let (mut sink, mut messages) = pubsub.split();
                let keys: HashSet<Key> = {
                    let mut state = strong.state.locked();
                    state.sink = Some(sink.clone());
                    state.routes.iter().map(|(key, _)| key.clone()).collect()
                };
                let mut subscribed = true;
                for key in &keys {
                    if let Err(e) = subscribe(&mut sink, key).await {
                        tracing::warn!(error = %e, "redis pub/sub: could not subscribe");
                        subscribed = false;
                        break;
                    }
                }
                if subscribed {
                    reconnect.succeeded();
                    strong.connected.store(true, Ordering::Release);
                    drop(strong);
                    while let Some(message) = messages.next().await {
                        let Some(strong) = shared.upgrade() else {
                            return;
                        };
                        dispatch(&strong, &message);
                    }
                }
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                strong.connected.store(false, Ordering::Release);
                strong.state.locked().sink = None;
                tracing::info!(url = %strong.shown_url, "redis pub/sub connection lost; reconnecting");
            }
            Err(e) => tracing::debug!(error = %e, "redis pub/sub: could not connect"),
        }
        tokio::time::sleep(reconnect.failed()).await;
    }
}

/// Hands one message to the routes whose key it came by.
fn dispatch(shared: &Shared, message: &redis::Msg) {
    let channel = message.get_channel_name();
    let key = match message.get_pattern::<Option<String>>() {
        Ok(Some(glob)) => Key::Glob(glob),
        _ => Key::Channel(channel.to_owned()),
    };
    let payload = Bytes::copy_from_slice(message.get_payload_bytes());
    let targets: Vec<Target> = shared
        .state
        .locked()
        .routes
        .iter()
        .filter(|(route, _)| *route == key)
        .map(|(_, target)| target.clone())
        .collect();
    let mut replies_done = false;
    for target in targets {
        match target {
            Target::Replies if !replies_done => {
                replies_done = true;
                let Some(packet) = shared.codec.reply_packet(&payload) else {
                    continue;
                };
                if let Some(waiting) = shared.pending.locked().get(&packet.id) {
                    let _ = waiting.send(packet.body);
                }
            }
            Target::Replies => {}
            Target::Handler(sender) => {
                let raw = Raw::new(channel.to_owned(), None, HeaderMap::new(), payload.clone());
                if sender.try_send(raw).is_err() {
                    tracing::warn!(%channel, "a handler is too far behind; dropping a message");
                }
            }
        }
    }
}

/// Where a request read from pub/sub is answered.
struct PubSubAnswer {
    broker: PubSubBroker,
    channel: String,
    id: String,
}

impl Answer for PubSubAnswer {
    fn answer(self: Box<Self>, reply: Reply) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let codec = &self.broker.shared.codec;
            let channel = codec.reply_channel(&self.channel, &reply).into_owned();
            let packet = codec.reply(&self.id, &reply);
            self.broker.publish_to(&channel, packet).await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pattern: &str) -> Key {
        key_of(&Pattern::handler(pattern).expect("as written"))
    }

    #[test]
    fn a_handlers_pattern_is_covered_by_its_subscription() {
        assert_eq!(key("orders.created"), Key::Channel("orders.created".into()));
        assert_eq!(key("orders.*"), Key::Glob("orders*".into()));
        assert_eq!(key("orders.*.created"), Key::Glob("orders*".into()));
        assert_eq!(key("a.b.#"), Key::Glob("a.b*".into()));
        assert_eq!(key("#"), Key::Glob("*".into()));
    }
}
