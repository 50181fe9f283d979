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

#[tokio::test]
async fn with_prefetch_one_every_critical_message_comes_before_any_low_one() {
    let Some(setup) = setup(Duration::from_secs(10)).await else {
        return;
    };
    use sdk_messaging::{MessageContext, ServerOptions, Urgency};
    use std::sync::{Arc, Mutex};
    let order: Arc<Mutex<Vec<Urgency>>> = Arc::default();
    let sink = order.clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let pattern = format!("{}.price.changed", setup.ns);
    let server = setup
        .messaging
        .server(&setup.group)
        .options(ServerOptions::new().prefetch(1))
        .event_pattern(
            &pattern,
            move |_: serde_json::Value, context: MessageContext| {
                let (sink, held) = (sink.clone(), held.clone());
                async move {
                    let first = sink.lock().expect("lock").is_empty();
                    sink.lock().expect("lock").push(context.urgency);
                    if first {
                        // Hold the first delivery until all 1,000 are queued.
                        let _ = held.acquire().await;
                    }
                    Ok(())
                }
            },
        )
        .start()
        .await
        .expect("started");
    let client = setup.messaging.client();
    let levels = [
        Urgency::Low,
        Urgency::Medium,
        Urgency::High,
        Urgency::Critical,
    ];
    let sends = (0..1000).map(|n| {
        let client = client.clone();
        let pattern = pattern.clone();
        async move {
            client
                .message(&pattern, &serde_json::json!({ "n": n }))
                .urgency(levels[n % 4])
                .emit()
                .await
        }
    });
    for result in futures_util::future::join_all(sends).await {
        result.expect("stored");
    }
    gate.add_permits(1);
    suite::wait_for(|| order.lock().expect("lock").len() >= 1000)
        .await
        .expect("all delivered");
    let order = order.lock().expect("lock").clone();
    // The first was delivered before the others were queued; from then on, by priority.
    let rest = &order[1..];
    let last_critical = rest
        .iter()
        .rposition(|u| *u == Urgency::Critical)
        .expect("critical ones");
    let first_low = rest
        .iter()
        .position(|u| *u == Urgency::Low)
        .expect("low ones");
    assert!(
        last_critical < first_low,
        "a low message came before a critical one"
    );
    let mut sorted = rest.to_vec();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(rest, sorted.as_slice(), "strictly by priority");
    server.shutdown().await;
}
