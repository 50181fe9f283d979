//! The RabbitMQ transport against the machine's RabbitMQ (127.0.0.1:5672, guest/guest),
//! through the checks every transport passes (`support/suite.rs`), plus what only RabbitMQ
//! has: priorities.
#![cfg(feature = "rabbitmq")]

mod support;

use std::time::Duration;

use lapin::{options::BasicGetOptions, types::AMQPValue, Connection, ConnectionProperties};
use sdk_messaging::{Messaging, MessagingConfig, RabbitSettings, TransportKind};
use support::suite::{self, DeadLetter};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

struct Setup {
    messaging: Messaging,
    ns: String,
    group: String,
}

async fn setup(timeout: Duration) -> Option<Setup> {
    support::broker_at("RabbitMQ", "127.0.0.1:5672").await?;
    let id = support::unique("r");
    // Shared test exchanges (each test has patterns and groups of its own), and queues
    // RabbitMQ deletes a minute after the test, so runs leave nothing behind.
    let settings = RabbitSettings::new()
        .exchanges("sdk-test.requests", "sdk-test.events", "sdk-test.dead")
        .queue_expires(Duration::from_secs(60));
    let config = MessagingConfig::new(TransportKind::RabbitMq, AMQP)
        .timeout(timeout)
        .rabbitmq(settings);
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    Some(Setup {
        messaging,
        ns: format!("u{id}"),
        group: format!("g{id}"),
    })
}

/// Reads (and removes) what `sdk.dead.<group>` holds.
async fn dead_letters(group: String) -> Vec<DeadLetter> {
    let connection = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    let mut found = Vec::new();
    while let Ok(Some(message)) = channel
        .basic_get(
            format!("sdk.dead.{group}").as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
    {
        let headers = message
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        let header = |name: &str| match headers.inner().get(name) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            _ => String::new(),
        };
        found.push((
            header(sdk_messaging::headers::DEAD_PATTERN),
            header(sdk_messaging::headers::DEAD_REASON),
            String::from_utf8_lossy(&message.delivery.data).into_owned(),
        ));
    }
    found
}

#[tokio::test]
async fn a_send_is_answered_with_the_correlation_id_and_headers_passed() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    suite::sends_carry_headers_and_correlation_ids(&setup.messaging, &setup.ns, &setup.group).await;
}

#[tokio::test]
async fn no_responder_a_slow_one_and_a_failing_one_end_in_typed_errors() {
    let Some(setup) = setup(Duration::from_millis(800)).await else {
        return;
    };
    suite::failures_are_typed_and_bounded(&setup.messaging, &setup.ns, &setup.group).await;
}

#[tokio::test]
async fn events_reach_the_most_specific_handler_once_each() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    suite::events_reach_the_most_specific_handler(&setup.messaging, &setup.ns, &setup.group).await;
}

#[tokio::test]
async fn failed_events_come_back_and_bad_ones_go_to_the_dead_letters() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let group = setup.group.clone();
    suite::failed_events_come_back_and_bad_ones_die(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        || dead_letters(group.clone()),
    )
    .await;
}
