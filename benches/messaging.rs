//! Messaging: the SDK's `send` (round trip, 128-byte payload, 1 and 64 callers) and `emit`
//! (throughput, 64 at once) against each broker's raw client in the same run: async-nats
//! `request` and a JetStream publish awaiting its ack; lapin over direct reply-to and a
//! confirmed persistent publish; redis with a stream, a consumer group and a reply list,
//! and `XADD`; and NestJS's wire over NATS against async-nats carrying NestJS's packets
//! (`foreign`). Transports whose broker is not on this machine are left out.

mod foreign;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
    BasicProperties, ExchangeKind,
};
use redis::AsyncCommands;
use sdk_messaging::{
    MessageContext, Messaging, MessagingConfig, NatsSettings, RabbitSettings, RedisSettings,
    RunningServer, TransportKind,
};
use tokio::sync::oneshot;

pub(crate) type Op = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One transport's measurements: (SDK, raw) each.
pub(crate) struct Row {
    pub(crate) transport: &'static str,
    /// What `ops` and the `instructions` binary call it: `nats`, `nestjs-nats`...
    #[allow(dead_code)] // read by the suite, not the instructions binary
    pub(crate) key: &'static str,
    pub(crate) one: (Vec<Duration>, Vec<Duration>),
    pub(crate) many: (Vec<Duration>, Vec<Duration>),
    pub(crate) emits_per_second: (f64, f64),
    /// The raw publish carrying and routed like the SDK's (its message id and trace
    /// context; on RabbitMQ also a topic exchange, a priority queue and `mandatory`): what
    /// the broker charges for the features the SDK gives, without the SDK.
    pub(crate) emits_alike: Option<f64>,
    /// One caller's raw round trips carrying the SDK's request headers (message id,
    /// `traceparent`, deadline) and routed as the SDK's are (RabbitMQ: a topic exchange,
    /// `mandatory` with the confirm awaited, the deadline as the TTL; Redis: the same check
    /// of routes and live consumers, by script), interleaved with the others.
    pub(crate) one_alike: Option<Vec<Duration>>,
}

impl Row {
    /// One line: p50/p99 of each against the raw client, and emits per second.
    #[allow(dead_code)] // used by the instructions binary, not the suite
    pub(crate) fn summary(&self) -> String {
        let at = |v: &[Duration], p: f64| crate::common::percentile(v, p).as_secs_f64() * 1e6;
        let ratio = |(sdk, raw): &(Vec<Duration>, Vec<Duration>), p: f64| {
            format!(
                "{:.0}/{:.0} µs = {:.2}x",
                at(sdk, p),
                at(raw, p),
                at(sdk, p) / at(raw, p)
            )
        };
        let send_alike = self.one_alike.as_ref().map_or(String::new(), |v| {
            format!(
                " (raw alike p50 {:.0} µs = {:.2}x)",
                at(v, 0.5),
                at(&self.one.0, 0.5) / at(v, 0.5)
            )
        });
        let alike = self.emits_alike.map_or(String::new(), |w| {
            format!(
                " (raw alike {w:.0}/s = {:.2}x)",
                self.emits_per_second.0 / w
            )
        });
        format!(
            "{}: 1 caller p50 {}{send_alike}, p99 {}; 64 callers p50 {}, p99 {}; emit {:.0}/s vs {:.0}/s = {:.2}x{alike}",
            self.transport,
            ratio(&self.one, 0.5),
            ratio(&self.one, 0.99),
            ratio(&self.many, 0.5),
            ratio(&self.many, 0.99),
            self.emits_per_second.0,
            self.emits_per_second.1,
            self.emits_per_second.0 / self.emits_per_second.1
        )
    }
}

pub(crate) struct Ops {
    transport: &'static str,
    key: &'static str,
    sdk_send: Op,
    raw_send: Op,
    sdk_emit: Op,
    raw_emit: Op,
    /// The raw publish carrying and routed like the SDK's (see [`Row::emits_alike`]).
    raw_emit_alike: Option<Op>,
    /// The raw request carrying the SDK's request headers (see [`Row::one_alike`]).
    raw_send_alike: Option<Op>,
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

/// The trace context a raw publish alike the SDK's carries.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// 128 bytes of JSON: the payload of every message here.
fn payload() -> serde_json::Value {
    serde_json::json!({ "data": "x".repeat(117) })
}

fn raw_payload() -> Vec<u8> {
    serde_json::to_vec(&payload()).unwrap_or_default()
}

fn op<F, Fut>(f: F) -> Op
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

fn id() -> String {
    format!("{}x{}", std::process::id(), fastrand::u32(..))
}

/// Starts an echo handler and an event handler for `ns` on `messaging`; the event server is
/// stopped again so emits are stored (bound) but not consumed while measured.
async fn sdk_ops(messaging: &Messaging, ns: &str) -> (Op, Op, RunningServer) {
    let server = messaging
        .server("bench")
        .message_pattern(
            &format!("{ns}.echo"),
            |p: serde_json::Value, _: MessageContext| async move { Ok(p) },
        )
        .start()
        .await
        .expect("echo server");
    messaging
        .server("bench-events")
        .event_pattern(
            &format!("{ns}.placed"),
            |_: serde_json::Value, _: MessageContext| async { Ok(()) },
        )
        .start()
        .await
        .expect("event server")
        .shutdown()
        .await;
    let (client, pattern) = (messaging.client(), format!("{ns}.echo"));
    let send = op(move || {
        let (client, pattern) = (client.clone(), pattern.clone());
        async move {
            let _: serde_json::Value = client.send(&pattern, &payload()).await.expect("sdk send");
        }
    });
    let (client, pattern) = (messaging.client(), format!("{ns}.placed"));
    let emit = op(move || {
        let (client, pattern) = (client.clone(), pattern.clone());
        async move { client.emit(&pattern, &payload()).await.expect("sdk emit") }
    });
    (send, emit, server)
}

/// What every SDK message over NATS carries: a fresh message id and a `traceparent`.
fn nats_alike_headers() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    let id = format!("{:032x}", fastrand::u128(..));
    headers.insert(sdk_messaging::headers::MESSAGE_ID, id.as_str());
    headers.insert("traceparent", TRACEPARENT);
    headers
}

/// The raw request, and the same carrying what the SDK's does, to a raw responder.
async fn nats_raw_sends(raw: &async_nats::Client, id: &str) -> (Op, Op) {
    let mut responder = raw
        .queue_subscribe(format!("raw{id}.echo"), "raw".into())
        .await
        .expect("subscribe");
    let replier = raw.clone();
    tokio::spawn(async move {
        while let Some(message) = responder.next().await {
            if let Some(reply) = message.reply {
                let _ = replier.publish(reply, message.payload).await;
            }
        }
    });
    // The same request carrying what the SDK's does: a message id, a `traceparent` and the
    // caller's deadline.
    let (client, subject) = (raw.clone(), format!("raw{id}.echo"));
    let raw_send_alike = op(move || {
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            let mut headers = nats_alike_headers();
            headers.insert(sdk::deadline::DEADLINE_HEADER.as_str(), "10000");
            client
                .request_with_headers(subject, headers, raw_payload().into())
                .await
                .expect("raw request");
        }
    });
    let (client, subject) = (raw.clone(), format!("raw{id}.echo"));
    let raw_send = op(move || {
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            client
                .request(subject, raw_payload().into())
                .await
                .expect("raw request");
        }
    });
    (raw_send, raw_send_alike)
}

/// The raw JetStream publish, and the same carrying what the SDK's does; the cleanup
/// deletes the streams of the run.
async fn nats_raw_emits(raw: &async_nats::Client, id: String) -> (Op, Op, Cleanup) {
    let jetstream = async_nats::jetstream::new(raw.clone());
    let stream = format!("BENCHRAW_{id}");
    jetstream
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("rawev{id}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("stream");
    let (js, subject) = (jetstream.clone(), format!("rawev{id}.placed"));
    let raw_emit = op(move || {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            js.publish(subject, raw_payload().into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    });
    // The same publish carrying what the SDK's does: the message id and a `traceparent`.
    let (js, subject) = (jetstream.clone(), format!("rawev{id}.placed"));
    let raw_emit_alike = op(move || {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            let headers = nats_alike_headers();
            js.publish_with_headers(subject, headers, raw_payload().into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    });
    let cleanup = Cleanup(Some(Box::new(move || {
        let (jetstream, id) = (jetstream.clone(), id.clone());
        Box::pin(async move {
            for name in [
                format!("BENCH_{id}"),
                format!("BENCH_DEAD_{id}"),
                format!("BENCHRAW_{id}"),
            ] {
                let _ = jetstream.delete_stream(&name).await;
            }
        })
    })));
    (raw_emit, raw_emit_alike, cleanup)
}

async fn nats() -> Option<Ops> {
    if !reachable("127.0.0.1:4222").await {
        return None;
    }
    let id = id();
    let settings = NatsSettings::new().streams(
        &format!("BENCH_{id}"),
        &format!("bev{id}"),
        &format!("BENCH_DEAD_{id}"),
        &format!("bdead{id}"),
    );
    let config = MessagingConfig::new(TransportKind::Nats, "nats://127.0.0.1:4222").nats(settings);
    let messaging = Messaging::connect("bench", &config).await.expect("nats");
    let ns = format!("b{id}");
    let (sdk_send, sdk_emit, server) = sdk_ops(&messaging, &ns).await;

    let raw = async_nats::connect("127.0.0.1:4222").await.expect("nats");
    let (raw_send, raw_send_alike) = nats_raw_sends(&raw, &id).await;
    let (raw_emit, raw_emit_alike, cleanup) = nats_raw_emits(&raw, id).await;
    Some(Ops {
        transport: "NATS",
        key: "nats",
        sdk_send,
        raw_send,
        sdk_emit,
        raw_emit,
        raw_emit_alike: Some(raw_emit_alike),
        raw_send_alike: Some(raw_send_alike),
        _keep: vec![Box::new(messaging), Box::new(server), Box::new(cleanup)],
    })
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;

async fn rabbitmq() -> Option<Ops> {
    const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    if !reachable("127.0.0.1:5672").await {
        return None;
    }
    let id = id();
    let settings = RabbitSettings::new()
        .exchanges("sdk-bench.requests", "sdk-bench.events", "sdk-bench.dead")
        .queue_expires(Duration::from_secs(60));
    let config = MessagingConfig::new(TransportKind::RabbitMq, AMQP).rabbitmq(settings);
    let messaging = Messaging::connect("bench", &config)
        .await
        .expect("rabbitmq");
    let ns = format!("b{id}");
    let (sdk_send, sdk_emit, server) = sdk_ops(&messaging, &ns).await;

    let connection = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let expires = {
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(60_000));
        args
    };
    let queue = format!("bench.raw.{id}");
    rabbitmq_responder(&connection, &queue, expires.clone()).await;
    let raw_send_alike = rabbitmq_raw_send_alike(&connection, &queue, &id).await;
    let raw_send = rabbitmq_raw_send(&connection, queue).await;
    let raw_emit = rabbitmq_raw_emit(&connection, &id, expires).await;
    let raw_emit_alike = rabbitmq_alike(&connection, &id).await;
    Some(Ops {
        transport: "RabbitMQ",
        key: "rabbitmq",
        sdk_send,
        raw_send,
        sdk_emit,
        raw_emit,
        raw_emit_alike: Some(raw_emit_alike),
        raw_send_alike: Some(raw_send_alike),
        _keep: vec![Box::new(messaging), Box::new(server), Box::new(connection)],
    })
}

/// A durable queue's declaration.
const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// The raw responder: a queue of its own, answering to each request's reply-to.
async fn rabbitmq_responder(connection: &lapin::Connection, queue: &str, expires: FieldTable) {
    let serving = connection.create_channel().await.expect("channel");
    serving
        .queue_declare(queue.into(), DURABLE, expires)
        .await
        .expect("queue");
    let mut requests = serving
        .basic_consume(
            queue.into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = requests.next().await {
            if let Some(reply_to) = delivery.properties.reply_to().clone() {
                let mut properties = BasicProperties::default();
                if let Some(id) = delivery.properties.correlation_id().clone() {
                    properties = properties.with_correlation_id(id);
                }
                let _ = serving
                    .basic_publish(
                        "".into(),
                        reply_to.as_str().into(),
                        BasicPublishOptions::default(),
                        &delivery.data,
                        properties,
                    )
                    .await;
            }
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
    });
}

/// A channel consuming RabbitMQ's direct reply-to, its replies handed to their waiters by
/// correlation id; with publisher confirms when `confirms`.
async fn rabbitmq_reply_channel(
    connection: &lapin::Connection,
    confirms: bool,
) -> (lapin::Channel, Waiters) {
    let calling = connection.create_channel().await.expect("channel");
    if confirms {
        calling
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
    }
    let mut replies = calling
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("reply-to");
    let waiters: Waiters = Arc::default();
    let matched = waiters.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = replies.next().await {
            let id = delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|s| s.to_string());
            if let Some(waiter) = id.and_then(|id| matched.lock().ok()?.remove(&id)) {
                let _ = waiter.send(());
            }
        }
    });
    (calling, waiters)
}

/// The raw caller: direct reply-to on one channel, replies matched by correlation id.
async fn rabbitmq_raw_send(connection: &lapin::Connection, queue: String) -> Op {
    let (calling, waiters) = rabbitmq_reply_channel(connection, false).await;
    op(move || {
        let (channel, waiters, queue) = (calling.clone(), waiters.clone(), queue.clone());
        async move {
            let id = format!("{:x}", fastrand::u128(..));
            let (sender, receiver) = oneshot::channel();
            waiters.lock().expect("lock").insert(id.clone(), sender);
            let properties = BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id(id.as_str().into());
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &raw_payload(),
                    properties,
                )
                .await
                .expect("publish");
            receiver.await.expect("reply");
        }
    })
}

/// The raw request carrying and routed like the SDK's: through a topic exchange bound to
/// the raw responder's queue, `mandatory` on a channel with publisher confirms (the confirm
/// awaited, as it tells a request nobody is bound for), a priority, the caller's deadline as
/// the message's TTL and as a header, a message id, a `traceparent`, the correlation id as a
/// header; then the reply over direct reply-to.
async fn rabbitmq_raw_send_alike(connection: &lapin::Connection, queue: &str, id: &str) -> Op {
    let (calling, waiters) = rabbitmq_reply_channel(connection, true).await;
    let key = format!("rawalike{id}.echo");
    rabbitmq_alike_exchange(&calling).await;
    calling
        .queue_bind(
            queue.into(),
            ALIKE_EXCHANGE.into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    op(move || {
        let (channel, waiters, key) = (calling.clone(), waiters.clone(), key.clone());
        async move {
            let (id, correlation) = (
                format!("{:032x}", fastrand::u128(..)),
                format!("{:032x}", fastrand::u128(..)),
            );
            let (sender, receiver) = oneshot::channel();
            waiters
                .lock()
                .expect("lock")
                .insert(correlation.clone(), sender);
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_priority(5)
                .with_message_id(id.as_str().into())
                .with_expiration("10000".into())
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id(correlation.as_str().into());
            let deadline = sdk::deadline::DEADLINE_HEADER;
            let headers = [
                ("traceparent", TRACEPARENT),
                (deadline.as_str(), "10000"),
                (sdk_messaging::headers::CORRELATION_ID, id.as_str()),
            ];
            publish_alike(&channel, &key, &headers, properties).await;
            receiver.await.expect("reply");
        }
    })
}

/// A `mandatory` publish of the payload through [`ALIKE_EXCHANGE`], `headers` in its table,
/// the publisher confirm awaited: what the raw operations alike the SDK's share.
async fn publish_alike(
    channel: &lapin::Channel,
    key: &str,
    headers: &[(&str, &str)],
    properties: BasicProperties,
) {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(
            (*name).into(),
            AMQPValue::LongString(value.as_bytes().to_vec().into()),
        );
    }
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    channel
        .basic_publish(
            ALIKE_EXCHANGE.into(),
            key.into(),
            mandatory,
            &raw_payload(),
            properties.with_headers(table),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
}

/// The topic exchange the raw operations alike the SDK's publish to.
const ALIKE_EXCHANGE: &str = "sdk-bench.raw-alike";

async fn rabbitmq_alike_exchange(channel: &lapin::Channel) {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            ALIKE_EXCHANGE.into(),
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        )
        .await
        .expect("exchange");
}

/// Confirmed persistent publishes to a durable queue nobody consumes while measured.
async fn rabbitmq_raw_emit(connection: &lapin::Connection, id: &str, expires: FieldTable) -> Op {
    let publishing = connection.create_channel().await.expect("channel");
    publishing
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let events = format!("bench.rawev.{id}");
    publishing
        .queue_declare(events.as_str().into(), DURABLE, expires)
        .await
        .expect("queue");
    op(move || {
        let (channel, events) = (publishing.clone(), events.clone());
        async move {
            channel
                .basic_publish(
                    "".into(),
                    events.as_str().into(),
                    BasicPublishOptions::default(),
                    &raw_payload(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
        }
    })
}

/// Confirmed persistent publishes routed and carried as the SDK's are: through a topic
/// exchange to a queue with `x-max-priority = 10`, `mandatory`, with a priority, a message
/// id and a `traceparent` header.
async fn rabbitmq_alike(connection: &lapin::Connection, id: &str) -> Op {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let queue = format!("bench.rawalike.{id}");
    let mut arguments = FieldTable::default();
    arguments.insert("x-expires".into(), AMQPValue::LongInt(60_000));
    arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
    channel
        .queue_declare(queue.as_str().into(), DURABLE, arguments)
        .await
        .expect("queue");
    rabbitmq_alike_exchange(&channel).await;
    let key = format!("rawalike{id}.placed");
    channel
        .queue_bind(
            queue.as_str().into(),
            ALIKE_EXCHANGE.into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    op(move || {
        let (channel, key) = (channel.clone(), key.clone());
        async move {
            let id = format!("{:032x}", fastrand::u128(..));
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_priority(5)
                .with_message_id(id.as_str().into());
            publish_alike(&channel, &key, &[("traceparent", TRACEPARENT)], properties).await;
        }
    })
}

/// The raw responder: a consumer group on the request stream, replies pushed to each
/// request's list.
async fn redis_responder(
    client: &redis::Client,
    blocking: &redis::AsyncConnectionConfig,
    setup: &redis::aio::MultiplexedConnection,
    requests: &str,
) {
    let mut reading = client
        .get_multiplexed_async_connection_with_config(blocking)
        .await
        .expect("redis");
    let (mut replying, stream) = (setup.clone(), requests.to_owned());
    tokio::spawn(async move {
        loop {
            let read: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("raw")
                    .arg("c")
                    .arg("COUNT")
                    .arg(64)
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">")
                    .query_async(&mut reading)
                    .await;
            // An error means the stream is gone (cleaned up at the end): stop, not spin.
            let read = match read {
                Ok(Some(read)) => read,
                Ok(None) => continue,
                Err(_) => break,
            };
            for entry in read.keys.into_iter().flat_map(|k| k.ids) {
                let reply: Option<String> = entry.get("r");
                let body: Option<Vec<u8>> = entry.get("m");
                if let (Some(reply), Some(body)) = (reply, body) {
                    let _: redis::RedisResult<()> = redis::pipe()
                        .lpush(&reply, body)
                        .ignore()
                        .xack(&stream, "raw", &[&entry.id])
                        .ignore()
                        .query_async(&mut replying)
                        .await;
                }
            }
        }
    });
}

/// The raw caller: each takes a connection of its own (a blocking pop holds it) and its
/// list, adds the request to the stream and pops the reply; and the same carrying and routed
/// like the SDK's request (see [`REDIS_SEND_ALIKE`]).
async fn redis_raw_sends(
    client: &redis::Client,
    blocking: &redis::AsyncConnectionConfig,
    setup: &redis::aio::MultiplexedConnection,
    requests: &str,
    prefix: &str,
) -> (Op, Op) {
    let mut pool = Vec::new();
    for n in 0..64 {
        pool.push((
            client
                .get_multiplexed_async_connection_with_config(blocking)
                .await
                .expect("redis"),
            format!("{prefix}:raw:reply:{n}"),
        ));
    }
    let pool: ReplyPool = Arc::new(Mutex::new(pool));
    let (commands, stream, each) = (setup.clone(), requests.to_owned(), pool.clone());
    let raw = op(move || {
        let (pool, mut commands, stream) = (each.clone(), commands.clone(), stream.clone());
        async move {
            let (mut connection, reply) = pool.lock().expect("lock").pop().expect("a connection");
            let _: String = commands
                .xadd(
                    &stream,
                    "*",
                    &[("m", raw_payload()), ("r", reply.clone().into_bytes())],
                )
                .await
                .expect("xadd");
            let _: Option<(String, Vec<u8>)> = connection.blpop(&reply, 5.0).await.expect("reply");
            pool.lock().expect("lock").push((connection, reply));
        }
    });
    let alike = redis_raw_send_alike(setup, pool, requests, prefix).await;
    (raw, alike)
}

/// Connections for blocking pops, each with its reply list.
type ReplyPool = Arc<Mutex<Vec<(redis::aio::MultiplexedConnection, String)>>>;

/// What the raw request alike the SDK's runs in Redis: the SDK's routing check (the
/// bindings' version still the caller's, a live consumer on the stream, on Redis's clock)
/// and the append, capped, with the message id, `traceparent` and deadline as fields (a
/// stream entry has no headers). KEYS: version, stream, its live consumers; ARGV: version,
/// payload, reply list, message id, traceparent, deadline.
const REDIS_SEND_ALIKE: &str = r"
    if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
    local t = redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)
    if redis.call('ZCOUNT', KEYS[3], now, '+inf') == 0 then return 0 end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'm', ARGV[2], 'r', ARGV[3],
      'sdk-message-id', ARGV[4], 'traceparent', ARGV[5], 'x-request-deadline', ARGV[6])
    return 1
";

/// The raw request carrying and routed like the SDK's ([`REDIS_SEND_ALIKE`] by `EVALSHA`),
/// then its reply popped, as [`redis_raw_sends`]'s raw caller does.
async fn redis_raw_send_alike(
    setup: &redis::aio::MultiplexedConnection,
    pool: ReplyPool,
    requests: &str,
    prefix: &str,
) -> Op {
    let (version, alive) = (
        format!("{prefix}:raw:send-version"),
        format!("{requests}:alive"),
    );
    let mut commands = setup.clone();
    let _: redis::RedisResult<()> = commands.set(&version, "1").await;
    let _: redis::RedisResult<()> = commands.zadd(&alive, "raw", f64::MAX).await;
    let script = Arc::new(redis::Script::new(REDIS_SEND_ALIKE));
    let stream = requests.to_owned();
    op(move || {
        let (pool, mut commands, script) = (pool.clone(), commands.clone(), script.clone());
        let (stream, version, alive) = (stream.clone(), version.clone(), alive.clone());
        async move {
            let (mut connection, reply) = pool.lock().expect("lock").pop().expect("a connection");
            let id = format!("{:032x}", fastrand::u128(..));
            let appended: i64 = script
                .key(&version)
                .key(&stream)
                .key(&alive)
                .arg("1")
                .arg(raw_payload())
                .arg(&reply)
                .arg(id)
                .arg(TRACEPARENT)
                .arg("10000")
                .invoke_async(&mut commands)
                .await
                .expect("evalsha");
            assert_eq!(appended, 1, "routes current, a live consumer");
            let _: Option<(String, Vec<u8>)> = connection.blpop(&reply, 5.0).await.expect("reply");
            pool.lock().expect("lock").push((connection, reply));
        }
    })
}

async fn redis() -> Option<Ops> {
    if !reachable("127.0.0.1:6379").await {
        return None;
    }
    let id = id();
    let prefix = format!("sdkbench{id}");
    let config = MessagingConfig::new(TransportKind::Redis, "redis://127.0.0.1:6379")
        .redis(RedisSettings::new().prefix(&prefix));
    let messaging = Messaging::connect("bench", &config).await.expect("redis");
    let ns = format!("b{id}");
    let (sdk_send, sdk_emit, server) = sdk_ops(&messaging, &ns).await;

    let client = redis::Client::open("redis://127.0.0.1:6379").expect("url");
    let requests = format!("{prefix}:raw:requests");
    let mut setup = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&requests)
        .arg("raw")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut setup)
        .await;
    // Blocking reads and pops wait longer than the default response timeout (500 ms).
    let blocking =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    redis_responder(&client, &blocking, &setup, &requests).await;
    let (raw_send, raw_send_alike) =
        redis_raw_sends(&client, &blocking, &setup, &requests, &prefix).await;
    let events = format!("{prefix}:raw:events");
    let raw_emit_alike = redis_raw_emit_alike(setup.clone(), &prefix).await;
    let raw_emit = op(move || {
        let (mut commands, events) = (setup.clone(), events.clone());
        async move {
            let _: String = commands
                .xadd(&events, "*", &[("m", raw_payload())])
                .await
                .expect("xadd");
        }
    });
    let cleanup = Cleanup(Some(Box::new(move || {
        let (client, prefix) = (client.clone(), prefix.clone());
        Box::pin(async move {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = c.keys(format!("{prefix}:*")).await.unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = c.del(keys).await;
                }
            }
        })
    })));
    Some(Ops {
        transport: "Redis",
        key: "redis",
        sdk_send,
        raw_send,
        sdk_emit,
        raw_emit,
        raw_emit_alike: Some(raw_emit_alike),
        raw_send_alike: Some(raw_send_alike),
        _keep: vec![Box::new(messaging), Box::new(server), Box::new(cleanup)],
    })
}

/// The raw `XADD` carrying what the SDK's does and routed as the SDK routes it: the message
/// id and the `traceparent` as fields of the entry (a stream entry has no headers), and, in
/// the same pipeline, the read of the bindings' version that tells a publisher its cached
/// routes still hold (Redis cannot route by pattern itself; see `sdk-messaging`'s
/// `redis/routes.rs`).
async fn redis_raw_emit_alike(setup: redis::aio::MultiplexedConnection, prefix: &str) -> Op {
    let (events, version) = (
        format!("{prefix}:raw:alike"),
        format!("{prefix}:raw:version"),
    );
    let mut commands = setup.clone();
    let _: redis::RedisResult<()> = commands.set(&version, "1").await;
    // NOMKSTREAM, as the SDK appends only to a bound group's stream: make it first.
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&events)
        .arg("bound")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut commands)
        .await;
    op(move || {
        let (mut commands, events, version) = (setup.clone(), events.clone(), version.clone());
        async move {
            let id = format!("{:032x}", fastrand::u128(..));
            let (added, current): (Option<String>, Option<String>) = redis::pipe()
                .cmd("XADD")
                .arg(&events)
                .arg("NOMKSTREAM")
                .arg("*")
                .arg("m")
                .arg(raw_payload())
                .arg(sdk_messaging::headers::MESSAGE_ID)
                .arg(id)
                .arg("traceparent")
                .arg(TRACEPARENT)
                .get(&version)
                .query_async(&mut commands)
                .await
                .expect("xadd");
            assert!(
                added.is_some() && current.is_some(),
                "appended, routes current"
            );
        }
    })
}

type CleanupFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Runs its cleanup (on a runtime of its own) when dropped.
struct Cleanup(Option<CleanupFn>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cleanup) = self.0.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(cleanup());
                }
            })
            .join();
        }
    }
}

async fn timed(op: &Op) -> Duration {
    let started = Instant::now();
    op().await;
    started.elapsed()
}

/// Latencies of `callers` callers making `each` calls at once.
async fn concurrent(op: &Op, callers: usize, each: usize) -> Vec<Duration> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(each);
                for _ in 0..each {
                    times.push(timed(&op).await);
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all.sort_unstable();
    all
}

/// Operations per second of `total` runs of `op`, 64 at once.
pub(crate) async fn throughput(op: &Op, total: usize) -> f64 {
    let started = Instant::now();
    futures_util::stream::iter(0..total)
        .map(|_| op())
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    total as f64 / started.elapsed().as_secs_f64()
}

/// One transport's operations (`nats`, `rabbitmq`, `redis`, `nestjs-nats`), or `None` when its broker is
/// not here: for the instructions binary, which counts one of them under callgrind.
#[allow(dead_code)] // used by the instructions binary, not the suite
pub(crate) async fn ops(transport: &str) -> Option<Ops> {
    match transport {
        "nats" => nats().await,
        "rabbitmq" => rabbitmq().await,
        "redis" => redis().await,
        "nestjs-nats" => foreign::nestjs_nats().await,
        _ => None,
    }
}

impl Ops {
    /// `sdk-send`, `raw-send`, `sdk-emit` or `raw-emit`.
    #[allow(dead_code)] // used by the instructions binary, not the suite
    pub(crate) fn get(&self, which: &str) -> Option<&Op> {
        match which {
            "sdk-send" => Some(&self.sdk_send),
            "raw-send" => Some(&self.raw_send),
            "sdk-emit" => Some(&self.sdk_emit),
            "raw-emit" => Some(&self.raw_emit),
            "raw-emit-alike" => self.raw_emit_alike.as_ref(),
            "raw-send-alike" => self.raw_send_alike.as_ref(),
            _ => None,
        }
    }
}

/// Measures every transport whose broker is here.
pub(crate) async fn run(quick: bool) -> Vec<Row> {
    let (samples, each, emits) = if quick {
        (1_000, 30, 5_000)
    } else {
        (3_000, 100, 20_000)
    };
    let mut rows = Vec::new();
    let transports = [
        nats().await,
        rabbitmq().await,
        redis().await,
        foreign::nestjs_nats().await,
    ];
    for ops in transports.into_iter().flatten() {
        eprintln!("messaging over {}...", ops.transport);
        // Warm both up, then interleave call by call.
        for _ in 0..200 {
            (ops.sdk_send)().await;
            (ops.raw_send)().await;
        }
        let (mut sdk_one, mut raw_one, mut one_alike) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..samples {
            sdk_one.push(timed(&ops.sdk_send).await);
            raw_one.push(timed(&ops.raw_send).await);
            if let Some(op) = &ops.raw_send_alike {
                one_alike.push(timed(op).await);
            }
        }
        sdk_one.sort_unstable();
        raw_one.sort_unstable();
        one_alike.sort_unstable();
        let (mut sdk_many, mut raw_many) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            sdk_many.extend(concurrent(&ops.sdk_send, 64, each / 2).await);
            raw_many.extend(concurrent(&ops.raw_send, 64, each / 2).await);
        }
        sdk_many.sort_unstable();
        raw_many.sort_unstable();
        let (mut sdk_emit, mut raw_emit, mut alike) = (0.0, 0.0, 0.0);
        for _ in 0..2 {
            sdk_emit += throughput(&ops.sdk_emit, emits / 2).await / 2.0;
            raw_emit += throughput(&ops.raw_emit, emits / 2).await / 2.0;
            if let Some(op) = &ops.raw_emit_alike {
                alike += throughput(op, emits / 2).await / 2.0;
            }
        }
        rows.push(Row {
            transport: ops.transport,
            key: ops.key,
            one: (sdk_one, raw_one),
            many: (sdk_many, raw_many),
            emits_per_second: (sdk_emit, raw_emit),
            emits_alike: ops.raw_emit_alike.is_some().then_some(alike),
            one_alike: ops.raw_send_alike.is_some().then_some(one_alike),
        });
    }
    rows
}
