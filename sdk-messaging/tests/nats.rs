//! The NATS transport against the machine's NATS server (127.0.0.1:4222, JetStream on):
//! request/reply, events, wildcards, headers and correlation ids, failures within the
//! deadline, redeliveries and dead letters.
#![cfg(feature = "nats")]

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use sdk::{balance::NoInstanceReason, http::StatusCode, ServiceError, ServiceResult};
use sdk_messaging::{
    handler_error, MessageContext, Messaging, MessagingConfig, NatsSettings, ServerOptions,
    TransportKind,
};
use serde::{Deserialize, Serialize};

const NATS: &str = "127.0.0.1:4222";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: String,
    name: String,
}

/// A connection with streams and subjects of its own, so tests never meet.
struct Setup {
    messaging: Messaging,
    /// Prefix of this test's patterns.
    ns: String,
    settings: NatsSettings,
}

impl Setup {
    fn pattern(&self, rest: &str) -> String {
        format!("{}.{rest}", self.ns)
    }

    /// Deletes this test's streams.
    async fn cleanup(self) {
        let client = async_nats::connect(NATS).await.expect("nats");
        let jetstream = async_nats::jetstream::new(client);
        let _ = jetstream.delete_stream(&self.settings.stream).await;
        let _ = jetstream
            .delete_stream(&self.settings.dead_letter_stream)
            .await;
    }

    /// The dead letters stored so far: (pattern, reason, payload).
    async fn dead_letters(&self) -> Vec<(String, String, String)> {
        let client = async_nats::connect(NATS).await.expect("nats");
        let jetstream = async_nats::jetstream::new(client);
        let Ok(stream) = jetstream
            .get_stream(&self.settings.dead_letter_stream)
            .await
        else {
            return Vec::new();
        };
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .expect("an ephemeral consumer");
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("fetch");
        let mut found = Vec::new();
        while let Some(Ok(message)) = batch.next().await {
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            found.push((
                header(sdk_messaging::headers::DEAD_PATTERN),
                header(sdk_messaging::headers::DEAD_REASON),
                String::from_utf8_lossy(&message.payload).into_owned(),
            ));
        }
        found
    }
}

async fn setup(timeout: Duration) -> Option<Setup> {
    support::broker_at("NATS", NATS).await?;
    let id = support::unique("t");
    let settings = NatsSettings::new().streams(
        &format!("SDKTEST_{id}"),
        &format!("ev{id}"),
        &format!("SDKTEST_DEAD_{id}"),
        &format!("dead{id}"),
    );
    let config = MessagingConfig::new(TransportKind::Nats, format!("nats://{NATS}"))
        .timeout(timeout)
        .nats(settings.clone());
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    Some(Setup {
        messaging,
        ns: format!("u{id}"),
        settings,
    })
}

#[tokio::test]
async fn a_send_is_answered_with_the_correlation_id_and_headers_passed() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let seen: Arc<Mutex<Vec<MessageContext>>> = Arc::default();
    let sink = seen.clone();
    let server = setup
        .messaging
        .server("user-service")
        .message_pattern(
            &setup.pattern("user.create"),
            move |user: NewUser, context: MessageContext| {
                sink.lock().expect("lock").push(context.clone());
                async move {
                    Ok(User {
                        id: context.correlation_id.clone(),
                        name: user.name,
                    })
                }
            },
        )
        .start()
        .await
        .expect("started");
    let client = setup.messaging.client();
    let user: User = client
        .message(
            &setup.pattern("user.create"),
            &NewUser {
                name: "John".into(),
            },
        )
        .correlation_id("corr-42")
        .header("x-tenant", "acme")
        .urgency(sdk_messaging::Urgency::High)
        .send()
        .await
        .expect("answered");
    assert_eq!(
        user,
        User {
            id: "corr-42".into(),
            name: "John".into()
        }
    );
    let plain: User = client
        .send(
            &setup.pattern("user.create"),
            &NewUser { name: "Ada".into() },
        )
        .await
        .expect("answered");
    assert_eq!(
        plain.id.len(),
        32,
        "a correlation id is drawn when none is given"
    );

    let contexts = seen.lock().expect("lock").clone();
    assert_eq!(contexts.len(), 2);
    let first = &contexts[0];
    assert_eq!(first.header("x-tenant"), Some("acme"));
    assert_eq!(first.urgency, sdk_messaging::Urgency::High);
    assert_eq!(first.pattern.as_str(), setup.pattern("user.create"));
    assert_eq!(first.message_id.len(), 32);
    assert!(
        first.header("traceparent").is_some(),
        "the trace context travels"
    );
    assert!(first.header("user-agent").is_none());
    server.shutdown().await;
    setup.cleanup().await;
}

#[tokio::test]
async fn no_responder_a_slow_one_and_a_failing_one_end_in_typed_errors() {
    let Some(setup) = setup(Duration::from_millis(800)).await else {
        return;
    };
    let client = setup.messaging.client();

    let started = Instant::now();
    let err = client
        .send::<_, User>(
            &setup.pattern("nobody.listens"),
            &NewUser { name: "x".into() },
        )
        .await
        .expect_err("no responder");
    assert!(
        matches!(
            &err,
            ServiceError::NoHealthyInstance {
                reason: NoInstanceReason::NoResponder,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "NATS said so at once, not at the deadline"
    );

    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (slow_calls, failing_calls) = (calls.clone(), calls.clone());
    let server = setup
        .messaging
        .server("svc")
        .message_pattern(&setup.pattern("slow"), move |_: serde_json::Value, _| {
            slow_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(())
            }
        })
        .message_pattern(&setup.pattern("refuse"), |_: serde_json::Value, _| async {
            Err::<(), _>(handler_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no such product",
            ))
        })
        .message_pattern(&setup.pattern("flaky"), move |_: serde_json::Value, _| {
            failing_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err::<(), _>(handler_error(StatusCode::SERVICE_UNAVAILABLE, "db down")) }
        })
        .message_pattern(&setup.pattern("typed"), |user: NewUser, _| async move {
            Ok::<_, ServiceError>(user)
        })
        .start()
        .await
        .expect("started");

    let started = Instant::now();
    let err = client
        .send::<_, ()>(&setup.pattern("slow"), &serde_json::json!({}))
        .await
        .expect_err("past the deadline");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the deadline held"
    );

    let err = client
        .send::<_, ()>(&setup.pattern("refuse"), &serde_json::json!({}))
        .await
        .expect_err("refused");
    assert_eq!(err.status_code(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert!(String::from_utf8_lossy(err.body().expect("a body")).contains("no such product"));

    let err = client
        .send::<_, ()>(&setup.pattern("typed"), &serde_json::json!({ "nom": 1 }))
        .await
        .expect_err("does not decode");
    assert_eq!(err.status_code(), Some(StatusCode::BAD_REQUEST));

    calls.store(0, std::sync::atomic::Ordering::SeqCst);
    let err = client
        .message(&setup.pattern("flaky"), &serde_json::json!({}))
        .send::<()>()
        .await
        .expect_err("failing");
    assert_eq!(err.status_code(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a send is not repeated"
    );
    let err = client
        .message(&setup.pattern("flaky"), &serde_json::json!({}))
        .idempotent(true)
        .send::<()>()
        .await
        .expect_err("failing");
    assert_eq!(err.attempts(), 3, "{err}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "an idempotent one is"
    );
    server.shutdown().await;
    setup.cleanup().await;
}

#[tokio::test]
async fn events_reach_the_most_specific_handler_once_each() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    type Seen = Arc<Mutex<Vec<(String, String)>>>;
    let seen: Seen = Arc::default();
    let record = |seen: &Seen, label: &'static str| {
        let seen = seen.clone();
        move |event: serde_json::Value, context: MessageContext| {
            seen.lock().expect("lock").push((
                label.to_owned(),
                format!("{} {}", context.subject, event["n"]),
            ));
            async { Ok(()) }
        }
    };
    let server = setup
        .messaging
        .server("inventory")
        .event_pattern(&setup.pattern("order.placed"), record(&seen, "exact"))
        .event_pattern(&setup.pattern("order.*"), record(&seen, "star"))
        .event_pattern(&setup.pattern("order.#"), record(&seen, "hash"))
        .start()
        .await
        .expect("started");
    let client = setup.messaging.client();
    for (n, rest) in ["order.placed", "order.shipped", "order.eu.placed", "order"]
        .iter()
        .enumerate()
    {
        client
            .emit(&setup.pattern(rest), &serde_json::json!({ "n": n }))
            .await
            .expect("stored");
    }
    wait_for(|| seen.lock().expect("lock").len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut handled = seen.lock().expect("lock").clone();
    handled.sort();
    let ns = &setup.ns;
    assert_eq!(
        handled,
        [
            ("exact".to_owned(), format!("{ns}.order.placed 0")),
            ("hash".to_owned(), format!("{ns}.order 3")),
            ("hash".to_owned(), format!("{ns}.order.eu.placed 2")),
            ("star".to_owned(), format!("{ns}.order.shipped 1")),
        ]
    );
    server.shutdown().await;
    setup.cleanup().await;
}

#[tokio::test]
async fn failed_events_come_back_and_bad_ones_go_to_the_dead_letters() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let attempts: Arc<Mutex<Vec<u32>>> = Arc::default();
    let sink = attempts.clone();
    let handled: Arc<Mutex<Vec<u64>>> = Arc::default();
    let done = handled.clone();
    #[derive(Deserialize)]
    struct Placed {
        order: u64,
    }
    let options = ServerOptions::new()
        .backoff(sdk::retry::ExponentialBackoff::new(
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .max_attempts(3);
    let server = setup
        .messaging
        .server("billing")
        .options(options)
        .event_pattern(
            &setup.pattern("flaky"),
            move |_: serde_json::Value, context: MessageContext| {
                sink.lock().expect("lock").push(context.attempt);
                async move {
                    if context.attempt < 3 {
                        Err(handler_error(StatusCode::SERVICE_UNAVAILABLE, "not yet"))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .event_pattern(&setup.pattern("placed"), move |event: Placed, _| {
            done.lock().expect("lock").push(event.order);
            async { Ok(()) }
        })
        .event_pattern(&setup.pattern("refused"), |_: serde_json::Value, _| async {
            Err(handler_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown customer",
            ))
        })
        .start()
        .await
        .expect("started");
    let client = setup.messaging.client();
    client
        .emit(&setup.pattern("flaky"), &serde_json::json!({}))
        .await
        .expect("stored");
    client
        .emit(
            &setup.pattern("placed"),
            &serde_json::json!({ "order": "not a number" }),
        )
        .await
        .expect("stored");
    client
        .emit(&setup.pattern("placed"), &serde_json::json!({ "order": 7 }))
        .await
        .expect("stored");
    client
        .emit(
            &setup.pattern("refused"),
            &serde_json::json!({ "customer": 1 }),
        )
        .await
        .expect("stored");
    wait_for(|| {
        attempts.lock().expect("lock").len() >= 3 && !handled.lock().expect("lock").is_empty()
    })
    .await;
    assert_eq!(
        *attempts.lock().expect("lock"),
        [1, 2, 3],
        "delivered again until it succeeded"
    );
    assert_eq!(
        *handled.lock().expect("lock"),
        [7],
        "the consumer went on past the bad one"
    );

    let mut dead = Vec::new();
    for _ in 0..50 {
        dead = setup.dead_letters().await;
        if dead.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dead.sort();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let (pattern, reason, payload) = &dead[0];
    assert_eq!(pattern, &setup.pattern("placed"));
    assert!(
        reason.contains("does not decode") && reason.contains("invalid type"),
        "{reason}"
    );
    assert!(payload.contains("not a number"));
    assert_eq!(dead[1].0, setup.pattern("refused"));
    assert!(
        dead[1].1.contains("unknown customer"),
        "a 4xx is not retried: {}",
        dead[1].1
    );
    server.shutdown().await;
    setup.cleanup().await;
}

#[tokio::test]
async fn a_broker_that_is_not_there_is_a_typed_error() {
    let port = support::free_port();
    let config = MessagingConfig::new(
        TransportKind::Nats,
        format!("nats://user:hunter2@127.0.0.1:{port}"),
    );
    let err = Messaging::connect("events", &config)
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(
        matches!(err, sdk_messaging::MessagingError::Broker(_)),
        "{err:?}"
    );
    assert!(text.contains("could not connect"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "credentials are never printed: {text}"
    );
    assert!(!format!("{config:?}").contains("hunter2"));
}

async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not done within 5 s");
}

/// Keeps the typed-result helper in use so the signature checks compile either way.
#[allow(dead_code)]
fn _compiles(_: ServiceResult<()>) {}
