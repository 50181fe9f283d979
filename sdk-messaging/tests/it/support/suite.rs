//! The behaviour every transport must show, as checks a transport's test file runs over
//! its own connection: request/reply with headers and correlation ids, typed failures
//! within the deadline, events to the most specific handler, redeliveries and dead letters.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use sdk::{balance::NoInstanceReason, http::StatusCode, ServiceError};
use sdk_messaging::{handler_error, MessageContext, Messaging, ServerOptions, Urgency};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
}

/// A dead letter as the transport stored it: (pattern, reason, payload).
pub type DeadLetter = (String, String, String);

/// `send` answered with the correlation id, headers and urgency passed to the handler.
pub async fn sends_carry_headers_and_correlation_ids(messaging: &Messaging, ns: &str, group: &str) {
    let pattern = format!("{ns}.user.create");
    let seen: Arc<Mutex<Vec<MessageContext>>> = Arc::default();
    let sink = seen.clone();
    let server = messaging
        .server(group)
        .message_pattern(&pattern, move |user: NewUser, context: MessageContext| {
            sink.lock().expect("lock").push(context.clone());
            let inherited = sdk::deadline::current();
            async move {
                // Calls the handler makes end by the caller's deadline.
                assert!(
                    inherited.is_some(),
                    "the handler runs under the caller's deadline"
                );
                Ok(User {
                    id: context.correlation_id.clone(),
                    name: user.name,
                })
            }
        })
        .start()
        .await
        .expect("started");
    let client = messaging.client();
    let user: User = client
        .message(
            &pattern,
            &NewUser {
                name: "John".into(),
            },
        )
        .correlation_id("corr-42")
        .header("x-tenant", "acme")
        .urgency(Urgency::High)
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
        .send(&pattern, &NewUser { name: "Ada".into() })
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
    assert_eq!(first.urgency, Urgency::High);
    assert_eq!(first.pattern.as_str(), pattern);
    assert_eq!(first.message_id.len(), 32);
    assert!(
        first.header("traceparent").is_some(),
        "the trace context travels"
    );
    assert!(first.header("user-agent").is_none());
    let left: u64 = first
        .header("x-request-deadline")
        .expect("a send carries the time its caller has left")
        .parse()
        .expect("milliseconds");
    assert!(left > 0 && left <= 10_000, "{left} ms");
    let second = &contexts[1];
    assert_eq!(
        second.correlation_id, second.message_id,
        "without a correlation id the message's id stands in"
    );
    assert_eq!(second.urgency, Urgency::Medium);
    assert!(
        second.header("content-type").is_none(),
        "nothing a reader assumes anyway is carried"
    );
    server.shutdown().await;
}

/// No responder: the broker says so at once, well before the 4 s deadline.
async fn no_responder_is_said_at_once(client: &sdk_messaging::MessageClient, ns: &str) {
    let started = Instant::now();
    let err = client
        .send::<_, User>(
            &format!("{ns}.nobody.listens"),
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
    // The deadline is 4 s: the broker's word comes well before it.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the broker said so at once, not at the deadline: {:?}",
        started.elapsed()
    );
}

/// A server with a slow handler (held by `release`), a refusing one, a failing one (both
/// counted in `calls`) and a typed one.
async fn failing_server(
    messaging: &Messaging,
    ns: &str,
    group: &str,
    calls: &Arc<AtomicUsize>,
    release: &Arc<tokio::sync::Semaphore>,
) -> sdk_messaging::RunningServer {
    let (slow, failing, held) = (calls.clone(), calls.clone(), release.clone());
    messaging
        .server(group)
        .message_pattern(&format!("{ns}.slow"), move |_: serde_json::Value, _| {
            slow.fetch_add(1, Ordering::SeqCst);
            let held = held.clone();
            async move {
                let _ = held.acquire().await;
                Ok(())
            }
        })
        .message_pattern(&format!("{ns}.refuse"), |_: serde_json::Value, _| async {
            Err::<(), _>(handler_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no such product",
            ))
        })
        .message_pattern(&format!("{ns}.flaky"), move |_: serde_json::Value, _| {
            failing.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(handler_error(StatusCode::SERVICE_UNAVAILABLE, "db down")) }
        })
        .message_pattern(&format!("{ns}.typed"), |user: NewUser, _| async move {
            Ok::<_, ServiceError>(user)
        })
        .start()
        .await
        .expect("started")
}

/// No responder, a slow one, a refusing one, a failing one: each a typed error, within the
/// deadline (`messaging`'s deadline must be 4 s).
pub async fn failures_are_typed_and_bounded(messaging: &Messaging, ns: &str, group: &str) {
    let client = messaging.client();
    no_responder_is_said_at_once(&client, ns).await;
    let calls = Arc::new(AtomicUsize::new(0));
    // The slow handler answers only once the test lets it, long after the deadline.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let server = failing_server(messaging, ns, group, &calls, &release).await;
    let started = Instant::now();
    let err = client
        .send::<_, ()>(&format!("{ns}.slow"), &serde_json::json!({}))
        .await
        .expect_err("past the deadline");
    assert!(err.is_timeout(), "{err:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(8),
        "the 4 s deadline held: {elapsed:?}"
    );
    release.add_permits(1000);

    let err = client
        .send::<_, ()>(&format!("{ns}.refuse"), &serde_json::json!({}))
        .await
        .expect_err("refused");
    assert_eq!(err.status_code(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert!(String::from_utf8_lossy(err.body().expect("a body")).contains("no such product"));

    let err = client
        .send::<_, ()>(&format!("{ns}.typed"), &serde_json::json!({ "nom": 1 }))
        .await
        .expect_err("does not decode");
    assert_eq!(err.status_code(), Some(StatusCode::BAD_REQUEST));

    calls.store(0, Ordering::SeqCst);
    let err = client
        .message(&format!("{ns}.flaky"), &serde_json::json!({}))
        .send::<()>()
        .await
        .expect_err("failing");
    assert_eq!(err.status_code(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a send is not repeated");
    let err = client
        .message(&format!("{ns}.flaky"), &serde_json::json!({}))
        .idempotent(true)
        .send::<()>()
        .await
        .expect_err("failing");
    assert_eq!(err.attempts(), 3, "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 4, "an idempotent one is");
    server.shutdown().await;
}

/// Four events, three overlapping handlers: each event handled once, by the most specific.
pub async fn events_reach_the_most_specific_handler(messaging: &Messaging, ns: &str, group: &str) {
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
    let server = messaging
        .server(group)
        .event_pattern(&format!("{ns}.order.placed"), record(&seen, "exact"))
        .event_pattern(&format!("{ns}.order.*"), record(&seen, "star"))
        .event_pattern(&format!("{ns}.order.#"), record(&seen, "hash"))
        .start()
        .await
        .expect("started");
    let client = messaging.client();
    for (n, rest) in ["order.placed", "order.shipped", "order.eu.placed", "order"]
        .iter()
        .enumerate()
    {
        client
            .emit(&format!("{ns}.{rest}"), &serde_json::json!({ "n": n }))
            .await
            .expect("stored");
    }
    wait_for(|| seen.lock().expect("lock").len() >= 4)
        .await
        .unwrap_or_else(|| panic!("handled only {:?}", seen.lock().expect("lock")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut handled = seen.lock().expect("lock").clone();
    handled.sort();
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
}

/// The dead letters `dead` reads, polled every 100 ms until there are `n` (at most `tries`
/// times).
async fn dead_letters<F, Fut>(dead: &F, n: usize, tries: usize) -> Vec<DeadLetter>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<DeadLetter>>,
{
    let mut letters = Vec::new();
    for _ in 0..tries {
        letters.extend(dead().await);
        if letters.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    letters
}

/// A server whose `flaky` handler fails its first two attempts (each counted in
/// `attempts`), whose `placed` handler records the order, and whose `refused` one refuses.
async fn retrying_server(
    messaging: &Messaging,
    ns: &str,
    group: &str,
    attempts: &Arc<Mutex<Vec<u32>>>,
    handled: &Arc<Mutex<Vec<u64>>>,
) -> sdk_messaging::RunningServer {
    #[derive(Deserialize)]
    struct Placed {
        order: u64,
    }
    let (sink, done) = (attempts.clone(), handled.clone());
    let options = ServerOptions::new()
        .backoff(sdk::retry::ExponentialBackoff::new(
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .max_attempts(3);
    messaging
        .server(group)
        .options(options)
        .event_pattern(
            &format!("{ns}.flaky"),
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
        .event_pattern(&format!("{ns}.placed"), move |event: Placed, _| {
            done.lock().expect("lock").push(event.order);
            async { Ok(()) }
        })
        .event_pattern(&format!("{ns}.refused"), |_: serde_json::Value, _| async {
            Err(handler_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown customer",
            ))
        })
        .start()
        .await
        .expect("started")
}

/// A failing event comes back until it succeeds; an undecodable one and a refused one go
/// to the dead letters with the reason, and the consumer goes on. `dead` reads them.
pub async fn failed_events_come_back_and_bad_ones_die<F, Fut>(
    messaging: &Messaging,
    ns: &str,
    group: &str,
    dead: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<DeadLetter>>,
{
    let attempts: Arc<Mutex<Vec<u32>>> = Arc::default();
    let handled: Arc<Mutex<Vec<u64>>> = Arc::default();
    let server = retrying_server(messaging, ns, group, &attempts, &handled).await;
    let client = messaging.client();
    for (rest, payload) in [
        ("flaky", serde_json::json!({})),
        ("placed", serde_json::json!({ "order": "not a number" })),
        ("placed", serde_json::json!({ "order": 7 })),
        ("refused", serde_json::json!({ "customer": 1 })),
    ] {
        client
            .emit(&format!("{ns}.{rest}"), &payload)
            .await
            .expect("stored");
    }
    wait_for(|| {
        attempts.lock().expect("lock").len() >= 3 && !handled.lock().expect("lock").is_empty()
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "attempts {:?}, handled {:?}",
            attempts.lock().expect("lock"),
            handled.lock().expect("lock")
        )
    });
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

    let mut letters = dead_letters(&dead, 2, 50).await;
    letters.sort();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let (pattern, reason, payload) = &letters[0];
    assert_eq!(pattern, &format!("{ns}.placed"));
    assert!(
        reason.contains("does not decode") && reason.contains("invalid type"),
        "{reason}"
    );
    assert!(payload.contains("not a number"));
    assert_eq!(letters[1].0, format!("{ns}.refused"));
    assert!(
        letters[1].1.contains("unknown customer"),
        "a 4xx is not retried: {}",
        letters[1].1
    );
    server.shutdown().await;
}

/// A panicking handler is a failed attempt, settled at once: with one message in flight
/// (prefetch 1), ten events whose first delivery panics are each handled once on their
/// second, one that always panics goes to the dead letters after its last attempt, and a
/// panicking request handler answers its caller with a 500 at once.
pub async fn panicking_handlers_are_failed_attempts<F, Fut>(
    messaging: &Messaging,
    ns: &str,
    group: &str,
    dead: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<DeadLetter>>,
{
    let handled: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let sink = handled.clone();
    let options = ServerOptions::new().prefetch(1).max_attempts(3).backoff(
        sdk::retry::ExponentialBackoff::new(Duration::from_millis(10), Duration::from_millis(30)),
    );
    let server = messaging
        .server(group)
        .options(options)
        .event_pattern(
            &format!("{ns}.once"),
            move |event: serde_json::Value, context: MessageContext| {
                if context.attempt == 1 {
                    panic!("first delivery of {event}");
                }
                sink.lock()
                    .expect("lock")
                    .push((event["n"].as_u64().unwrap_or_default(), context.attempt));
                async { Ok(()) }
            },
        )
        .event_pattern(&format!("{ns}.always"), |_: serde_json::Value, _| async {
            if true {
                panic!("always");
            }
            Ok(())
        })
        .message_pattern(&format!("{ns}.ask"), |_: serde_json::Value, _| async {
            if true {
                panic!("asked");
            }
            Ok(())
        })
        .start()
        .await
        .expect("started");
    let client = messaging.client();
    client
        .emit(&format!("{ns}.always"), &serde_json::json!({}))
        .await
        .expect("stored");
    for n in 0..10u64 {
        client
            .emit(&format!("{ns}.once"), &serde_json::json!({ "n": n }))
            .await
            .expect("stored");
    }
    wait_for(|| handled.lock().expect("lock").len() >= 10)
        .await
        .unwrap_or_else(|| panic!("handled only {:?}", handled.lock().expect("lock")));
    let mut seen = handled.lock().expect("lock").clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).map(|n| (n, 2)).collect::<Vec<_>>());

    let started = Instant::now();
    let err = client
        .send::<_, ()>(&format!("{ns}.ask"), &serde_json::json!({}))
        .await
        .expect_err("the handler panicked");
    assert_eq!(
        err.status_code(),
        Some(StatusCode::INTERNAL_SERVER_ERROR),
        "{err}"
    );
    assert!(String::from_utf8_lossy(err.body().expect("a body")).contains("panicked"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once, not at the deadline"
    );

    let letters = dead_letters(&dead, 1, 100).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, format!("{ns}.always"));
    assert!(
        letters[0].1.contains("panicked") && letters[0].1.contains("delivery 3"),
        "{}",
        letters[0].1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        handled.lock().expect("lock").len(),
        10,
        "none handled twice"
    );
    server.shutdown().await;
}

/// Two services handle the same events; one fails the first delivery of each. Its retries
/// reach it alone: the other, slower one handles each event exactly once (not saved by
/// remembering what it handled, which a slow handler, a restart or a second process
/// defeats).
pub async fn a_retry_reaches_only_the_group_that_failed(
    messaging: &Messaging,
    ns: &str,
    group: &str,
) {
    let pattern = format!("{ns}.shared");
    let failing_seen: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let fine_seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (a, b) = (failing_seen.clone(), fine_seen.clone());
    let options = ServerOptions::new().backoff(sdk::retry::ExponentialBackoff::new(
        Duration::from_millis(10),
        Duration::from_millis(30),
    ));
    let failing = messaging
        .server(&format!("{group}-a"))
        .options(options.clone())
        .event_pattern(
            &pattern,
            move |event: serde_json::Value, context: MessageContext| {
                a.lock()
                    .expect("lock")
                    .push((event["n"].as_u64().unwrap_or_default(), context.attempt));
                async move {
                    match context.attempt {
                        1 => Err(handler_error(StatusCode::SERVICE_UNAVAILABLE, "not yet")),
                        _ => Ok(()),
                    }
                }
            },
        )
        .start()
        .await
        .expect("started");
    let succeeding = messaging
        .server(&format!("{group}-b"))
        .options(options)
        .event_pattern(&pattern, move |event: serde_json::Value, _| {
            b.lock()
                .expect("lock")
                .push(event["n"].as_u64().unwrap_or_default());
            // Slower than the other group's retries: a retry that reached this group would
            // find the event not yet remembered as handled, and be handled again.
            async {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok(())
            }
        })
        .start()
        .await
        .expect("started");
    let client = messaging.client();
    for n in 0..10u64 {
        client
            .emit(&pattern, &serde_json::json!({ "n": n }))
            .await
            .expect("stored");
    }
    wait_for(|| {
        failing_seen.lock().expect("lock").len() >= 20
            && fine_seen.lock().expect("lock").len() >= 10
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "a {:?}, b {:?}",
            failing_seen.lock().expect("lock"),
            fine_seen.lock().expect("lock")
        )
    });
    // Long enough for a retry that leaked into the other group to be handled there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut fine = fine_seen.lock().expect("lock").clone();
    fine.sort_unstable();
    assert_eq!(
        fine,
        (0..10).collect::<Vec<_>>(),
        "each event once in the group that succeeded"
    );
    let mut failed = failing_seen.lock().expect("lock").clone();
    failed.sort_unstable();
    let expected: Vec<(u64, u32)> = (0..10).flat_map(|n| [(n, 1), (n, 2)]).collect();
    assert_eq!(failed, expected, "the failing group got its retries");
    failing.shutdown().await;
    succeeding.shutdown().await;
}

/// Bytes a foreign client wrote where the SDK's events go (`inject` writes them for a
/// pattern) are dead-lettered with a reason, never dropped, and the next event is handled.
pub async fn poison_is_dead_lettered<I, IFut, F, Fut>(
    messaging: &Messaging,
    ns: &str,
    group: &str,
    inject: I,
    dead: F,
) where
    I: Fn(String) -> IFut,
    IFut: Future<Output = ()>,
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<DeadLetter>>,
{
    #[derive(Deserialize)]
    struct Placed {
        order: u64,
    }
    let pattern = format!("{ns}.placed");
    let handled: Arc<Mutex<Vec<u64>>> = Arc::default();
    let done = handled.clone();
    let server = messaging
        .server(group)
        .event_pattern(&pattern, move |event: Placed, _| {
            done.lock().expect("lock").push(event.order);
            async { Ok(()) }
        })
        .start()
        .await
        .expect("started");
    inject(pattern.clone()).await;
    messaging
        .client()
        .emit(&pattern, &serde_json::json!({ "order": 7 }))
        .await
        .expect("stored");
    wait_for(|| !handled.lock().expect("lock").is_empty())
        .await
        .unwrap_or_else(|| panic!("the next event was not handled"));
    let mut letters = Vec::new();
    for _ in 0..50 {
        letters.extend(dead().await);
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (dead_pattern, reason, payload) = &letters[0];
    assert_eq!(dead_pattern, &pattern);
    assert!(!reason.is_empty(), "the dead letter says why");
    assert!(payload.contains(POISON), "kept as it came: {payload}");
    assert_eq!(*handled.lock().expect("lock"), [7]);
    server.shutdown().await;
}

/// What the injected poison holds.
pub const POISON: &str = "<<not an SDK message>>";

/// An event whose handler calls a service that is down (connections refused, then its
/// breaker open) is delivered again later without spending its attempts, for as long as
/// the outage lasts, and handled once the service is back: nothing is dead-lettered.
pub async fn a_target_down_defers_without_spending_attempts<F, Fut>(
    messaging: &Messaging,
    ns: &str,
    group: &str,
    dead: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<DeadLetter>>,
{
    // The target's address, with nothing listening on it yet.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let breaker = sdk::circuit_breaker::BreakerConfig::default()
        .failure_threshold(2)
        .open_duration(Duration::from_millis(300));
    let sdk = sdk::ServiceSdk::builder()
        .service(
            "stock",
            sdk::ServiceConfig::new()
                .instance(format!("http://{addr}"))
                .circuit_breaker(breaker),
        )
        .build()
        .expect("sdk");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let options =
        ServerOptions::new()
            .max_attempts(3)
            .backoff(sdk::retry::ExponentialBackoff::new(
                Duration::from_millis(20),
                Duration::from_millis(50),
            ));
    let server = messaging
        .server(group)
        .options(options)
        .event_pattern(
            &format!("{ns}.reserve"),
            move |event: serde_json::Value, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                let stock = sdk.get_client("stock");
                async move {
                    stock
                        .post("/reserve")
                        .json(&event)
                        .send::<serde_json::Value>()
                        .await
                        .map(drop)
                }
            },
        )
        .start()
        .await
        .expect("started");
    messaging
        .client()
        .emit(&format!("{ns}.reserve"), &serde_json::json!({ "sku": 1 }))
        .await
        .expect("stored");
    // Down for at least 2.5 s, many times what three attempts 20-50 ms apart would last,
    // and until it was tried more than its 3 attempts (none spent).
    let outage = Instant::now();
    assert!(
        super::poll::until(Duration::from_secs(20), || calls.load(Ordering::SeqCst) > 3).await,
        "tried more than its 3 attempts, none spent"
    );
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(outage.elapsed())).await;
    assert!(
        dead().await.is_empty(),
        "nothing dead-lettered during the outage"
    );
    let reserved: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = reserved.clone();
    let app = axum::Router::new().route(
        "/reserve",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            sink.lock().expect("lock").push(body);
            async { axum::Json(serde_json::json!({ "ok": true })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    wait_for(|| !reserved.lock().expect("lock").is_empty())
        .await
        .expect("handled once the service was back");
    assert_eq!(
        *reserved.lock().expect("lock"),
        [serde_json::json!({ "sku": 1 })]
    );
    assert!(dead().await.is_empty());
    server.shutdown().await;
}

/// A server that stops cleanly takes its requests' route with it: a `send` after it
/// fails with `NoResponder` at once, not at the caller's deadline (`messaging`'s must be
/// several seconds).
pub async fn a_stopped_server_means_no_responder_at_once(
    messaging: &Messaging,
    ns: &str,
    group: &str,
) {
    let pattern = format!("{ns}.ping");
    let server = messaging
        .server(group)
        .message_pattern(
            &pattern,
            |n: u64, _| async move { Ok::<_, ServiceError>(n) },
        )
        .start()
        .await
        .expect("started");
    let client = messaging.client();
    let answer: u64 = client.send(&pattern, &7u64).await.expect("answered");
    assert_eq!(answer, 7);
    server.shutdown().await;
    // The broker learns of the stop asynchronously (a consumer cancelled, a key removed).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let err = client
        .send::<_, u64>(&pattern, &8u64)
        .await
        .expect_err("nobody answers");
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
        started.elapsed() < Duration::from_secs(1),
        "at once, not at the deadline: {:?}",
        started.elapsed()
    );
}

/// Waits up to 10 s for `done`; `None` if it never was.
pub async fn wait_for(done: impl Fn() -> bool) -> Option<()> {
    super::poll::until(Duration::from_secs(10), done)
        .await
        .then_some(())
}

/// Connecting to `scheme://user:hunter2@127.0.0.1:<a free port>` fails with a typed error
/// that never shows the password, and so does the config's `Debug`.
pub async fn an_absent_broker_is_a_typed_error(
    transport: sdk_messaging::TransportKind,
    scheme: &str,
) {
    let port = super::free_port();
    let config = sdk_messaging::MessagingConfig::new(
        transport,
        format!("{scheme}://user:hunter2@127.0.0.1:{port}"),
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

/// The checks above, one `#[tokio::test]` each, for the transport of the module that calls
/// it. That module provides `setup(timeout) -> Option<Setup>` (a connection with names of
/// its own, `None` when the broker is absent), `Setup { messaging, ns, group, .. }` with
/// `cleanup(self)` and `dead_key(&self)`, and `dead_letters(dead_key)`, which reads what
/// this test's dead letters hold. `test` is the test attribute (`tokio::test`, or a
/// multi-threaded one for a client that blocks), `timeout` the connection's call timeout;
/// `kind` and `scheme` name the transport for the absent-broker check.
macro_rules! transport_suite {
    (test: $test:meta, timeout: $timeout:expr, kind: $kind:expr, scheme: $scheme:literal) => {
        $crate::support::suite::transport_suite!(@plain #[$test]
            a_send_is_answered_with_the_correlation_id_and_headers_passed,
            sends_carry_headers_and_correlation_ids, $timeout);
        // Bounded: the slow responder is given 4 s on every transport.
        $crate::support::suite::transport_suite!(@plain #[$test]
            no_responder_a_slow_one_and_a_failing_one_end_in_typed_errors,
            failures_are_typed_and_bounded, std::time::Duration::from_secs(4));
        $crate::support::suite::transport_suite!(@plain #[$test]
            events_reach_the_most_specific_handler_once_each,
            events_reach_the_most_specific_handler, $timeout);
        $crate::support::suite::transport_suite!(@plain #[$test]
            a_retry_reaches_only_the_group_that_failed,
            a_retry_reaches_only_the_group_that_failed, $timeout);
        // The transport's own deadline (Kafka's 10 s: a first answer waits for the new
        // server's group to be joined, seconds on a busy machine); "at once" is under 1 s.
        $crate::support::suite::transport_suite!(@plain #[$test]
            a_stopped_server_means_no_responder_at_once,
            a_stopped_server_means_no_responder_at_once, $timeout);
        $crate::support::suite::transport_suite!(@dead #[$test]
            failed_events_come_back_and_bad_ones_go_to_the_dead_letters,
            failed_events_come_back_and_bad_ones_die, $timeout);
        $crate::support::suite::transport_suite!(@dead #[$test]
            a_panicking_handler_is_a_failed_attempt_settled_at_once,
            panicking_handlers_are_failed_attempts, $timeout);
        $crate::support::suite::transport_suite!(@dead #[$test]
            a_target_down_defers_without_spending_attempts,
            a_target_down_defers_without_spending_attempts, $timeout);

        #[$test]
        async fn a_broker_that_is_not_there_is_a_typed_error() {
            $crate::support::suite::an_absent_broker_is_a_typed_error($kind, $scheme).await;
        }
    };
    (@plain #[$test:meta] $name:ident, $check:ident, $timeout:expr) => {
        #[$test]
        async fn $name() {
            let Some(setup) = setup($timeout).await else {
                return;
            };
            $crate::support::suite::$check(&setup.messaging, &setup.ns, &setup.group).await;
            setup.cleanup().await;
        }
    };
    (@dead #[$test:meta] $name:ident, $check:ident, $timeout:expr) => {
        #[$test]
        async fn $name() {
            let Some(setup) = setup($timeout).await else {
                return;
            };
            let key = setup.dead_key();
            $crate::support::suite::$check(&setup.messaging, &setup.ns, &setup.group, || {
                dead_letters(key.clone())
            })
            .await;
            setup.cleanup().await;
        }
    };
}
pub(crate) use transport_suite;
