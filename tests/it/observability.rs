//! Secrets never reach logs or `Debug` output, while spans and events are logged.

use crate::support::{self, once, Reply, Scripted};
use sdk::ServiceSdk;

#[tokio::test(start_paused = true)]
async fn secrets_never_reach_logs_or_debug_output() {
    let captured = support::capture_logs();

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

    let logs = captured.text();
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
