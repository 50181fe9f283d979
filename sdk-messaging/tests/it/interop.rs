//! Wire compatibility, against the real frameworks: a NestJS microservice (the real
//! `@nestjs/microservices`, `tests/interop/nestjs/app.mjs`) on the machine's Redis, NATS
//! and RabbitMQ and on tansu (Kafka), and an Ascender Framework one (the real
//! `ascender-framework`, `tests/interop/ascender/app.py`) on Redis and Kafka, each with a
//! Rust service, calling each other: request and event, answer and failure, both ways. `scripts/test` installs them into
//! `target/interop/` (from npm and PyPI) and names them by `SDK_TEST_NESTJS` and
//! `SDK_TEST_ASCENDER`.
#![cfg(all(feature = "redis", feature = "nats", feature = "rabbitmq"))]

use std::{path::PathBuf, process::Stdio, time::Duration};

use http::StatusCode;
use sdk::ServiceError;
use sdk_messaging::{
    handler_error, Messaging, MessagingConfig, NestJsSettings, TransportKind, Wire,
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use crate::support;

/// The NestJS peer's source.
const NESTJS_APP: &str = include_str!("../interop/nestjs/app.mjs");

/// Where scripts/test installed a peer (`variable` names it; `marker` is a path in it that
/// shows the install is whole), or `None` after saying why the test is skipped.
fn installed(what: &str, variable: &str, marker: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(variable).map(PathBuf::from) else {
        sdk_test_support::skip(format_args!(
            "{what} interop: {variable} is not set (scripts/test installs {what} and sets it)"
        ));
        return None;
    };
    if !dir.join(marker).exists() {
        sdk_test_support::skip(format_args!(
            "{what} interop: no {marker} under {}",
            dir.display()
        ));
        return None;
    }
    Some(dir)
}

/// Starts a peer (`command`) and waits until it says it listens (`ready` on its output).
async fn start_peer(command: &mut Command) -> Child {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the peer runs");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "ready" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the peer did not start");
    // Whatever it prints later is drained, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// The NestJS peer on `transport` at `url`, handling `<prefix>.nest.*`.
async fn nestjs_peer(transport: TransportKind, url: &str, prefix: &str) -> Option<Child> {
    let dir = installed(
        "NestJS",
        "SDK_TEST_NESTJS",
        "node_modules/@nestjs/microservices",
    )?;
    // Written next to its `node_modules`: ES modules resolve packages from where the
    // importing file is.
    let app = dir.join("app.mjs");
    std::fs::write(&app, NESTJS_APP).expect("write the NestJS app");
    Some(
        start_peer(
            Command::new("node")
                .arg(&app)
                .args([transport_name(transport), url, prefix]),
        )
        .await,
    )
}

/// How the peers name `transport`.
fn transport_name(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Redis => "redis",
        TransportKind::Nats => "nats",
        TransportKind::Kafka => "kafka",
        _ => "rabbitmq",
    }
}

/// The Ascender peer on `transport` at `url`, handling `<prefix>.asc.*`.
async fn ascender_peer(transport: TransportKind, url: &str, prefix: &str) -> Option<Child> {
    let dir = installed(
        "Ascender",
        "SDK_TEST_ASCENDER",
        "ascender/common/microservices",
    )?;
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ascender/app.py");
    Some(
        start_peer(
            Command::new("python3")
                .arg(app)
                .args([transport_name(transport), url, prefix])
                .env("PYTHONPATH", &dir)
                .current_dir(std::env::temp_dir()),
        )
        .await,
    )
}

/// The Rust side: `<prefix>.rust.double` answers twice its number, `<prefix>.rust.refuse`
/// refuses with a 409; the events `<prefix>.rust.seen` and `<prefix>.rust.result` are
/// passed to the test.
async fn rust_side(
    messaging: &Messaging,
    prefix: &str,
) -> (
    sdk_messaging::RunningServer,
    mpsc::UnboundedReceiver<(&'static str, Value)>,
) {
    let (events, received) = mpsc::unbounded_channel();
    let seen = events.clone();
    let server = messaging
        // On RabbitMQ the group names the queue the peer sends to.
        .server(&format!("{prefix}-rust"))
        .message_pattern(&format!("{prefix}.rust.double"), |x: i64, _| async move {
            Ok(x * 2)
        })
        .message_pattern(&format!("{prefix}.rust.refuse"), |_: Value, _| async {
            Err::<Value, _>(handler_error(StatusCode::CONFLICT, "no more seats"))
        })
        .event_pattern(&format!("{prefix}.rust.seen"), move |event: Value, _| {
            let _ = seen.send(("seen", event));
            async { Ok(()) }
        })
        .event_pattern(&format!("{prefix}.rust.result"), move |event: Value, _| {
            let _ = events.send(("result", event));
            async { Ok(()) }
        })
        .start()
        .await
        .expect("the Rust side starts");
    (server, received)
}

async fn next(
    received: &mut mpsc::UnboundedReceiver<(&'static str, Value)>,
) -> (&'static str, Value) {
    tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("the NestJS peer answers within 20 s")
        .expect("the Rust side runs")
}

/// A connection speaking `wire`; on RabbitMQ, sending to the queue `queue`.
async fn connect(transport: TransportKind, wire: Wire, url: &str, queue: &str) -> Messaging {
    let config = MessagingConfig::new(transport, url)
        .wire(wire)
        .nestjs(NestJsSettings::new().queue(queue))
        .timeout(Duration::from_secs(15));
    Messaging::connect("interop", &config)
        .await
        .expect("connect")
}

/// Which peer a test runs against.
#[derive(Clone, Copy)]
enum Peer {
    NestJs,
    Ascender,
}

/// Every exchange both ways with `peer` on one transport.
async fn both_ways(peer: Peer, transport: TransportKind, name: &str, addr: &str, url: &str) {
    let Some(_broker) = support::broker_at(name, addr).await else {
        return;
    };
    let prefix = support::unique("interop");
    let (wire, theirs) = match peer {
        Peer::NestJs => (Wire::NestJs, format!("{prefix}.nest")),
        Peer::Ascender => (Wire::Ascender, format!("{prefix}.asc")),
    };
    // On RabbitMQ, sending to the queue the NestJS peer consumes.
    let messaging = connect(transport, wire, url, &format!("{prefix}-nest")).await;
    let (server, mut received) = rust_side(&messaging, &prefix).await;
    let peer = match peer {
        Peer::NestJs => nestjs_peer(transport, url, &prefix).await,
        Peer::Ascender => ascender_peer(transport, url, &prefix).await,
    };
    let Some(_peer) = peer else { return };
    let client = messaging.client();

    // Rust -> them: a request and its answer. Ascender reads Kafka from where its topics
    // end once it has joined them, after it says it is ready: the first requests may
    // come before, and are asked again.
    let sum = |timeout| {
        let client = client.clone();
        let pattern = format!("{theirs}.sum");
        async move {
            let message = client.message(&pattern, &[1, 2, 3]).timeout(timeout);
            message.send::<i64>().await.ok()
        }
    };
    let sum = if transport == TransportKind::Kafka {
        let wait = Duration::from_secs(30);
        support::poll(wait, || sum(Duration::from_secs(2))).await
    } else {
        sum(Duration::from_secs(15)).await
    };
    assert_eq!(sum, Some(6));

    // Rust -> them: a request they refuse, as a typed error with its status and body.
    let refused = client
        .send::<_, Value>(&format!("{theirs}.reserve"), &json!({"name": "seat 1"}))
        .await
        .expect_err("they refuse");
    assert_eq!(
        refused.status_code(),
        Some(StatusCode::CONFLICT),
        "{refused}"
    );
    let body: Value = serde_json::from_slice(refused.body().expect("a body")).expect("JSON");
    let message = match wire {
        Wire::Ascender => &body["error"],
        _ => &body["message"],
    };
    assert_eq!(message, "seat 1 is taken", "{body}");

    // Rust -> them: an event (they emit it back to show it arrived).
    client
        .emit(&format!("{theirs}.noted"), &json!({"n": 7}))
        .await
        .expect("emitted");
    assert_eq!(next(&mut received).await, ("seen", json!({"n": 7})));

    they_call_rust(&client, wire, &theirs, &mut received).await;
    nothing_listens(&client, transport, wire, url, &prefix, &theirs).await;
    server.shutdown().await;
}

/// Them -> Rust, set off by an event the Rust side emits to them: a request answered, one
/// the Rust handler refuses, and one after the refusal.
async fn they_call_rust(
    client: &sdk_messaging::MessageClient,
    wire: Wire,
    theirs: &str,
    received: &mut mpsc::UnboundedReceiver<(&'static str, Value)>,
) {
    // Them -> Rust: a request, answered.
    client
        .emit(&format!("{theirs}.start"), &json!({"x": 21}))
        .await
        .expect("emitted");
    assert_eq!(next(received).await, ("result", json!({"doubled": 42})));

    // Them -> Rust: a request the Rust handler refuses; they get its status.
    client
        .emit(&format!("{theirs}.start-refused"), &json!({}))
        .await
        .expect("emitted");
    let (_, result) = next(received).await;
    refused_as_they_read_it(wire, &result);

    // Them -> Rust: a request after the refusal is answered (the refusal broke nothing).
    client
        .emit(&format!("{theirs}.start"), &json!({"x": 4}))
        .await
        .expect("emitted");
    assert_eq!(next(received).await, ("result", json!({"doubled": 8})));
}

/// What the peer reports of a Rust handler's refusal: its status and message. Ascender's
/// callers read no failure, so the call times out (3 s), as it does with an Ascender
/// service: one read where they listen would fail every later call of theirs too (the
/// next exchange shows it did not).
fn refused_as_they_read_it(wire: Wire, result: &Value) {
    if wire == Wire::Ascender {
        assert!(
            result["unexpected"]
                .as_str()
                .is_some_and(|e| e.contains("TimeoutError")),
            "{result}"
        );
        return;
    }
    let (status, message) = match wire {
        Wire::Ascender => (&result["error"]["code"], &result["error"]["error"]),
        _ => (&result["error"]["statusCode"], &result["error"]["message"]),
    };
    assert_eq!(status, 409, "{result}");
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("no more seats")),
        "{result}"
    );
}

/// A call to a pattern nobody handles fails at once instead of waiting out its deadline. On
/// RabbitMQ the peer's queue takes every pattern, and NestJS answers that no handler
/// matches.
async fn nothing_listens(
    client: &sdk_messaging::MessageClient,
    transport: TransportKind,
    wire: Wire,
    url: &str,
    prefix: &str,
    theirs: &str,
) {
    let started = std::time::Instant::now();
    let nobody = client
        .send::<_, Value>(&format!("{theirs}.nobody"), &json!({}))
        .await
        .expect_err("nobody answers");
    assert!(started.elapsed() < Duration::from_secs(5));
    if transport == TransportKind::RabbitMq {
        let body = String::from_utf8_lossy(nobody.body().expect("a body")).into_owned();
        assert!(body.contains("no matching message handler"), "{body}");
        rabbitmq_edges(wire, url, prefix).await;
    } else {
        assert!(
            matches!(nobody, ServiceError::NoHealthyInstance { .. }),
            "{nobody:?}"
        );
    }
}

/// What only RabbitMQ has: a Rust server's answer to a pattern it has no handler for, and a
/// queue nobody declared.
async fn rabbitmq_edges(wire: Wire, url: &str, prefix: &str) {
    let transport = TransportKind::RabbitMq;
    // A Rust server answers a pattern it has no handler for as NestJS does, with a
    // 404: seen by a caller sending to the Rust side's own queue.
    let to_rust = connect(transport, wire, url, &format!("{prefix}-rust")).await;
    let unhandled = to_rust
        .client()
        .send::<_, Value>(&format!("{prefix}.rust.nothing"), &json!({}))
        .await
        .expect_err("no handler");
    assert_eq!(
        unhandled.status_code(),
        Some(StatusCode::NOT_FOUND),
        "{unhandled}"
    );
    // A queue nobody declared: the mandatory publish comes back, `NoResponder` at once.
    let to_nobody = connect(transport, wire, url, &format!("{prefix}-nobody")).await;
    let started = std::time::Instant::now();
    let unroutable = to_nobody
        .client()
        .emit(&format!("{prefix}.nobody.event"), &json!({}))
        .await
        .expect_err("no such queue");
    assert!(
        matches!(unroutable, ServiceError::NoHealthyInstance { .. }),
        "{unroutable:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

const REDIS: (&str, &str, &str) = ("Redis", "127.0.0.1:6379", "redis://127.0.0.1:6379");
const NATS: (&str, &str, &str) = ("NATS", "127.0.0.1:4222", "nats://127.0.0.1:4222");
const RABBITMQ: (&str, &str, &str) = (
    "RabbitMQ",
    "127.0.0.1:5672",
    "amqp://guest:guest@127.0.0.1:5672/%2f",
);

#[tokio::test]
async fn a_nestjs_service_and_a_rust_one_call_each_other_over_redis() {
    let (name, addr, url) = REDIS;
    both_ways(Peer::NestJs, TransportKind::Redis, name, addr, url).await;
}

#[tokio::test]
async fn a_nestjs_service_and_a_rust_one_call_each_other_over_nats() {
    let (name, addr, url) = NATS;
    both_ways(Peer::NestJs, TransportKind::Nats, name, addr, url).await;
}

#[tokio::test]
async fn a_nestjs_service_and_a_rust_one_call_each_other_over_rabbitmq() {
    let (name, addr, url) = RABBITMQ;
    both_ways(Peer::NestJs, TransportKind::RabbitMq, name, addr, url).await;
}

#[tokio::test]
async fn an_ascender_service_and_a_rust_one_call_each_other_over_redis() {
    let (name, addr, url) = REDIS;
    both_ways(Peer::Ascender, TransportKind::Redis, name, addr, url).await;
}

#[cfg(feature = "kafka")]
#[tokio::test]
async fn a_nestjs_service_and_a_rust_one_call_each_other_over_kafka() {
    let addr = crate::kafka::kafka_addr();
    let url = format!("kafka://{addr}");
    both_ways(Peer::NestJs, TransportKind::Kafka, "Kafka", &addr, &url).await;
}

#[cfg(feature = "kafka")]
#[tokio::test]
async fn an_ascender_service_and_a_rust_one_call_each_other_over_kafka() {
    let addr = crate::kafka::kafka_addr();
    let url = format!("kafka://{addr}");
    both_ways(Peer::Ascender, TransportKind::Kafka, "Kafka", &addr, &url).await;
}

/// A foreign wire's subscriptions come back by themselves after Redis restarts (Redis
/// forgets every subscription): a Rust handler reached over NestJS's format answers again
/// once a `redis-server` of the test's own, killed with `kill -9`, is back.
#[tokio::test]
async fn a_foreign_wire_subscribes_again_after_redis_restarts() {
    use crate::redis_durability::{have_redis_server, RedisProcess};
    if !have_redis_server() {
        return;
    }
    let port = support::free_port();
    let redis = RedisProcess::start(port, None).await;
    let url = format!("redis://127.0.0.1:{port}");
    let config = MessagingConfig::new(TransportKind::Redis, &url)
        .wire(Wire::NestJs)
        .timeout(Duration::from_secs(5));
    let messaging = Messaging::connect("restart", &config)
        .await
        .expect("connect");
    let server = messaging
        .server("doubler")
        .message_pattern("math.double", |x: i64, _| async move { Ok(x * 2) })
        .start()
        .await
        .expect("the server starts");
    let client = messaging.client();
    let doubled = |x: i64| {
        let client = client.clone();
        async move { client.send::<_, i64>("math.double", &x).await.ok() }
    };
    let within = Duration::from_secs(15);
    assert_eq!(support::poll(within, || doubled(2)).await, Some(4));

    redis.kill().await;
    let down = client
        .message("math.double", &3)
        .timeout(Duration::from_millis(500))
        .send::<i64>()
        .await;
    assert!(down.is_err(), "no answer while Redis is down: {down:?}");
    let redis = RedisProcess::start(port, None).await;
    assert_eq!(
        support::poll(within, || doubled(3)).await,
        Some(6),
        "answered again after the restart"
    );
    server.shutdown().await;
    redis.kill().await;
}
