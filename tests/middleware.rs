//! User middleware, tower layers, the on_error hook, tracing and secret redaction.

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use sdk::{retry::RetryConfig, ServiceConfig, ServiceSdk};
use support::{Reply, Scripted};

fn once() -> ServiceConfig {
    ServiceConfig::new().retry(RetryConfig {
        max_attempts: 1,
        ..Default::default()
    })
}

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
                context.endpoint.clone(),
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

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn secrets_never_reach_logs_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server =
        Scripted::start(Reply::status(401).header("set-cookie", "session=cookie-secret")).await;
    let config = once()
        .header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer config-secret"),
        )
        .instance(&server.url);
    let sdk = ServiceSdk::builder()
        .service("svc", config.clone())
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");

    let builder = client
        .get("/me")
        .header("x-api-key", "key-secret")
        .header("authorization", "Bearer call-secret");
    let mut printed = format!("{builder:?} {config:?} {sdk:?}");
    let err = builder.send::<()>().await.expect_err("401");
    printed.push_str(&format!("{err:?} {err}"));
    let (_, request) = client
        .get("/me")
        .header("cookie", "c=cookie-secret2")
        .build()
        .expect("valid");
    printed.push_str(&format!("{request:?}"));
    let raw = client.get("/me").response().await.expect("raw");
    printed.push_str(&format!("{raw:?}"));

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logs.contains("attempt"), "spans were logged: {logs}");
    for secret in [
        "config-secret",
        "call-secret",
        "key-secret",
        "cookie-secret",
    ] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
        assert!(
            !printed.contains(secret),
            "{secret} in debug output:\n{printed}"
        );
    }
    assert_eq!(
        server.seen()[0].headers["authorization"],
        "Bearer call-secret",
        "the secret was still sent"
    );
}
