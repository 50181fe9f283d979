//! OpenTelemetry (feature `opentelemetry`): with a `tracing-opentelemetry` layer, each call
//! is a client span, child of the caller's, with the HTTP semantic-convention attributes;
//! the `traceparent` the server receives continues the caller's trace.

use crate::support;

use crate::support::{Reply, Scripted};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sdk::{retry::RetryConfig, ServiceConfig, ServiceSdk};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt as _;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// A call retried once inside a `checkout` span, then a failing call of another service.
async fn make_calls(server: &Scripted) {
    server.then(Reply::status(503));
    let sdk = ServiceSdk::builder()
        .service(
            "users",
            ServiceConfig::new()
                .instance(&server.url)
                .retry(support::exact_retry(2)),
        )
        .build()
        .expect("valid");
    let users = sdk.get_client("users");
    async {
        let _: serde_json::Value = users
            .get("/users/1")
            .endpoint("/users/{id}")
            .send()
            .await
            .expect("the retry succeeds");
    }
    .instrument(tracing::info_span!("checkout"))
    .await;
    let failing = ServiceSdk::builder()
        .service(
            "pay",
            ServiceConfig::new()
                .instance(&server.url)
                .retry(RetryConfig::none()),
        )
        .build()
        .expect("valid");
    server.set_fallback(Reply::status(500));
    let _ = failing.get_client("pay").get("/charge").send::<()>().await;
}

/// The call span's attributes, by OpenTelemetry's HTTP client conventions.
fn assert_attributes(call: &SpanData) {
    assert_eq!(
        attribute(call, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(call, "url.template").as_deref(),
        Some("/users/{id}")
    );
    assert_eq!(attribute(call, "server.address").as_deref(), Some("users"));
    assert_eq!(
        attribute(call, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(call, "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(attribute(call, "outcome").as_deref(), Some("success"));
}

#[tokio::test]
async fn a_call_is_a_client_span_of_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 1 }))).await;
    make_calls(&server).await;
    provider.force_flush().expect("flushed");

    let spans = exporter.get_finished_spans().expect("spans");
    let checkout = spans
        .iter()
        .find(|s| s.name == "checkout")
        .expect("caller span");
    let call = spans
        .iter()
        .find(|s| s.name == "GET /users/{id}")
        .expect("the call's span, named method and template");
    assert_eq!(call.span_kind, SpanKind::Client);
    assert_eq!(call.parent_span_id, checkout.span_context.span_id());
    assert_eq!(
        call.span_context.trace_id(),
        checkout.span_context.trace_id()
    );
    assert_attributes(call);

    // Both attempts carried the caller's trace id, with the call span as their parent.
    let trace_id = format!("{:032x}", checkout.span_context.trace_id());
    let parent = format!("{:016x}", call.span_context.span_id());
    for seen in &server.seen()[..2] {
        let traceparent = seen.headers["traceparent"].to_str().expect("ascii");
        assert_eq!(&traceparent[3..35], trace_id, "{traceparent}");
        assert_eq!(&traceparent[36..52], parent, "{traceparent}");
    }

    let failed = spans
        .iter()
        .find(|s| s.name == "GET /charge")
        .expect("the failed call's span");
    assert_eq!(attribute(failed, "error.type").as_deref(), Some("500"));
    assert!(
        matches!(failed.status, Status::Error { .. }),
        "{:?}",
        failed.status
    );
    assert!(
        failed.events.iter().any(|e| e.name.contains("call failed")),
        "the `call failed` event is inside the call span: {:?}",
        failed.events
    );
}
