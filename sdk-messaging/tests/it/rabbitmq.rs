//! The RabbitMQ transport against the machine's RabbitMQ (127.0.0.1:5672, guest/guest),
//! through the checks every transport passes (`support/suite.rs`), plus what only RabbitMQ
//! has: priorities.
#![cfg(feature = "rabbitmq")]

use crate::support;

use std::time::Duration;

use crate::support::suite::{self, DeadLetter};
use lapin::{options::BasicGetOptions, types::AMQPValue, Connection, ConnectionProperties};
use sdk_messaging::{Messaging, MessagingConfig, RabbitSettings, TransportKind};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

struct Setup {
    // Held for the test: the durability test restarts this broker only when no test holds it.
    _broker: support::Broker,
    messaging: Messaging,
    ns: String,
    group: String,
}

async fn setup(timeout: Duration) -> Option<Setup> {
    let broker = support::broker_at("RabbitMQ", "127.0.0.1:5672").await?;
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
        _broker: broker,
        messaging,
        ns: format!("u{id}"),
        group: format!("g{id}"),
    })
}

impl Setup {
    /// Where this test's dead letters are (what `dead_letters` reads).
    fn dead_key(&self) -> String {
        self.group.clone()
    }

    /// Nothing to delete: the broker removes this test's queues or topics itself.
    async fn cleanup(self) {}
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

suite::transport_suite!(test: tokio::test, timeout: Duration::from_secs(5), kind: TransportKind::RabbitMq, scheme: "amqp");

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

#[tokio::test]
async fn send_to_service_stores_the_reference_envelope_in_the_named_queue() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let target = format!("http://localhost:8002/api/v1/orders-{}", setup.ns);
    let queue = sdk_messaging::service_queue::queue_name(&target);
    assert_eq!(
        queue,
        format!("queue_localhost_8002_api_v1_orders-{}", setup.ns)
    );
    setup
        .messaging
        .client()
        .send_to_service(
            &target,
            "catalog-service",
            "POST",
            &serde_json::json!({ "product_id": 123, "action": "price_updated" }),
            sdk_messaging::Urgency::High,
        )
        .await
        .expect("stored");

    let connection = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    let message = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("a message in the queue");
    let properties = &message.delivery.properties;
    assert_eq!(*properties.priority(), Some(8), "high is priority 8");
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    let body = String::from_utf8(message.delivery.data.clone()).expect("utf-8");
    let keys: Vec<&str> = [
        "from_service",
        "to_service",
        "method",
        "payload",
        "urgency",
        "timestamp",
    ]
    .into_iter()
    .filter(|k| body.contains(&format!("\"{k}\"")))
    .collect();
    assert_eq!(keys.len(), 6, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        value.as_object().map(|o| o.len()),
        Some(6),
        "exactly these keys: {body}"
    );
    assert_eq!(value["from_service"], "catalog-service");
    assert_eq!(value["to_service"], target.as_str());
    assert_eq!(value["method"], "POST");
    assert_eq!(
        value["payload"],
        serde_json::json!({ "product_id": 123, "action": "price_updated" })
    );
    assert_eq!(value["urgency"], "high");
    let timestamp = value["timestamp"].as_str().expect("a timestamp");
    assert_eq!(
        timestamp.len(),
        "2024-01-15T10:30:00.000Z".len(),
        "{timestamp}"
    );
    assert!(
        timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.',
        "{timestamp}"
    );
    assert!(
        body.find("\"from_service\"") < body.find("\"to_service\"")
            && body.find("\"urgency\"") < body.find("\"timestamp\""),
        "in the reference's order: {body}"
    );
}

#[tokio::test]
async fn consumed_service_messages_become_http_calls_through_the_pipeline() {
    use std::sync::{Arc, Mutex};

    use axum::{extract::Path, http::HeaderMap, routing::post, Json, Router};
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    type Seen = Arc<Mutex<Vec<(String, serde_json::Value, HeaderMap)>>>;
    let seen: Seen = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (sink, fail) = (seen.clone(), failures.clone());
    let app = Router::new().route(
        "/api/{what}",
        post(
            move |Path(what): Path<String>,
                  headers: HeaderMap,
                  Json(body): Json<serde_json::Value>| {
                let (sink, fail) = (sink.clone(), fail.clone());
                async move {
                    sink.lock()
                        .expect("lock")
                        .push((what.clone(), body, headers));
                    match what.as_str() {
                        // The first call fails: the SDK's pipeline retries it (it has a key).
                        "orders" if fail.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
                            axum::http::StatusCode::SERVICE_UNAVAILABLE
                        }
                        "orders" => axum::http::StatusCode::OK,
                        _ => axum::http::StatusCode::BAD_REQUEST,
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    // Each target URL's queue, delivered over HTTP by one server.
    let (orders, refuse) = (
        format!("{target}/api/orders"),
        format!("{target}/api/refuse"),
    );
    let sdk = sdk::ServiceSdk::builder().build().expect("sdk");
    let server = setup
        .messaging
        .server(&setup.group)
        .deliver_to_http(&orders, &sdk)
        .deliver_to_http(&refuse, &sdk)
        .start()
        .await
        .expect("started");
    let client = setup.messaging.client();
    for (target, n) in [(&orders, 1), (&refuse, 2)] {
        client
            .send_to_service(
                target,
                "catalog-service",
                "POST",
                &serde_json::json!({ "n": n }),
                sdk_messaging::Urgency::Critical,
            )
            .await
            .expect("stored");
    }
    suite::wait_for(|| seen.lock().expect("lock").len() >= 3)
        .await
        .expect("delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().expect("lock").clone();
    let orders: Vec<_> = seen.iter().filter(|(what, ..)| what == "orders").collect();
    assert_eq!(orders.len(), 2, "one 503, then the retry that succeeded");
    let (_, body, headers) = orders[1];
    assert_eq!(body, &serde_json::json!({ "n": 1 }));
    assert_eq!(headers["x-from-service"], "catalog-service");
    assert_eq!(headers["x-urgency"], "critical");
    assert_eq!(
        headers["idempotency-key"], orders[0].2["idempotency-key"],
        "the same key on every attempt"
    );
    assert_eq!(
        seen.iter().filter(|(what, ..)| what == "refuse").count(),
        1,
        "a 400 is not retried"
    );
    let dead = dead_letters(setup.group.clone()).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].1.contains("400"), "{dead:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn poison_is_dead_lettered_and_the_next_event_handled() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let group = setup.group.clone();
    suite::poison_is_dead_lettered(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        |pattern| async move {
            // Bytes another AMQP client published: no SDK headers, not JSON.
            let connection = Connection::connect(AMQP, ConnectionProperties::default())
                .await
                .expect("rabbitmq");
            let channel = connection.create_channel().await.expect("channel");
            channel
                .confirm_select(lapin::options::ConfirmSelectOptions::default())
                .await
                .expect("confirms");
            channel
                .basic_publish(
                    "sdk-test.events".into(),
                    pattern.as_str().into(),
                    lapin::options::BasicPublishOptions::default(),
                    suite::POISON.as_bytes(),
                    lapin::BasicProperties::default(),
                )
                .await
                .expect("publish")
                .await
                .expect("confirmed");
        },
        || dead_letters(group.clone()),
    )
    .await;
}

/// The HTTP bridge outlives its target: while the target is down (connections refused,
/// then its breaker open), a message is deferred without spending its attempts, and once
/// the target is back it is delivered; nothing goes to the dead letters. (Before: dead
/// after about 0.8 s, its five attempts spent on the open breaker.)
#[tokio::test]
async fn a_bridge_target_down_for_a_while_loses_nothing() {
    use std::sync::{Arc, Mutex};

    use axum::{routing::post, Json, Router};
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    // The target's address, with nothing listening on it yet.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let target = format!("http://{addr}/api/orders");
    // A breaker that opens after 2 failures for 300 ms, so the outage takes in several
    // of its cycles within the test.
    let defaults = sdk::ServiceConfig::new().circuit_breaker(
        sdk::circuit_breaker::BreakerConfig::default()
            .failure_threshold(2)
            .open_duration(Duration::from_millis(300)),
    );
    let sdk = sdk::ServiceSdk::builder()
        .defaults(defaults)
        .build()
        .expect("sdk");
    let options = sdk_messaging::ServerOptions::new().max_attempts(3).backoff(
        sdk::retry::ExponentialBackoff::new(Duration::from_millis(20), Duration::from_millis(50)),
    );
    let server = setup
        .messaging
        .server(&setup.group)
        .options(options)
        .deliver_to_http(&target, &sdk)
        .start()
        .await
        .expect("started");
    setup
        .messaging
        .client()
        .send_to_service(
            &target,
            "catalog-service",
            "POST",
            &serde_json::json!({ "n": 1 }),
            sdk_messaging::Urgency::High,
        )
        .await
        .expect("stored");
    // Down for 2.5 s: many times what three attempts 20-50 ms apart would last.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        dead_letters(setup.group.clone()).await.is_empty(),
        "nothing dead-lettered while the target was down"
    );
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = seen.clone();
    let app = Router::new().route(
        "/api/orders",
        post(move |Json(body): Json<serde_json::Value>| {
            sink.lock().expect("lock").push(body);
            async { axum::http::StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    suite::wait_for(|| !seen.lock().expect("lock").is_empty())
        .await
        .expect("delivered once the target was back");
    assert_eq!(*seen.lock().expect("lock"), [serde_json::json!({ "n": 1 })]);
    assert!(dead_letters(setup.group.clone()).await.is_empty());
    server.shutdown().await;
}
