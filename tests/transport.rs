//! The transports: HTTP/2 with prior knowledge over the built-in hyper transport, and the
//! optional reqwest transport.

mod support;

use sdk::{
    retry::RetryConfig, transport::TransportConfig, ServiceConfig, ServiceError, ServiceSdk,
};
use support::{Reply, Scripted};

fn once() -> ServiceConfig {
    ServiceConfig::new().retry(RetryConfig {
        max_attempts: 1,
        ..Default::default()
    })
}

#[tokio::test]
async fn http2_prior_knowledge() {
    use axum::{http::Version, routing::get, Router};
    let url = support::serve(Router::new().route(
        "/version",
        get(|version: Version| async move { format!("{version:?}") }),
    ))
    .await;
    let sdk = ServiceSdk::builder()
        .transport_config(TransportConfig {
            http2_prior_knowledge: true,
            ..Default::default()
        })
        .service("svc", once().instance(&url))
        .build()
        .expect("valid");
    let response = sdk
        .get_client("svc")
        .get("/version")
        .response()
        .await
        .expect("h2c call");
    assert_eq!(response.text(), "HTTP/2.0");

    let sdk = ServiceSdk::builder()
        .service("svc", once().instance(&url))
        .build()
        .expect("valid");
    let response = sdk
        .get_client("svc")
        .get("/version")
        .response()
        .await
        .expect("h1 call");
    assert_eq!(response.text(), "HTTP/1.1");
}

#[tokio::test]
async fn reqwest_transport_carries_the_same_pipeline() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 5 }))).await;
    server.then(Reply::status(503));
    let sdk = ServiceSdk::builder()
        .reqwest_client(reqwest::Client::new())
        .service(
            "svc",
            ServiceConfig::new()
                .retry(support::exact_retry(2))
                .instance(&server.url),
        )
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let value: serde_json::Value = client
        .post("/users")
        .json(&serde_json::json!({ "name": "x" }))
        .idempotent(true)
        .send()
        .await
        .expect("retried through reqwest");
    assert_eq!(value["id"], 5);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.body.as_ref() == br#"{"name":"x"}"#));
    assert!(seen[0].headers.contains_key("traceparent"));

    let url = support::refused_url().await;
    sdk.register_external_service("gone", [&url])
        .expect("valid url");
    let err = sdk
        .get_client("gone")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err.last_attempt(),
            ServiceError::Transport { connect: true, .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn reqwest_transport_enforces_the_body_limit() {
    let server = Scripted::start(Reply::status(200).body("z".repeat(5000))).await;
    let sdk = ServiceSdk::builder()
        .reqwest_client(reqwest::Client::new())
        .transport_config(TransportConfig {
            max_response_bytes: 1000,
            ..Default::default()
        })
        .service("svc", once().instance(&server.url))
        .build()
        .expect("valid");
    let err = sdk
        .get_client("svc")
        .get("/big")
        .response()
        .await
        .expect_err("too large");
    assert!(
        matches!(err, ServiceError::BodyTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
}
