//! User middleware, tower layers and the on_error hook.

use crate::support;

use std::sync::{Arc, Mutex};

use crate::support::{once, Reply, Scripted};
use sdk::{ServiceConfig, ServiceSdk};

#[tokio::test(start_paused = true)]
async fn closure_middleware_runs_on_every_attempt() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    server.then(Reply::status(503));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let sdk = ServiceSdk::builder()
        .service(
            "svc",
            ServiceConfig::new()
                .retry(support::exact_retry(2))
                .instance(&server.url),
        )
        .middleware(move |mut request, next| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(request.uri().to_string());
                request.headers_mut().insert(
                    "authorization",
                    http::HeaderValue::from_static("Bearer s3cret"),
                );
                next.run(request).await
            }
        })
        .build()
        .expect("valid");
    let value: u32 = sdk
        .get_client("svc")
        .get("/x")
        .send()
        .await
        .expect("second attempt");
    assert_eq!(value, 1);
    assert_eq!(calls.lock().expect("lock").len(), 2, "once per attempt");
    assert!(
        calls.lock().expect("lock")[0].starts_with(&server.url),
        "sees the absolute URI"
    );
    assert!(server
        .seen()
        .iter()
        .all(|s| s.headers["authorization"] == "Bearer s3cret"));
}

#[tokio::test(start_paused = true)]
async fn any_tower_layer_can_wrap_the_transport() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let sdk = ServiceSdk::builder()
        .service("svc", once().instance(&server.url))
        .layer(tower::util::MapRequestLayer::new(
            |mut request: sdk::transport::StreamRequest| {
                request
                    .headers_mut()
                    .insert("x-from-layer", http::HeaderValue::from_static("yes"));
                request
            },
        ))
        .build()
        .expect("valid");
    sdk.get_client("svc")
        .get("/x")
        .send::<u32>()
        .await
        .expect("ok");
    assert_eq!(server.seen()[0].headers["x-from-layer"], "yes");
}

#[tokio::test(start_paused = true)]
async fn on_error_gets_the_error_and_its_context() {
    let server = Scripted::start(Reply::status(503)).await;
    let reported = Arc::new(Mutex::new(Vec::new()));
    let sink = reported.clone();
    let sdk = ServiceSdk::builder()
        .service(
            "svc",
            ServiceConfig::new()
                .retry(support::exact_retry(3))
                .instance(&server.url),
        )
        .on_error(move |err, context| {
            sink.lock().expect("lock").push((
                err.status_code(),
                context.service.to_string(),
                context.endpoint.to_string(),
                context.attempts,
            ));
        })
        .build()
        .expect("valid");
    let _ = sdk.get_client("svc").get("/orders/1").send::<()>().await;
    let _ = sdk.get_client("svc").get("http://evil/").send::<()>().await;
    let reported = reported.lock().expect("lock").clone();
    assert_eq!(reported.len(), 2);
    assert_eq!(
        reported[0],
        (
            Some(http::StatusCode::SERVICE_UNAVAILABLE),
            "svc".into(),
            "GET /orders/1".into(),
            3
        )
    );
    assert_eq!(reported[1].1, "svc", "invalid requests are reported too");
}

#[tokio::test(start_paused = true)]
async fn a_middleware_error_is_its_own_and_touches_no_accounting() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let failing = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicUsize::new(0));
    let (fail, count) = (failing.clone(), runs.clone());
    let sdk = ServiceSdk::builder()
        .service(
            "svc",
            ServiceConfig::new()
                .retry(support::exact_retry(3))
                .instance(&server.url),
        )
        .middleware(move |request, next| {
            let (fail, count) = (fail.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return Err("no signing key loaded".into());
                }
                next.run(request).await
            }
        })
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    for _ in 0..10 {
        let err = client
            .get("/x")
            .send::<u32>()
            .await
            .expect_err("middleware fails");
        assert!(
            matches!(&err, sdk::ServiceError::Middleware { .. }),
            "its own variant: {err:?}"
        );
        assert!(err.to_string().contains("no signing key loaded"), "{err}");
        assert!(!err.is_retryable());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 10, "not retried");
    assert_eq!(server.hits(), 0);
    for circuit in client.circuit_state() {
        assert_eq!(circuit.state, sdk::circuit_breaker::CircuitState::Closed);
        assert_eq!(circuit.total_failures, 0, "not counted by the breaker");
    }
    // The instance was not charged (five failures would have ejected it).
    failing.store(false, Ordering::SeqCst);
    let value: u32 = client.get("/x").send().await.expect("served");
    assert_eq!(value, 1);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_transport_error_passed_on_by_middleware_stays_a_transport_error() {
    let url = support::refused_url().await;
    let sdk = ServiceSdk::builder()
        .service("svc", once().instance(&url))
        .middleware(|request, next| async move { next.run(request).await })
        .build()
        .expect("valid");
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<u32>()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, sdk::ServiceError::Transport { connect: true, .. }),
        "{err:?}"
    );
}
