//! The Redis transport (feature `redis`, the `redis` crate's `ConnectionManager`): streams
//! with consumer groups, never pub/sub (which loses whatever is published while a consumer
//! is away).
//!
//! - **Bindings**: each handler of a server has a stream of its own, `<prefix>:ev:<group>:
//!   <pattern>` for events and `<prefix>:rq:<group>:<pattern>` for requests, read by the
//!   consumer group `<group>`, so a service's instances share its messages and each is
//!   handled by one of them. The streams are registered in `<prefix>:bindings` with their
//!   pattern; a sender matches a message against them with the same wildcard rules (`*`,
//!   `#`) every transport uses, and appends it checking that the bindings were not changed
//!   meanwhile (see `routes`).
//! - **`emit`** appends the event to every stream whose pattern matches, in one pipeline
//!   (`XADD` to each, then the bindings' version), and returns once Redis has it. An event
//!   no group is bound for is refused with `NoHealthyInstance { reason: NoResponder }`
//!   rather than dropped. A pipeline cut short is retried whole; the streams that had the
//!   event get it twice, and their consumers drop the second by its id. (`XADD NOMKSTREAM`
//!   needs Redis 6.2 or later.)
//! - **`send`** appends the request to the most specific matching request stream that has a
//!   live consumer (each consumer is a member of the sorted set `<stream>:alive`, its time
//!   on Redis's clock refreshed every 2 s; it leaves the set when its server stops, and
//!   lapses 6 s after a consumer that died), with the connection's reply list; nothing
//!   live answers at once with `NoResponder`. The handler's server pushes the reply to that list; a request whose
//!   caller's deadline passed before it was read is dropped unread.
//! - **Settling**: an entry stays pending in its group until the handler is done; acking
//!   removes it (`XACK` and `XDEL` in one transaction). A failed event is appended again
//!   with `sdk-attempt` one higher after the backoff's delay, in the same transaction as its
//!   ack; one given up on goes to `<prefix>:dead` with the reason and group, the same way.
//!   So a crash in between duplicates a message (dropped by id) and never loses one.
//! - **Dead consumers**: entries a consumer took and did not settle within `ack_wait`
//!   (it was killed, say) are claimed by another consumer of the group, counting the
//!   deliveries.
//! - **Restarts**: the `ConnectionManager` reconnects with jittered exponential backoff;
//!   a consumer that finds its group gone (Redis came back empty) creates the stream, group
//!   and binding again. Messages survive a restart as far as Redis's own persistence keeps
//!   them: with `appendonly yes` and `appendfsync always`, everything acknowledged.
//! - While Redis is away (a ping every 500 ms says so), `send` and `emit` fail at once as
//!   not connected, which the pipeline retries within the deadline.
//! - Redis has no priorities in streams, so urgency travels as a header only, and service
//!   queues (`send_to_service`) are RabbitMQ's.

mod consume;
mod frame;
mod replies;
mod routes;
mod settle;

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    RedisError, Script,
};
use sdk::{retry::ExponentialBackoff, BoxError};

use self::{
    replies::Replies,
    routes::{Keys, Routes},
};
use crate::{
    broker::{broken, no_responder, not_connected, BoxFuture, Deliveries, Subscription},
    envelope::{headers, new_id, Kind},
    Broker, Envelope, MessagingError, RedisSettings, Reply,
};

/// Requests kept per request stream at most (older ones are past every deadline).
const MAX_REQUESTS: usize = 10_000;
/// How long a blocking read waits for entries before it looks around again.
const BLOCK: Duration = Duration::from_secs(1);
/// How often the connection is checked.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How many times a message is routed (the cached bindings, then each time they were found
/// stale, read again) before it fails: requests and events alike.
const ROUTE_TRIES: usize = 4;

/// A Redis connection as a [`Broker`]. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    shared: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    /// Commands (shared, multiplexed); blocking reads each get a connection of their own.
    commands: ConnectionManager,
    keys: Keys,
    settings: RedisSettings,
    routes: ArcSwap<Routes>,
    replies: Arc<Replies>,
    /// This connection's consumer name in every group.
    consumer: String,
    connected: AtomicBool,
    append_request: Script,
    /// Marks a request consumer alive (its script compiled once).
    keep_alive: Script,
    /// The URL with its password hidden, for errors.
    shown_url: String,
}

impl RedisBroker {
    /// Connects to `url` (`redis://host:6379/0`, `rediss://` for TLS; credentials allowed
    /// and never printed).
    pub async fn connect(
        url: &str,
        settings: RedisSettings,
    ) -> Result<RedisBroker, MessagingError> {
        let shown_url = sdk_base::redact_url(url).into_owned();
        let client = redis::Client::open(url).map_err(|e| {
            MessagingError::Config(format!("{shown_url} is not a Redis URL: {}", e.category()))
        })?;
        let cannot = |e: RedisError| {
            MessagingError::Broker(format!("could not connect to {shown_url}: {e}").into())
        };
        let commands = manager(&client, Duration::from_secs(5))
            .await
            .map_err(cannot)?;
        let listener = manager(&client, BLOCK + Duration::from_secs(5))
            .await
            .map_err(cannot)?;
        let keys = Keys::new(&settings.prefix);
        let consumer = new_id();
        let replies = Replies::new(keys.replies(&consumer));
        let shared = Arc::new(Shared {
            client,
            commands,
            routes: ArcSwap::from_pointee(Routes::default()),
            replies: replies.clone(),
            consumer,
            connected: AtomicBool::new(true),
            append_request: routes::append_request(),
            keep_alive: routes::keep_alive(),
            keys,
            settings,
            shown_url,
        });
        tokio::spawn(replies::listen(
            Arc::downgrade(&replies),
            replies.key.clone(),
            listener,
        ));
        tokio::spawn(watch_connection(Arc::downgrade(&shared)));
        Ok(RedisBroker { shared })
    }

    /// A connection of its own, for a consumer's blocking reads.
    async fn blocking_connection(&self) -> Result<ConnectionManager, BoxError> {
        manager(&self.shared.client, BLOCK + Duration::from_secs(5))
            .await
            .map_err(failed)
    }

    fn check_connected(&self) -> Result<(), BoxError> {
        if self.shared.connected.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(not_connected(format!(
                "no connection to Redis at {}",
                self.shared.shown_url
            )))
        }
    }

    /// Reads the bindings again.
    async fn reload(&self) -> Result<Arc<Routes>, BoxError> {
        let keys = &self.shared.keys;
        let (version, bindings): (Option<String>, _) = redis::pipe()
            .atomic()
            .get(keys.version())
            .hgetall(keys.bindings())
            .query_async(&mut self.shared.commands.clone())
            .await
            .map_err(failed)?;
        let routes = Arc::new(Routes::new(keys, version.unwrap_or_default(), bindings));
        self.shared.routes.store(routes.clone());
        Ok(routes)
    }

    /// Appends a request's `frame` to the most specific matching stream with a live
    /// consumer: `Ok(0)` when nothing is bound or alive for it.
    async fn append_request(&self, message: &Envelope, frame: &[u8]) -> Result<i64, BoxError> {
        let shared = &self.shared;
        let mut routes = shared.routes.load_full();
        let mut fresh = false;
        for _ in 0..ROUTE_TRIES {
            let streams = routes.requests(&message.pattern);
            if !streams.is_empty() {
                let mut invocation = shared.append_request.key(shared.keys.version());
                invocation
                    .arg(&routes.version)
                    .arg(frame)
                    .arg(&shared.replies.key)
                    .arg(MAX_REQUESTS)
                    .arg(streams);
                let appended: i64 = invocation
                    .invoke_async(&mut shared.commands.clone())
                    .await
                    .map_err(|e| self.failed(e))?;
                if appended >= 0 {
                    return Ok(appended);
                }
            } else if fresh {
                return Ok(0);
            }
            // Stale (or nothing cached matched): read the bindings and try again.
            routes = self.reload().await?;
            fresh = true;
        }
        Err(bindings_kept_changing())
    }

    /// Appends an event's `frame` to every stream bound for it; how many (`Ok(0)`: none is).
    ///
    /// One pipeline, not a script: `XADD .. NOMKSTREAM` to each stream of the cached routes,
    /// then `GET` of the bindings' version token. Redis runs one connection's commands in
    /// order and a token is never used twice, so a version still the cached one means the
    /// bindings did not change before the appends either; a changed one sends the event to
    /// the streams bound since (those already appended to are not appended to again). A
    /// script (`EVALSHA`) cost Redis twice the CPU of the plain appends and capped a
    /// connection at a third of the raw `XADD` rate. `NOMKSTREAM`: a stream gone (Redis came
    /// back empty) is not made again without its group, so an event is never stored where
    /// it is counted as refused.
    async fn append_event(&self, message: &Envelope, frame: &[u8]) -> Result<i64, BoxError> {
        let shared = &self.shared;
        let mut routes = shared.routes.load_full();
        let mut appended: Vec<String> = Vec::new();
        let mut fresh = false;
        for _ in 0..ROUTE_TRIES {
            let mut streams = routes.events(&message.pattern);
            streams.retain(|stream| !appended.iter().any(|done| done == stream));
            if streams.is_empty() {
                if fresh {
                    return Ok(i64::try_from(appended.len()).unwrap_or(i64::MAX));
                }
            } else {
                let mut pipe = redis::Pipeline::with_capacity(streams.len() + 1);
                for stream in &streams {
                    // Sized for its arguments: the frame is copied in once, not regrown.
                    let mut xadd = redis::Cmd::with_capacity(6, 20 + stream.len() + frame.len());
                    xadd.arg("XADD")
                        .arg(stream)
                        .arg("NOMKSTREAM")
                        .arg("*")
                        .arg("m")
                        .arg(frame);
                    pipe.add_command(xadd);
                }
                pipe.get(shared.keys.version());
                let mut answers: Vec<Option<String>> = pipe
                    .query_async(&mut shared.commands.clone())
                    .await
                    .map_err(|e| self.failed(e))?;
                let version = answers.pop().flatten().unwrap_or_default();
                if version == routes.version {
                    let count = appended.len() + answers.iter().flatten().count();
                    return Ok(i64::try_from(count).unwrap_or(i64::MAX));
                }
                for (stream, id) in streams.iter().zip(answers) {
                    if id.is_some() {
                        appended.push((*stream).to_owned());
                    }
                }
            }
            // Stale (or nothing cached matched): read the bindings and go on.
            routes = self.reload().await?;
            fresh = true;
        }
        Err(bindings_kept_changing())
    }

    fn failed(&self, error: RedisError) -> BoxError {
        if error.is_io_error() || error.is_connection_dropped() {
            self.shared.connected.store(false, Ordering::Release);
        }
        failed(error)
    }
}

/// The error for a message whose routes were stale [`ROUTE_TRIES`] times in a row.
fn bindings_kept_changing() -> BoxError {
    broken("the bindings kept changing while a message was routed")
}

/// A command sized for its arguments up front: `redis::cmd` grows its two buffers argument by
/// argument (~40 allocations a request's round trip, issue 33). `args` and `bytes` count
/// the arguments after the name.
pub(super) fn command(name: &'static str, args: usize, bytes: usize) -> redis::Cmd {
    let mut command = redis::Cmd::with_capacity(args + 1, name.len() + bytes);
    command.arg(name);
    command
}

/// A broker error for a Redis one: nothing was sent if the connection was refused.
/// What a Redis error means to the pipeline: nothing sent (a refused connection, safe to
/// retry) or maybe sent. Every Redis wire decides it here.
pub(crate) fn failed(error: RedisError) -> BoxError {
    if error.is_connection_refusal() {
        not_connected(error)
    } else {
        broken(error)
    }
}

pub(crate) async fn manager(
    client: &redis::Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, RedisError> {
    // The SDK's reconnect shape (its first and longest step; the manager jitters); a few
    // tries per reconnection, so a command waits seconds rather than forever, and the
    // next command starts another.
    let reconnect = ExponentialBackoff::reconnect();
    let config = ConnectionManagerConfig::new()
        .set_min_delay(reconnect.step(1))
        .set_max_delay(reconnect.step(u32::MAX))
        .set_number_of_retries(4)
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(response_timeout));
    ConnectionManager::new_with_config(client.clone(), config).await
}

/// Pings every 500 ms while the broker is used, so `is_connected` (and a send's fail-fast)
/// follows the connection.
async fn watch_connection(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut connection = shared.commands.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        let up = matches!(
            tokio::time::timeout(Duration::from_secs(1), ping).await,
            Ok(Ok(_))
        );
        if shared.connected.swap(up, Ordering::AcqRel) != up {
            tracing::info!(connected = up, url = %shared.shown_url, "redis connection");
        }
    }
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &self.shared.shown_url)
            .field("connected", &self.shared.connected.load(Ordering::Relaxed))
            .field("settings", &self.shared.settings)
            .finish()
    }
}

/// The message's own id (drawn if the sender set none) and its pattern, as headers.
/// Gives a message without an id (one the SDK's client did not build) a new one.
fn ensure_id(message: &mut Envelope) {
    if message.id().is_empty() {
        message
            .headers
            .insert(headers::MESSAGE_ID_NAME, crate::envelope::new_id_value());
    }
}

/// A message as the value a stream entry carries, with its pattern as a header (a stream is
/// read for every pattern its binding's wildcard matches).
fn entry_frame(message: &Envelope) -> Vec<u8> {
    frame::encode(
        &message.headers,
        &[(headers::PATTERN, message.pattern.as_str())],
        &message.payload,
    )
}

impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn request(&self, mut message: Envelope) -> BoxFuture<Result<Reply, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_connected()?;
            ensure_id(&mut message);
            let waiting = this.shared.replies.wait(message.id());
            let frame = entry_frame(&message);
            if this.append_request(&message, &frame).await? == 0 {
                return Err(no_responder());
            }
            // The pipeline's deadline bounds the wait (dropping `waiting` forgets it).
            let mut waiting = waiting;
            (&mut waiting.reply)
                .await
                .map_err(|_| broken("the connection's reply listener stopped"))
        })
    }

    fn publish(&self, mut message: Envelope) -> BoxFuture<Result<(), BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            this.check_connected()?;
            ensure_id(&mut message);
            let frame = entry_frame(&message);
            match this.append_event(&message, &frame).await? {
                0 => Err(no_responder()),
                _ => Ok(()),
            }
        })
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<Result<Deliveries, BoxError>> {
        let this = self.clone();
        Box::pin(async move {
            match subscription.kind {
                Kind::Queue => Err(crate::broker::unsupported("redis", "service queues")),
                _ => consume::start(this, subscription).await,
            }
        })
    }

    fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }
}
