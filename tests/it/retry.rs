//! Retries against real servers: counts, schedule, idempotency, Retry-After, budget.

use crate::support;

use std::time::Duration;

use crate::support::{exact_retry, lenient_breaker, sdk_for, Reply, Scripted};
use sdk::{retry::BudgetConfig, RetryStop, ServiceConfig, ServiceError};

fn config(attempts: u32) -> ServiceConfig {
    ServiceConfig::new()
        .retry(exact_retry(attempts))
        .circuit_breaker(lenient_breaker())
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_and_stops_there() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "ok": true }))).await;
    server.then(Reply::status(503)).then(Reply::status(502));
    let sdk = sdk_for(&server.url, config(5));

    let response = sdk
        .get_client("svc")
        .get("/thing")
        .response()
        .await
        .expect("third attempt succeeds");
    assert_eq!(response.status(), 200);
    assert_eq!(response.attempts(), 3);
    assert_eq!(server.hits(), 3, "stopped at the first success");
}

#[tokio::test(start_paused = true)]
async fn uses_exactly_the_configured_attempts() {
    let server = Scripted::start(Reply::status(503).body("down")).await;
    let sdk = sdk_for(&server.url, config(4));

    let err = sdk
        .get_client("svc")
        .get("/thing")
        .send::<()>()
        .await
        .expect_err("always 503");
    assert_eq!(server.hits(), 4);
    assert_eq!(err.attempts(), 4);
    assert_eq!(
        err.status_code(),
        Some(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(err.body().map(|b| b.as_ref()), Some(&b"down"[..]));
    assert!(
        matches!(
            err,
            ServiceError::RetriesExhausted {
                stop: RetryStop::AttemptsExhausted,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("svc GET /thing"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn backoff_follows_the_schedule() {
    let server = Scripted::start(Reply::status(503)).await;
    let sdk = sdk_for(&server.url, config(4));

    let _ = sdk.get_client("svc").get("/thing").send::<()>().await;
    let times: Vec<_> = server.seen().iter().map(|s| s.at).collect();
    let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(400)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_within_the_schedule() {
    const CALLS: usize = 40;
    let server = Scripted::start(Reply::status(503)).await;
    let mut retry = sdk::retry::RetryConfig::default();
    // The default backoff under test; a budget wide enough for every retry of 40 calls.
    retry.budget.ratio = 10.0;
    let sdk = sdk_for(
        &server.url,
        ServiceConfig::new()
            .retry(retry)
            .circuit_breaker(lenient_breaker()),
    );

    for _ in 0..CALLS {
        let _ = sdk.get_client("svc").get("/thing").send::<()>().await;
    }
    let times: Vec<_> = server.seen().iter().map(|s| s.at).collect();
    assert_eq!(times.len(), CALLS * 3, "default: 3 attempts a call");
    // Per call: the wait before the second attempt, then before the third.
    let gaps = |retry: usize| -> Vec<Duration> {
        times
            .chunks(3)
            .map(|call| call[retry + 1] - call[retry])
            .collect()
    };
    for (retry, cap) in [(0, 100), (1, 200)] {
        let gaps = gaps(retry);
        let cap = Duration::from_millis(cap);
        assert!(
            gaps.iter().all(|g| *g <= cap),
            "under the cap {cap:?}: {gaps:?}"
        );
        // Full jitter: uniform on [0, cap], so spread out, about half the cap on average.
        let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
        assert!(distinct.len() >= CALLS / 2, "spread, not fixed: {gaps:?}");
        let mean = gaps.iter().sum::<Duration>() / u32::try_from(CALLS).unwrap_or(1);
        assert!(
            mean > cap / 4 && mean < cap * 3 / 4,
            "mean {mean:?} of waits up to {cap:?}: {gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_unless_it_opts_in() {
    let server = Scripted::start(Reply::status(503)).await;
    let sdk = sdk_for(&server.url, config(3));
    let client = sdk.get_client("svc");

    let err = client
        .post("/payments")
        .json(&serde_json::json!({"amount": 10}))
        .send::<()>()
        .await;
    assert_eq!(err.expect_err("503").attempts(), 1);
    assert_eq!(server.hits(), 1, "a POST is sent once");

    let _ = client.post("/payments").idempotent(true).send::<()>().await;
    assert_eq!(server.hits(), 4, "an idempotent POST is retried");

    let _ = client
        .post("/payments")
        .header("idempotency-key", "k-1")
        .send::<()>()
        .await;
    assert_eq!(
        server.hits(),
        7,
        "an Idempotency-Key makes a POST retryable"
    );
    let keys: Vec<_> = server.seen()[4..]
        .iter()
        .map(|s| s.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.iter().all(|k| k == "k-1"),
        "the same key on every attempt"
    );

    let _ = client.get("/orders").idempotent(false).send::<()>().await;
    assert_eq!(server.hits(), 8, "idempotent(false) forbids retries");
}

#[tokio::test(start_paused = true)]
async fn every_retry_resends_the_same_body() {
    let server = Scripted::start(Reply::status(503)).await;
    let sdk = sdk_for(&server.url, config(3));

    let _ = sdk
        .get_client("svc")
        .put("/doc")
        .json(&serde_json::json!({"v": [1, 2, 3]}))
        .send::<()>()
        .await;
    let bodies: Vec<_> = server.seen().iter().map(|s| s.body.clone()).collect();
    assert_eq!(bodies.len(), 3);
    assert!(bodies.iter().all(|b| b.as_ref() == br#"{"v":[1,2,3]}"#));
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_not_retried() {
    let server = Scripted::start(Reply::status(400)).await;
    let sdk = sdk_for(&server.url, config(3));
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("400");
    assert_eq!(err.status_code(), Some(http::StatusCode::BAD_REQUEST));
    assert_eq!(server.hits(), 1);

    server.set_fallback(Reply::status(429));
    let _ = sdk.get_client("svc").get("/x").send::<()>().await;
    assert_eq!(server.hits(), 2, "429 without Retry-After is not retried");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    server.then(Reply::status(503).header("retry-after", "2"));
    server.then(Reply::status(429).header("retry-after", "1"));
    let sdk = sdk_for(&server.url, config(3));

    let value: u32 = sdk
        .get_client("svc")
        .get("/x")
        .send()
        .await
        .expect("third attempt succeeds");
    assert_eq!(value, 1);
    let times: Vec<_> = server.seen().iter().map(|s| s.at).collect();
    assert_eq!(times[1] - times[0], Duration::from_secs(2));
    assert_eq!(times[2] - times[1], Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_cap_or_deadline_ends_the_call() {
    let server = Scripted::start(Reply::status(503).header("retry-after", "120")).await;
    let sdk = sdk_for(&server.url, config(3));
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("503");
    assert_eq!(server.hits(), 1, "a 2-minute Retry-After is not waited for");
    assert_eq!(
        err.status_code(),
        Some(http::StatusCode::SERVICE_UNAVAILABLE)
    );

    server.set_fallback(Reply::status(503).header("retry-after", "5"));
    let err = sdk
        .get_client("svc")
        .get("/x")
        .timeout(Duration::from_secs(3))
        .send::<()>()
        .await;
    assert_eq!(server.hits(), 2, "a wait past the deadline is not started");
    assert!(err.is_err());
}

#[tokio::test(start_paused = true)]
async fn budget_caps_retries_under_a_total_outage() {
    let server = Scripted::start(Reply::status(503)).await;
    let mut retry = exact_retry(3);
    retry.budget = BudgetConfig::new()
        .ratio(0.2)
        .min_per_second(0)
        .window(Duration::from_secs(10));
    let sdk = sdk_for(
        &server.url,
        ServiceConfig::new()
            .retry(retry)
            .circuit_breaker(lenient_breaker()),
    );
    let client = sdk.get_client("svc");

    let calls = 100;
    let mut budget_stops = 0;
    for _ in 0..calls {
        let err = client.get("/x").send::<()>().await.expect_err("outage");
        if matches!(
            err,
            ServiceError::RetriesExhausted {
                stop: RetryStop::BudgetExhausted,
                ..
            }
        ) || err.attempts() == 1
        {
            budget_stops += 1;
        }
    }
    let upstream = server.hits();
    // Without a budget this would be 300 requests; with 20 % it is about 120.
    assert!(
        upstream <= calls + calls / 5 + 1,
        "budget let {upstream} requests through"
    );
    assert!(upstream > calls, "some retries are allowed");
    assert!(budget_stops > 0);
}

#[tokio::test(start_paused = true)]
async fn connect_errors_are_retried_even_for_post() {
    let url = support::refused_url().await;
    let sdk = sdk_for(&url, config(3));
    let err = sdk
        .get_client("svc")
        .post("/payments")
        .send::<()>()
        .await
        .expect_err("refused");
    assert_eq!(
        err.attempts(),
        3,
        "nothing was sent, so retrying is safe: {err:?}"
    );
    assert!(
        matches!(
            err.last_attempt(),
            ServiceError::Transport { connect: true, .. }
        ),
        "{err:?}"
    );
}

/// The stop reason of a call that failed after one attempt.
fn first_attempt_stop(err: &ServiceError) -> Option<RetryStop> {
    match err {
        ServiceError::RetriesExhausted {
            attempts: 1,
            stop,
            last,
        } => {
            assert_eq!(
                last.status_code(),
                Some(http::StatusCode::SERVICE_UNAVAILABLE)
            );
            Some(*stop)
        }
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn why_retries_stopped_is_kept_when_they_stop_after_one_attempt() {
    let server = Scripted::start(Reply::status(503).header("retry-after", "3600")).await;
    let sdk = sdk_for(&server.url, config(3));
    let client = sdk.get_client("svc");
    let err = client.get("/x").send::<()>().await.expect_err("503");
    assert_eq!(
        first_attempt_stop(&err),
        Some(RetryStop::RetryAfterTooLong),
        "{err:?}"
    );

    server.set_fallback(Reply::status(503).header("retry-after", "5"));
    let err = client
        .get("/x")
        .timeout(Duration::from_secs(3))
        .send::<()>()
        .await
        .expect_err("503");
    assert_eq!(
        first_attempt_stop(&err),
        Some(RetryStop::DeadlineReached),
        "{err:?}"
    );

    let mut retry = exact_retry(3);
    retry.budget = BudgetConfig::new()
        .ratio(0.0)
        .min_per_second(0)
        .window(Duration::from_secs(10));
    let broke = sdk_for(
        &server.url,
        ServiceConfig::new()
            .retry(retry)
            .circuit_breaker(lenient_breaker()),
    );
    server.set_fallback(Reply::status(503));
    let err = broke
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("503");
    assert_eq!(
        first_attempt_stop(&err),
        Some(RetryStop::BudgetExhausted),
        "{err:?}"
    );

    // One attempt configured: a bare status, nothing was refused.
    let once = sdk_for(&server.url, config(1));
    let err = once
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("503");
    assert!(matches!(err, ServiceError::Status { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn ad_hoc_calls_take_owned_per_call_policies() {
    let server = Scripted::start(Reply::status(503)).await;
    let sdk = sdk_for(&server.url, config(4));
    let client = sdk.get_client("svc");

    // Built at run time (from a flag, a header...), not a `static`.
    let attempts = std::hint::black_box(2);
    let retry = sdk::RetryOverride::new(attempts, Duration::from_millis(10), 2.0);
    let err = client
        .get("/thing")
        .retry_policy(retry)
        .send::<()>()
        .await
        .expect_err("always 503");
    assert_eq!((err.attempts(), server.hits()), (2, 2));

    // An owned breaker setting for one endpoint: opens after a single failure.
    let breaker = sdk::circuit_breaker::BreakerConfig::new().failure_threshold(1);
    for _ in 0..2 {
        let _ = client
            .get("/fragile")
            .endpoint("/fragile")
            .retry_policy(sdk::RetryOverride::new(1, Duration::ZERO, 1.0))
            .circuit_breaker(breaker)
            .send::<()>()
            .await;
    }
    assert_eq!(
        server.hits(),
        3,
        "the second call was refused by the open breaker"
    );

    // An owned list of vary headers: each tenant has its own cache entry.
    server.set_fallback(Reply::json(serde_json::json!({ "ok": true })));
    let vary = vec![String::from("x-tenant")];
    for tenant in ["a", "b", "a"] {
        let _ = client
            .get("/cached")
            .cache_ttl(Duration::from_secs(60))
            .vary_on(vary.clone())
            .header("x-tenant", tenant)
            .send::<serde_json::Value>()
            .await
            .expect("200");
    }
    assert_eq!(server.hits(), 5, "tenants a and b each fetched once");
}
