//! Standard tower and tower-http layers at the middleware seam, against real servers:
//! `TraceLayer`, `DecompressionLayer` (and the `compression` feature), `SetRequestIdLayer`,
//! and tower's `RateLimitLayer` behind a `BufferLayer`; plus the default `User-Agent`.

use crate::support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::support::{Reply, Scripted};
use axum::{routing::get, Router};
use sdk::{transport::TransportConfig, ServiceConfig, ServiceError, ServiceSdk};
use tower_http::{
    compression::CompressionLayer,
    decompression::DecompressionLayer,
    request_id::{MakeRequestId, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

/// A JSON array of `n` numbers: compresses well.
fn numbers(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| i % 7).collect()
}

/// A server answering `/numbers/{n}` with `numbers(n)`, gzip-compressed when asked, that
/// records every request's headers.
async fn compressing_server() -> (String, Arc<Mutex<Vec<http::HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/numbers/{n}",
            get(
                move |axum::extract::Path(n): axum::extract::Path<usize>,
                      headers: http::HeaderMap| {
                    let record = record.clone();
                    async move {
                        record.lock().expect("lock").push(headers);
                        axum::Json(numbers(n))
                    }
                },
            ),
        )
        .layer(CompressionLayer::new());
    (support::serve(app).await, seen)
}

#[tokio::test]
async fn a_gzip_answer_arrives_decoded_and_within_the_limit() {
    let (url, seen) = compressing_server().await;
    // The `compression` feature (on for these tests): Accept-Encoding sent, answer decoded.
    let sdk = ServiceSdk::builder()
        .service("nums", ServiceConfig::new().instance(&url))
        .transport_config(TransportConfig::new().max_response_bytes(64 * 1024))
        .build()
        .expect("valid");
    let client = sdk.get_client("nums");
    let response = client.get("/numbers/5000").response().await.expect("200");
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .map(|v| v.as_bytes()),
        None,
        "the decoder took the encoding off"
    );
    let decoded: Vec<u64> = serde_json::from_slice(response.bytes()).expect("plain JSON");
    assert_eq!(decoded, numbers(5000));
    let asked = seen.lock().expect("lock")[0].clone();
    assert!(
        asked
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("gzip")),
        "{asked:?}"
    );

    // 40,000 numbers are ~80 KB decoded but a few KB on the wire: the limit counts what is
    // decoded, so a small compressed body cannot expand past it.
    let err = client
        .get("/numbers/40000")
        .send::<Vec<u64>>()
        .await
        .expect_err("over 64 KiB decoded");
    assert!(
        matches!(err, ServiceError::BodyTooLarge { limit, .. } if limit == 64 * 1024),
        "{err:?}"
    );
}

#[tokio::test]
async fn decompression_layer_by_hand_and_trace_layer() {
    let (url, _) = compressing_server().await;
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let record = statuses.clone();
    let sdk = ServiceSdk::builder()
        .service("nums", ServiceConfig::new().instance(&url))
        .decompression(false)
        .layer(TraceLayer::new_for_http().on_response(
            move |response: &http::Response<_>, _latency: Duration, _span: &tracing::Span| {
                record
                    .lock()
                    .expect("lock")
                    .push(response.status().as_u16());
            },
        ))
        .layer(DecompressionLayer::new())
        .build()
        .expect("valid");
    let decoded: Vec<u64> = sdk
        .get_client("nums")
        .get("/numbers/3000")
        .send()
        .await
        .expect("decoded by the layer");
    assert_eq!(decoded, numbers(3000));
    assert_eq!(
        *statuses.lock().expect("lock"),
        [200],
        "TraceLayer saw the answer"
    );
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        http::HeaderValue::try_from(format!("req-{n}"))
            .ok()
            .map(RequestId::new)
    }
}

#[tokio::test(start_paused = true)]
async fn set_request_id_and_a_buffered_rate_limit() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let sdk = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().instance(&server.url))
        .layer(SetRequestIdLayer::new(
            http::HeaderName::from_static("x-request-id"),
            Counter::default(),
        ))
        // RateLimit is not Clone; a Buffer in front makes the stack shareable.
        .layer(
            tower::ServiceBuilder::new()
                .buffer(16)
                .rate_limit(2, Duration::from_secs(1)),
        )
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        let _: u32 = client.get("/x").send().await.expect("200");
    }
    // Two calls per second: the fifth waits for the third window.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let ids: Vec<String> = server
        .seen()
        .iter()
        .filter_map(|s| {
            s.headers
                .get("x-request-id")?
                .to_str()
                .ok()
                .map(String::from)
        })
        .collect();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);
}

#[tokio::test]
async fn requests_carry_a_user_agent_unless_they_set_one() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let sdk = support::sdk_for(&server.url, ServiceConfig::new());
    let client = sdk.get_client("svc");
    let _: u32 = client.get("/a").send().await.expect("200");
    let _: u32 = client
        .get("/b")
        .header("user-agent", "billing/1.4")
        .send()
        .await
        .expect("200");
    let agents: Vec<String> = server
        .seen()
        .iter()
        .filter_map(|s| s.headers.get("user-agent")?.to_str().ok().map(String::from))
        .collect();
    assert_eq!(
        agents,
        [
            sdk::transport::DEFAULT_USER_AGENT.to_owned(),
            "billing/1.4".to_owned()
        ]
    );
    assert!(agents[0].starts_with("sdk/"));

    let custom = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().instance(&server.url))
        .transport_config(
            TransportConfig::new().user_agent(http::HeaderValue::from_static("shop/2")),
        )
        .build()
        .expect("valid");
    let _: u32 = custom
        .get_client("svc")
        .get("/c")
        .send()
        .await
        .expect("200");
    let last = server.seen().pop().expect("seen");
    assert_eq!(last.headers["user-agent"], "shop/2");
}
