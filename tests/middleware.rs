//! User middleware, tower layers and the on_error hook.

mod support;

use std::sync::{Arc, Mutex};

use sdk::{ServiceConfig, ServiceSdk};
use support::{once, Reply, Scripted};

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
            |mut request: sdk::transport::HttpRequest| {
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
