//! Metrics through the `metrics` facade, exported with the Prometheus helper and read back
//! with a real Prometheus text parser; and the `on_call` hook.
//!
//! The Prometheus recorder is the process's one global recorder (`support::recorder`); this
//! test's services have names of their own, so other tests' calls never reach its series.

use crate::support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{prometheus::value, Reply, Scripted};
use sdk::{
    cache::CacheConfig, circuit_breaker::BreakerConfig, retry::RetryConfig, telemetry::CallOutcome,
    ServiceConfig, ServiceSdk,
};

type Seen = Arc<Mutex<Vec<(String, CallOutcome, u32, sdk::CacheStatus)>>>;

#[tokio::test(flavor = "multi_thread")]
async fn calls_retries_breakers_and_cache_are_counted() {
    let prometheus = support::recorder();
    let ok = Scripted::start(Reply::json(serde_json::json!({ "id": 1 }))).await;
    let flaky = Scripted::start(Reply::json(serde_json::json!(1))).await;
    flaky.then(Reply::status(503));
    let down = Scripted::start(Reply::status(500)).await;
    let calls: Seen = Arc::default();
    let sdk = metered_sdk(&ok.url, &flaky.url, &down.url, &calls);
    make_calls(&sdk).await;

    let samples = match support::prometheus::parse(&prometheus.render()) {
        Some(samples) => samples,
        None => return,
    };
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "sdk_call_duration_seconds_bucket" && l.contains("le=0.005")),
        "explicit buckets, not a summary"
    );
    let users_ok: &[&str] = &[
        "service=metered-users",
        "endpoint=/users/{id}",
        "method=GET",
        "outcome=success",
    ];
    let expected: [(&str, &[&str], f64); 10] = [
        ("sdk_calls_total", users_ok, 3.0),
        ("sdk_call_duration_seconds_count", users_ok, 3.0),
        (
            "sdk_cache_requests_total",
            &["service=metered-users", "result=hit"],
            2.0,
        ),
        (
            "sdk_cache_requests_total",
            &["service=metered-users", "result=miss"],
            1.0,
        ),
        ("sdk_attempts_total", &["service=metered-stock"], 2.0),
        ("sdk_retries_total", &["service=metered-stock"], 1.0),
        (
            "sdk_calls_total",
            &["service=metered-pay", "outcome=server_error"],
            2.0,
        ),
        (
            "sdk_calls_total",
            &["service=metered-pay", "outcome=circuit_open"],
            1.0,
        ),
        (
            "sdk_circuit_state",
            &["service=metered-pay", "endpoint=/charge"],
            2.0,
        ),
        (
            "sdk_circuit_transitions_total",
            &["service=metered-pay", "to=open"],
            1.0,
        ),
    ];
    for (name, labels, count) in expected {
        assert_eq!(value(&samples, name, labels), count, "{name} {labels:?}");
    }

    let calls = calls.lock().expect("lock");
    assert_eq!(calls.len(), 3 + 1 + 3);
    assert_eq!(calls[1].2, 0, "a cache hit sends no attempt");
    assert_eq!(calls[3].1, CallOutcome::Success);
    assert_eq!(calls[3].2, 2);
    assert_eq!(calls[6].1, CallOutcome::CircuitOpen);
}

/// Three services: one cached, one that needs a retry, one whose breaker opens; every call
/// recorded by the `on_call` hook into `calls`.
fn metered_sdk(ok: &str, flaky: &str, down: &str, calls: &Seen) -> ServiceSdk {
    let seen = calls.clone();
    ServiceSdk::builder()
        .service(
            "metered-users",
            ServiceConfig::new()
                .instance(ok)
                .cache(CacheConfig::enabled_for(Duration::from_secs(60))),
        )
        .service(
            "metered-stock",
            ServiceConfig::new()
                .instance(flaky)
                .retry(RetryConfig::new().max_attempts(3).backoff(
                    sdk::retry::ExponentialBackoff::new(
                        Duration::from_millis(1),
                        Duration::from_millis(2),
                    ),
                )),
        )
        .service(
            "metered-pay",
            ServiceConfig::new()
                .instance(down)
                .retry(RetryConfig::none())
                .circuit_breaker(BreakerConfig::new().failure_threshold(2)),
        )
        .on_call(move |call| {
            seen.lock().expect("lock").push((
                call.service.to_owned(),
                call.outcome,
                call.attempts,
                call.cache,
            ));
        })
        .build()
        .expect("valid")
}

/// Three calls to the cached service, one retried call, three to the failing one.
async fn make_calls(sdk: &ServiceSdk) {
    let users = sdk.get_client("metered-users");
    for _ in 0..3 {
        let _: serde_json::Value = users
            .get("/users/1")
            .endpoint("/users/{id}")
            .send()
            .await
            .expect("200");
    }
    let _: u32 = sdk
        .get_client("metered-stock")
        .get("/stock")
        .send()
        .await
        .expect("retried once");
    let pay = sdk.get_client("metered-pay");
    for _ in 0..3 {
        let _ = pay.post("/charge").send::<()>().await;
    }
}
