//! The transports: HTTP/2 with prior knowledge over the built-in hyper transport, and the
//! optional reqwest transport.

use crate::support;
// The registry's tests and these share one TLS helper.
#[allow(dead_code)]
use sdk_test_support::tls;

use crate::support::{once, Reply, Scripted};
use sdk::{transport::TransportConfig, ServiceConfig, ServiceError, ServiceSdk};

#[tokio::test]
async fn http2_prior_knowledge() {
    use axum::{http::Version, routing::get, Router};
    let url = support::serve(Router::new().route(
        "/version",
        get(|version: Version| async move { format!("{version:?}") }),
    ))
    .await;
    let sdk = ServiceSdk::builder()
        .transport_config(TransportConfig::new().http2_prior_knowledge(true))
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

/// A call tells the service the time it has left, unless it hides its deadline (what an
/// event or a queued message does: its receiver handles it whenever it gets to it).
#[tokio::test]
async fn a_hidden_deadline_is_not_sent_but_still_ends_the_call() {
    let server = Scripted::start(Reply::json(serde_json::json!({}))).await;
    let sdk = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().instance(&server.url))
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let call = |hidden: bool| {
        let request = client.get("/x").timeout(std::time::Duration::from_secs(5));
        if hidden {
            request.hide_deadline()
        } else {
            request
        }
    };
    call(false).send::<serde_json::Value>().await.expect("told");
    call(true)
        .send::<serde_json::Value>()
        .await
        .expect("hidden");
    let seen = server.seen();
    let told = seen[0].headers.get("x-request-deadline").expect("sent");
    let left: u64 = told.to_str().expect("text").parse().expect("ms");
    assert!(left > 0 && left <= 5_000, "{left} ms");
    assert!(!seen[1].headers.contains_key("x-request-deadline"));

    server.then(Reply::json(serde_json::json!({})).delay(std::time::Duration::from_secs(5)));
    let err = client
        .get("/slow")
        .timeout(std::time::Duration::from_millis(200))
        .hide_deadline()
        .send::<serde_json::Value>()
        .await
        .expect_err("the call still ends at its deadline");
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn reqwest_transport_enforces_the_body_limit() {
    let server = Scripted::start(Reply::status(200).body("z".repeat(5000))).await;
    let sdk = ServiceSdk::builder()
        .reqwest_client(reqwest::Client::new())
        .transport_config(TransportConfig::new().max_response_bytes(1000))
        .service("svc", once().instance(&server.url))
        .build()
        .expect("valid");
    support::assert_body_too_large(&sdk, 1000).await;
}

/// Serves `router` over TLS (HTTP/2 and HTTP/1.1 by ALPN) with a fresh self-signed
/// certificate for `localhost`; returns the port and the certificate to trust.
async fn serve_tls(router: axum::Router) -> (u16, rustls::pki_types::CertificateDer<'static>) {
    let identity = tls::self_signed();
    (tls::serve_tls(router, &identity).await, identity.cert)
}

#[tokio::test]
async fn https_through_rustls_with_custom_roots() {
    use axum::{http::Version, routing::get, Router};
    let (port, cert) = serve_tls(Router::new().route(
        "/version",
        get(|version: Version| async move { format!("{version:?}") }),
    ))
    .await;
    let url = format!("https://localhost:{port}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the test certificate");
    let tls = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let sdk = ServiceSdk::builder()
        .tls_config(tls)
        .service("svc", once().instance(&url))
        .build()
        .expect("valid");
    let response = sdk
        .get_client("svc")
        .get("/version")
        .response()
        .await
        .expect("https call");
    assert_eq!(
        response.text(),
        "HTTP/2.0",
        "HTTP/2 negotiated by ALPN over TLS"
    );

    // The default roots (Mozilla's) do not trust a self-signed certificate.
    let sdk = ServiceSdk::builder()
        .service("svc", once().instance(&url))
        .build()
        .expect("valid");
    let err = sdk
        .get_client("svc")
        .get("/version")
        .response()
        .await
        .expect_err("untrusted");
    assert!(matches!(err, ServiceError::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn a_certificate_failure_is_not_retried_and_says_why() {
    use axum::{routing::get, Router};
    let (port, _cert) = serve_tls(Router::new().route("/x", get(|| async { "hi" }))).await;
    let sdk = ServiceSdk::builder()
        .service(
            "svc",
            ServiceConfig::new()
                .retry(support::exact_retry(3))
                .instance(format!("https://localhost:{port}")),
        )
        .build()
        .expect("valid");
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<String>()
        .await
        .expect_err("a self-signed certificate is not trusted");
    assert!(
        matches!(err, ServiceError::Transport { .. }),
        "not retried: {err:?}"
    );
    assert_eq!(err.attempts(), 1);
    assert!(err.to_string().contains("certificate"), "says why: {err}");
    assert!(
        !err.is_retryable(),
        "a later try meets the same certificate: {err:?}"
    );
}

/// A message consumer asks whether a later try could succeed: an instance's certificate
/// refused now is refused at every redelivery, so an event whose handler met one goes to
/// the dead letters at its first delivery instead of spending every attempt (NATS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dead_letters_a_certificate_failure_at_its_first_delivery() {
    use sdk_messaging::{Messaging, MessagingConfig, NatsSettings, ServerOptions, TransportKind};
    use std::sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    };
    use std::time::Duration;
    if tokio::net::TcpStream::connect("127.0.0.1:4222")
        .await
        .is_err()
    {
        sdk_test_support::skip("NATS is not at 127.0.0.1:4222");
        return;
    }
    let (port, _cert) =
        serve_tls(axum::Router::new().route("/x", axum::routing::get(|| async { "hi" }))).await;
    let sdk = ServiceSdk::builder()
        .service("svc", once().instance(format!("https://localhost:{port}")))
        .build()
        .expect("valid");
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let settings = NatsSettings::new().streams(
        &format!("SDKCERT_{id}"),
        &format!("cert{id}"),
        &format!("SDKCERT_DEAD_{id}"),
        &format!("certdead{id}"),
    );
    let config = MessagingConfig::new(TransportKind::Nats, "nats://127.0.0.1:4222").nats(settings);
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let options =
        ServerOptions::new()
            .max_attempts(5)
            .backoff(sdk::retry::ExponentialBackoff::new(
                Duration::from_millis(10),
                Duration::from_millis(20),
            ));
    let server = messaging
        .server(&format!("g{id}"))
        .options(options)
        .event_pattern("order.placed", move |_: serde_json::Value, _| {
            seen.fetch_add(1, Ordering::SeqCst);
            let client = sdk.get_client("svc");
            async move { client.get("/x").send::<String>().await.map(drop) }
        })
        .start()
        .await
        .expect("started");
    messaging
        .client()
        .emit("order.placed", &serde_json::json!({}))
        .await
        .expect("stored");
    // Five attempts 10-20 ms apart would be over well within this.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "dead-lettered at once");
    server.shutdown().await;
}

#[tokio::test]
async fn a_connect_timeout_is_a_timeout() {
    // A listener whose accept queue is full and never drained: the SYN goes unanswered.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = socket.listen(0).expect("listen");
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(tcp)) = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            held.push(tcp);
        }
    }
    let sdk = ServiceSdk::builder()
        .transport_config(
            TransportConfig::new().connect_timeout(std::time::Duration::from_millis(200)),
        )
        .service("svc", once().instance(format!("http://{addr}")))
        .build()
        .expect("valid");
    let err = sdk
        .get_client("svc")
        .get("/x")
        .send::<String>()
        .await
        .expect_err("the connection never completes");
    assert!(err.is_timeout(), "a connect timeout is a timeout: {err:?}");
    assert!(
        matches!(
            err.last_attempt(),
            ServiceError::Transport { connect: true, .. }
        ),
        "{err:?}"
    );
    drop(listener);
}
