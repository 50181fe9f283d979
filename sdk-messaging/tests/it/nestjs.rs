//! NestJS wire compatibility, against the real `@nestjs/microservices` (installed by
//! `scripts/test` into `target/interop/nestjs`, named by `SDK_TEST_NESTJS`): a NestJS
//! microservice (`tests/interop/nestjs/app.mjs`) and a Rust service on the machine's Redis
//! and NATS, each calling the other, request and event, answer and failure.
#![cfg(all(feature = "redis", feature = "nats"))]

use std::{path::PathBuf, process::Stdio, time::Duration};

use http::StatusCode;
use sdk::ServiceError;
use sdk_messaging::{handler_error, Messaging, MessagingConfig, TransportKind, Wire};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use crate::support;

/// The peer's source, written next to its `node_modules` (ES modules resolve packages from
/// where the importing file is).
const APP: &str = include_str!("../interop/nestjs/app.mjs");

/// Where scripts/test installed NestJS, or `None` after saying why the test is skipped.
fn nestjs() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("SDK_TEST_NESTJS").map(PathBuf::from) else {
        sdk_test_support::skip(
            "NestJS interop: SDK_TEST_NESTJS is not set (scripts/test installs NestJS and sets it)",
        );
        return None;
    };
    if !dir.join("node_modules/@nestjs/microservices").is_dir() {
        sdk_test_support::skip(format_args!(
            "NestJS interop: no @nestjs/microservices under {}",
            dir.display()
        ));
        return None;
    }
    Some(dir)
}

/// Starts the NestJS peer on `transport` at `url`, handling `<prefix>.nest.*`, and waits
/// until it says it listens.
async fn start_peer(dir: &std::path::Path, transport: &str, url: &str, prefix: &str) -> Child {
    let app = dir.join("app.mjs");
    std::fs::write(&app, APP).expect("write the NestJS app");
    let mut child = Command::new("node")
        .arg(&app)
        .args([transport, url, prefix])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
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
    assert_eq!(ready, Ok(true), "the NestJS peer did not start");
    // Whatever it prints later is drained, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
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
        .server("rust-side")
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

/// Every exchange both ways on one transport.
async fn both_ways(transport: TransportKind, name: &str, addr: &str, url: &str) {
    let Some(dir) = nestjs() else { return };
    let Some(_broker) = support::broker_at(name, addr).await else {
        return;
    };
    let prefix = support::unique("nest");
    let config = MessagingConfig::new(transport, url)
        .wire(Wire::NestJs)
        .timeout(Duration::from_secs(15));
    let messaging = Messaging::connect("nest", &config).await.expect("connect");
    let (server, mut received) = rust_side(&messaging, &prefix).await;
    let transport_name = if transport == TransportKind::Redis {
        "redis"
    } else {
        "nats"
    };
    let _peer = start_peer(&dir, transport_name, url, &prefix).await;
    let client = messaging.client();

    // Rust -> NestJS: a request and its answer.
    let sum: i64 = client
        .send(&format!("{prefix}.nest.sum"), &[1, 2, 3])
        .await
        .expect("NestJS answers");
    assert_eq!(sum, 6);

    // Rust -> NestJS: a request NestJS refuses, as a typed error with its status and body.
    let refused = client
        .send::<_, Value>(
            &format!("{prefix}.nest.reserve"),
            &json!({"name": "seat 1"}),
        )
        .await
        .expect_err("NestJS refuses");
    assert_eq!(
        refused.status_code(),
        Some(StatusCode::CONFLICT),
        "{refused}"
    );
    let body: Value = serde_json::from_slice(refused.body().expect("a body")).expect("JSON");
    assert_eq!(body["message"], "seat 1 is taken");

    // Rust -> NestJS: an event (NestJS emits it back to show it arrived).
    client
        .emit(&format!("{prefix}.nest.noted"), &json!({"n": 7}))
        .await
        .expect("emitted");
    assert_eq!(next(&mut received).await, ("seen", json!({"n": 7})));

    // NestJS -> Rust: a request, answered.
    client
        .emit(&format!("{prefix}.nest.start"), &json!({"x": 21}))
        .await
        .expect("emitted");
    assert_eq!(
        next(&mut received).await,
        ("result", json!({"doubled": 42}))
    );

    // NestJS -> Rust: a request the Rust handler refuses; NestJS gets its status.
    client
        .emit(&format!("{prefix}.nest.start-refused"), &json!({}))
        .await
        .expect("emitted");
    let (_, result) = next(&mut received).await;
    assert_eq!(result["error"]["statusCode"], 409, "{result}");
    assert_eq!(result["error"]["status"], "error", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no more seats")),
        "{result}"
    );

    // Nothing listens: the call fails at once instead of waiting out its deadline.
    let started = std::time::Instant::now();
    let nobody = client
        .send::<_, Value>(&format!("{prefix}.nest.nobody"), &json!({}))
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(nobody, ServiceError::NoHealthyInstance { .. }),
        "{nobody:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test]
async fn a_nestjs_service_and_a_rust_one_call_each_other_over_redis() {
    both_ways(
        TransportKind::Redis,
        "Redis",
        "127.0.0.1:6379",
        "redis://127.0.0.1:6379",
    )
    .await;
}

#[tokio::test]
async fn a_nestjs_service_and_a_rust_one_call_each_other_over_nats() {
    both_ways(
        TransportKind::Nats,
        "NATS",
        "127.0.0.1:4222",
        "nats://127.0.0.1:4222",
    )
    .await;
}
