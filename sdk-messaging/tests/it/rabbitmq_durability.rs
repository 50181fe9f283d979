//! Nothing acknowledged is lost on RabbitMQ: 10,000 persistent events emitted while the
//! machine's RabbitMQ is stopped and started again (`rabbitmqctl stop_app`, `start_app`)
//! mid-stream, and the consuming process is killed with `kill -9` and started again. Every
//! event whose `emit` returned `Ok` is handled at least once; duplicates are removed by
//! number. (A file of its own: cargo runs test binaries one at a time, so no other test
//! meets the stopped broker.)
#![cfg(feature = "rabbitmq")]

use crate::support;

use std::time::Duration;

use crate::support::durability;
use sdk_messaging::{Messaging, MessagingConfig, RabbitSettings, TransportKind};

const EVENTS: usize = 10_000;
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn settings() -> RabbitSettings {
    RabbitSettings::new()
        .exchanges("sdk-test.requests", "sdk-test.events", "sdk-test.dead")
        .queue_expires(Duration::from_secs(120))
}

/// `rabbitmqctl` with `args`; whether it succeeded.
fn rabbitmqctl(args: &[&str]) -> bool {
    std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the broker's app again however the test ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
    }
}

/// The consuming process (run by the test below as a child; skipped otherwise).
#[tokio::test]
#[ignore = "run by zero_loss_through_a_broker_restart_and_a_killed_consumer as a child process"]
async fn consumer_process() {
    durability::consume_as_child(|url, _| {
        MessagingConfig::new(TransportKind::RabbitMq, url).rabbitmq(settings())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_loss_through_a_broker_restart_and_a_killed_consumer() {
    if durability::child_spec().is_some() {
        return;
    }
    // It restarts the machine's RabbitMQ: no other test may use it meanwhile.
    let Some(_alone) = support::broker_alone("RabbitMQ", "127.0.0.1:5672").await else {
        return;
    };
    if !rabbitmqctl(&["status"]) {
        sdk_test_support::skip("rabbitmqctl cannot control the broker here (it needs root)");
        return;
    }
    let id = support::unique("d");
    let dir = std::env::temp_dir().join(format!("sdk-rabbit-{id}"));
    let out = dir.join("handled.txt");
    std::fs::create_dir_all(&dir).expect("dir");

    let config = durability::patient(
        MessagingConfig::new(TransportKind::RabbitMq, AMQP).rabbitmq(settings()),
        60,
        Duration::from_secs(90),
    );
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    let restart = || async {
        let restore = Restore;
        assert!(rabbitmqctl(&["stop_app"]), "rabbitmqctl stop_app");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(rabbitmqctl(&["start_app"]), "rabbitmqctl start_app");
        drop(restore);
    };
    let pattern = format!("o{id}.order.placed");
    durability::survive(
        &messaging,
        &pattern,
        &durability::Consumer {
            module: module_path!(),
            spec: &format!("{AMQP} {id}"),
        },
        &out,
        EVENTS,
        restart,
        durability::Replace::AT_ONCE,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
