//! The breaker against a real server: closed → open → half-open → closed, no I/O while open.

use crate::support;

use std::time::Duration;

use crate::support::{sdk_for, Reply, Scripted};
use sdk::{
    circuit_breaker::{BreakerConfig, CircuitState},
    retry::RetryConfig,
    ServiceConfig, ServiceError,
};

fn config() -> ServiceConfig {
    ServiceConfig::new()
        .retry(RetryConfig::new().max_attempts(1))
        .circuit_breaker(
            BreakerConfig::new()
                .failure_threshold(3)
                .success_threshold(2)
                .open_duration(Duration::from_secs(30))
                .half_open_max_probes(1),
        )
}

#[tokio::test(start_paused = true)]
async fn closed_open_half_open_closed() {
    let server = Scripted::start(Reply::status(500)).await;
    let sdk = sdk_for(&server.url, config());
    let client = sdk.get_client("svc");

    for expected_failures in 1..=2 {
        let _ = client.get("/orders").send::<()>().await;
        let state = &client.circuit_state()[0];
        assert_eq!(state.endpoint, "GET /orders");
        assert_eq!(state.state, CircuitState::Closed);
        assert_eq!(state.consecutive_failures, expected_failures);
    }
    let _ = client.get("/orders").send::<()>().await;
    assert_eq!(client.circuit_state()[0].state, CircuitState::Open);
    assert_eq!(server.hits(), 3);

    // Open: refused without touching the network.
    for _ in 0..5 {
        let err = client.get("/orders").send::<()>().await.expect_err("open");
        assert!(err.is_circuit_open(), "{err:?}");
        assert!(
            matches!(err, ServiceError::CircuitOpen { retry_after, .. } if retry_after <= Duration::from_secs(30))
        );
    }
    assert_eq!(server.hits(), 3, "an open breaker sends nothing");
    assert_eq!(client.circuit_state()[0].rejected, 5);

    // Other endpoints have breakers of their own.
    server.set_fallback(Reply::json(serde_json::json!({})));
    client
        .get("/users")
        .send::<serde_json::Value>()
        .await
        .expect("separate breaker");

    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(client.circuit_state()[0].state, CircuitState::HalfOpen);
    client
        .get("/orders")
        .send::<serde_json::Value>()
        .await
        .expect("first probe");
    assert_eq!(
        client.circuit_state()[0].state,
        CircuitState::HalfOpen,
        "one success is not enough"
    );
    client
        .get("/orders")
        .send::<serde_json::Value>()
        .await
        .expect("second probe");
    assert_eq!(client.circuit_state()[0].state, CircuitState::Closed);
    assert_eq!(client.circuit_state()[0].consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_again() {
    let server = Scripted::start(Reply::status(503)).await;
    let sdk = sdk_for(&server.url, config());
    let client = sdk.get_client("svc");
    for _ in 0..3 {
        let _ = client.get("/x").send::<()>().await;
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    let _ = client.get("/x").send::<()>().await;
    assert_eq!(server.hits(), 4, "one probe went through");
    assert_eq!(client.circuit_state()[0].state, CircuitState::Open);
    assert!(client
        .get("/x")
        .send::<()>()
        .await
        .expect_err("open")
        .is_circuit_open());
    assert_eq!(server.hits(), 4);
}

#[tokio::test(start_paused = true)]
async fn client_errors_do_not_open_the_breaker() {
    let server = Scripted::start(Reply::status(404)).await;
    let sdk = sdk_for(&server.url, config());
    let client = sdk.get_client("svc");
    for _ in 0..10 {
        let _ = client.get("/missing").send::<()>().await;
    }
    assert_eq!(server.hits(), 10);
    assert_eq!(client.circuit_state()[0].state, CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn named_endpoints_share_one_breaker() {
    let server = Scripted::start(Reply::status(500)).await;
    let sdk = sdk_for(&server.url, config());
    let client = sdk.get_client("svc");
    for id in 1..=3 {
        let _ = client
            .get(&format!("/orders/{id}"))
            .endpoint("/orders/{id}")
            .send::<()>()
            .await;
    }
    let err = client
        .get("/orders/4")
        .endpoint("/orders/{id}")
        .send::<()>()
        .await
        .expect_err("open");
    assert!(err.is_circuit_open());
    assert_eq!(client.circuit_state().len(), 1);
    assert_eq!(client.circuit_state()[0].endpoint, "GET /orders/{id}");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_breaker_opens() {
    let server = Scripted::start(Reply::status(503)).await;
    let sdk = sdk_for(&server.url, config().retry(support::exact_retry(10)));
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("failing");
    assert_eq!(
        server.hits(),
        3,
        "the breaker opened after 3 failures and ended the retries"
    );
    assert!(err.is_circuit_open(), "{err:?}");
}
