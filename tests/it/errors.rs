//! Every failure is a typed, actionable error: timeouts, statuses, decode, transport, size,
//! hostile paths.

use crate::support;

use std::time::Duration;

use crate::support::{once, sdk_for, Reply, Scripted};
use sdk::{transport::TransportConfig, ServiceConfig, ServiceError, ServiceSdk, TimeoutKind};

#[tokio::test(start_paused = true)]
async fn attempt_timeout_gives_timeout() {
    let server =
        Scripted::start(Reply::json(serde_json::json!(1)).delay(Duration::from_secs(5))).await;
    let sdk = sdk_for(
        &server.url,
        once().attempt_timeout(Duration::from_millis(200)),
    );
    let err = sdk
        .get_client("svc")
        .get("/slow")
        .send::<u32>()
        .await
        .expect_err("too slow");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        matches!(err, ServiceError::Timeout { kind: TimeoutKind::Attempt, limit, .. } if limit == Duration::from_millis(200))
    );
    assert!(err.is_retryable());
    assert_eq!(
        err.context().and_then(|c| c.instance.as_deref()),
        Some(server.url.as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_covers_all_attempts() {
    let server =
        Scripted::start(Reply::json(serde_json::json!(1)).delay(Duration::from_secs(5))).await;
    let config = ServiceConfig::new()
        .retry(support::exact_retry(10))
        .attempt_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(1));
    let sdk = sdk_for(&server.url, config);
    let started = tokio::time::Instant::now();
    let err = sdk
        .get_client("svc")
        .get("/slow")
        .send::<u32>()
        .await
        .expect_err("too slow");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() <= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(server.hits() < 10, "the deadline cut the retries short");

    let err = sdk
        .get_client("svc")
        .get("/slow")
        .timeout(Duration::from_millis(100))
        .send::<u32>()
        .await;
    assert!(
        matches!(
            err,
            Err(ServiceError::Timeout {
                kind: TimeoutKind::Deadline,
                ..
            })
        ),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn not_found_keeps_status_and_body() {
    let server = Scripted::start(Reply::status(404).body(r#"{"error":"no user 7"}"#)).await;
    let sdk = sdk_for(&server.url, once());
    let err = sdk
        .get_client("svc")
        .get("/users/7")
        .send::<serde_json::Value>()
        .await
        .expect_err("404");
    assert_eq!(err.status_code(), Some(http::StatusCode::NOT_FOUND));
    assert_eq!(
        err.body().map(|b| b.as_ref()),
        Some(&br#"{"error":"no user 7"}"#[..])
    );
    assert!(!err.is_retryable());
    let context = err.context().expect("context");
    assert_eq!(&*context.service, "svc");
    assert_eq!(context.endpoint, "GET /users/7");
    assert_eq!(context.attempts, 1);
    // The raw API returns the answer instead.
    let raw = sdk
        .get_client("svc")
        .get("/users/7")
        .response()
        .await
        .expect("raw");
    assert_eq!(raw.status(), 404);
}

#[tokio::test(start_paused = true)]
async fn error_bodies_are_size_limited() {
    let server = Scripted::start(Reply::status(500).body("x".repeat(200_000))).await;
    let sdk = sdk_for(&server.url, once());
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("500");
    assert_eq!(err.body().map(|b| b.len()), Some(64 * 1024));
}

#[tokio::test(start_paused = true)]
async fn malformed_json_gives_decode() {
    let server = Scripted::start(Reply::status(200).body("{not json")).await;
    let sdk = sdk_for(&server.url, once());
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<serde_json::Value>()
        .await
        .expect_err("bad json");
    assert!(matches!(err, ServiceError::Decode { .. }), "{err:?}");
    server.set_fallback(Reply::json(serde_json::json!({ "id": "not a number" })));
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct User {
        id: u64,
    }
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<User>()
        .await
        .expect_err("wrong shape");
    assert!(matches!(err, ServiceError::Decode { .. }), "{err:?}");
    server.set_fallback(Reply::status(204));
    sdk.get_client("svc")
        .delete("/x")
        .send::<()>()
        .await
        .expect("an empty body decodes into ()");
}

#[tokio::test(start_paused = true)]
async fn refused_connection_gives_transport() {
    let url = support::refused_url().await;
    let sdk = sdk_for(&url, once());
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ServiceError::Transport { connect: true, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test(start_paused = true)]
async fn unknown_service_gives_no_healthy_instance() {
    let sdk = ServiceSdk::builder().build().expect("defaults");
    let err = sdk
        .get_client("nowhere")
        .get("/x")
        .send::<()>()
        .await
        .expect_err("no instances");
    assert!(
        matches!(err, ServiceError::NoHealthyInstance { .. }),
        "{err:?}"
    );

    let server = Scripted::start(Reply::json(serde_json::json!(7))).await;
    sdk.register_external_service("nowhere", [&server.url])
        .expect("valid url");
    let value: u32 = sdk
        .get_client("nowhere")
        .get("/x")
        .send()
        .await
        .expect("registered");
    assert_eq!(value, 7);
    assert!(sdk.register_external_service("bad", ["not a url"]).is_err());
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_limit_are_refused() {
    let server = Scripted::start(Reply::status(200).body("y".repeat(10_000))).await;
    let sdk = ServiceSdk::builder()
        .transport_config(TransportConfig::new().max_response_bytes(1024))
        .service("svc", once().instance(&server.url))
        .build()
        .expect("valid");
    support::assert_body_too_large(&sdk, 1024).await;
}

#[tokio::test(start_paused = true)]
async fn streamed_bodies_over_the_limit_are_refused() {
    use axum::{body::Body, routing::get, Router};
    let chunks = || {
        let chunk = bytes::Bytes::from(vec![b'z'; 4096]);
        futures_util::stream::iter((0..16).map(move |_| Ok::<_, std::io::Error>(chunk.clone())))
    };
    let url = support::serve(Router::new().route(
        "/big",
        get(move || async move { Body::from_stream(chunks()) }),
    ))
    .await;
    let sdk = ServiceSdk::builder()
        .transport_config(TransportConfig::new().max_response_bytes(10_000))
        .service("svc", once().instance(&url))
        .build()
        .expect("valid");
    support::assert_body_too_large(&sdk, 10_000).await;
}

#[tokio::test(start_paused = true)]
async fn paths_that_leave_the_service_are_refused() {
    let server = Scripted::start(Reply::status(200)).await;
    let sdk = sdk_for(&server.url, once());
    let client = sdk.get_client("svc");
    for hostile in [
        "http://elsewhere/x",
        "https://elsewhere/x",
        "//elsewhere/x",
        "/a/../admin",
        "/a/%2e%2e/admin",
        "admin",
        "/a b",
        "/x#y",
    ] {
        let err = client.get(hostile).send::<()>().await.expect_err(hostile);
        assert!(
            matches!(err, ServiceError::InvalidRequest { .. }),
            "{hostile}: {err:?}"
        );
    }
    assert_eq!(server.hits(), 0, "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn encoded_segments_reach_the_server_as_one_segment() {
    let server = Scripted::start(Reply::status(200)).await;
    let sdk = sdk_for(&server.url, once());
    let client = sdk.get_client("svc");
    for value in ["../admin", "a/b", "?x=1"] {
        let segment = sdk::path::encode_segment(value).expect("encodable");
        client
            .get(&format!("/users/{segment}"))
            .response()
            .await
            .expect("sent");
    }
    let uris: Vec<_> = server.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        ["/users/..%2Fadmin", "/users/a%2Fb", "/users/%3Fx%3D1"]
    );
}

#[tokio::test(start_paused = true)]
async fn query_and_headers_reach_the_server() {
    let server = Scripted::start(Reply::status(200)).await;
    let sdk = sdk_for(&server.url, once());
    #[derive(serde::Serialize)]
    struct Page {
        limit: u32,
        active: Option<bool>,
        name: &'static str,
    }
    sdk.get_client("svc")
        .get("/users")
        .query(&Page {
            limit: 10,
            active: None,
            name: "a b&c",
        })
        .header("x-tenant", "acme")
        .response()
        .await
        .expect("sent");
    let seen = &server.seen()[0];
    assert_eq!(seen.uri, "/users?limit=10&name=a+b%26c");
    assert_eq!(seen.headers["x-tenant"], "acme");
    let traceparent = seen.headers["traceparent"].to_str().expect("ascii");
    assert_eq!(traceparent.len(), 55);
    assert!(traceparent.starts_with("00-"));
}

#[tokio::test(start_paused = true)]
async fn instance_base_paths_are_kept() {
    let server = Scripted::start(Reply::status(200)).await;
    let sdk = sdk_for(&format!("{}/api/v1/", server.url), once());
    sdk.get_client("svc")
        .get("/users?x=1")
        .response()
        .await
        .expect("sent");
    assert_eq!(server.seen()[0].uri, "/api/v1/users?x=1");
}

#[tokio::test(start_paused = true)]
async fn enormous_timeouts_and_ttls_do_not_panic() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let config = once()
        .timeout(Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .cache(
            sdk::cache::CacheConfig::new()
                .enabled(true)
                .ttl(Duration::MAX)
                .stale_if_error(Duration::MAX),
        );
    let sdk = sdk_for(&server.url, config);
    let client = sdk.get_client("svc");
    let value: u32 = client.get("/x").send().await.expect("ok");
    assert_eq!(value, 1);
    let value: u32 = client
        .get("/y")
        .timeout(Duration::MAX)
        .cache_ttl(Duration::MAX)
        .send()
        .await
        .expect("ok");
    assert_eq!(value, 1);
    let mut batch = sdk.batch().deadline(Duration::MAX);
    let key = batch.add("x", async { Ok::<_, ServiceError>(1) });
    assert_eq!(batch.run().await.take(&key).expect("ran"), 1);
}

#[tokio::test]
async fn head_and_bodiless_answers_are_not_judged_by_content_length() {
    use axum::{http::StatusCode, routing::get, Router};
    let url = support::serve(
        Router::new()
            .route("/big", get(|| async { "y".repeat(10_000) }))
            .route(
                "/unchanged",
                get(|| async { (StatusCode::NOT_MODIFIED, [("content-length", "10000")]) }),
            ),
    )
    .await;
    for reqwest_transport in [false, true] {
        let mut builder =
            ServiceSdk::builder().transport_config(TransportConfig::new().max_response_bytes(1024));
        if reqwest_transport {
            builder = builder.reqwest_client(reqwest::Client::new());
        }
        let sdk = builder
            .service("svc", once().instance(&url))
            .build()
            .expect("valid");
        let client = sdk.get_client("svc");
        let head = client
            .head("/big")
            .response()
            .await
            .expect("HEAD has no body");
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], "10000");
        let unchanged = client
            .get("/unchanged")
            .response()
            .await
            .expect("304 has no body");
        assert_eq!(unchanged.status(), 304);
        support::assert_body_too_large(&sdk, 1024).await;
    }
}
