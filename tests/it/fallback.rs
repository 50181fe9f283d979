//! Fallbacks against real servers: a generated method's `#[fallback]` and the ad-hoc
//! `.fallback(...)` answer for an open breaker, a timeout, a 5xx and an unreachable service,
//! never for a 4xx; the failures they take are chosen with `on`; and their use shows in
//! `on_call`, in the metrics and in a tracing event.

use crate::support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{once, refused_url, Reply, Scripted};
use sdk::{fallback::FallbackOn, prelude::*, telemetry::CallOutcome, ServiceConfig};
use serde::Deserialize;

/// A price.
#[derive(Debug, PartialEq, Deserialize)]
pub(crate) struct Price {
    /// In cents.
    pub cents: u64,
}

/// The price service.
#[service_interface(name = "prices")]
pub(crate) trait Prices {
    /// Falls back on the default failures.
    #[service_call(GET, "/prices/<id>")]
    #[fallback(list_price)]
    async fn price(&self, id: u64, #[query] currency: String) -> ServiceResult<Price>;

    /// Falls back only when the breaker is open.
    #[service_call(GET, "/guarded/<id>")]
    #[circuit_breaker(failure_threshold = 2, recovery_timeout = "30s")]
    #[fallback(fallbacks::guarded, on = [circuit_open])]
    async fn guarded(&self, id: u64) -> ServiceResult<Price>;

    /// Falls back to the same service without `/fast`, through a method added to the client.
    #[service_call(GET, "/fast/<id>")]
    #[timeout("100ms")]
    #[fallback(Self::slow_path, on = [timeout])]
    async fn fast(&self, id: u64) -> ServiceResult<Price>;
}

/// What `price` answers when the service fails: the arguments and the error.
async fn list_price(id: u64, currency: String, error: ServiceError) -> ServiceResult<Price> {
    assert_eq!(currency, "EUR");
    Ok(Price {
        cents: 1000 + id + 10_000 * u64::from(error.status_code().is_some()),
    })
}

mod fallbacks {
    use super::*;

    pub(super) async fn guarded(id: u64, error: ServiceError) -> ServiceResult<Price> {
        assert!(error.is_circuit_open(), "{error}");
        Ok(Price { cents: id })
    }
}

impl PricesClient {
    /// The fallback of `fast`: the slow path, ad hoc.
    async fn slow_path(&self, id: u64, error: ServiceError) -> ServiceResult<Price> {
        assert!(error.is_timeout(), "{error}");
        self.service_client()
            .get(&format!("/slow/{id}"))
            .send()
            .await
    }
}

fn prices(url: &str, config: ServiceConfig) -> (ServiceSdk, PricesClient) {
    let sdk = ServiceSdk::builder()
        .service("prices", config.instance(url))
        .build()
        .expect("valid");
    let client = PricesClient::new(&sdk);
    (sdk, client)
}

#[tokio::test(start_paused = true)]
async fn a_generated_fallback_answers_for_5xx_but_never_for_4xx() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "cents": 5 }))).await;
    let (_sdk, client) = prices(&server.url, once());
    assert_eq!(
        client.price(7, "EUR".into()).await.expect("answered"),
        Price { cents: 5 }
    );

    server.then(Reply::status(503));
    assert_eq!(
        client.price(7, "EUR".into()).await.expect("fallback"),
        Price { cents: 11_007 },
        "the fallback got the arguments and the 503"
    );

    server.then(Reply::status(404));
    let err = client.price(7, "EUR".into()).await.expect_err("a 4xx");
    assert_eq!(err.status_code(), Some(http::StatusCode::NOT_FOUND));
    server.then(Reply::status(400));
    assert!(client.price(7, "EUR".into()).await.is_err(), "never on 4xx");
    server.then(Reply::status(200).body("not json"));
    let err = client.price(7, "EUR".into()).await.expect_err("a bad body");
    assert!(matches!(err, ServiceError::Decode { .. }), "{err:?}");
    assert_eq!(server.hits(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_service_and_an_open_breaker_fall_back() {
    let (_sdk, client) = prices(&refused_url().await, once());
    assert_eq!(
        client.price(3, "EUR".into()).await.expect("fallback"),
        Price { cents: 1003 },
        "connection refused: unavailable"
    );

    // `on = [circuit_open]`: the 503s that open the breaker are the caller's, the refusals
    // after it are the fallback's.
    let server = Scripted::start(Reply::status(503)).await;
    let (_sdk, client) = prices(&server.url, once());
    for _ in 0..2 {
        let err = client.guarded(9).await.expect_err("a 503, not taken over");
        assert_eq!(
            err.status_code(),
            Some(http::StatusCode::SERVICE_UNAVAILABLE)
        );
    }
    assert_eq!(
        client.guarded(9).await.expect("fallback"),
        Price { cents: 9 }
    );
    assert_eq!(server.hits(), 2, "the open breaker sent nothing");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_falls_back_to_a_method_of_the_client() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "cents": 42 }))).await;
    server.then(Reply::status(200).delay(Duration::from_secs(5)));
    let (_sdk, client) = prices(&server.url, once());
    assert_eq!(
        client.fast(1).await.expect("slow path"),
        Price { cents: 42 }
    );
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(paths, ["/fast/1", "/slow/1"]);
}

#[tokio::test(start_paused = true)]
async fn an_ad_hoc_fallback_takes_the_failures_it_is_given() {
    let server = Scripted::start(Reply::status(502)).await;
    let (sdk, _) = prices(&server.url, once());
    let client = sdk.get_client("prices");

    let price: Price = client
        .get("/prices/1")
        .fallback(|error| async move {
            assert_eq!(error.status_code(), Some(http::StatusCode::BAD_GATEWAY));
            Ok(Price { cents: 1 })
        })
        .send()
        .await
        .expect("fallback");
    assert_eq!(price, Price { cents: 1 });

    let err = client
        .get("/prices/1")
        .fallback(|_| async { Ok(Price { cents: 0 }) })
        .on(FallbackOn::CIRCUIT_OPEN.or(FallbackOn::TIMEOUT))
        .send::<Price, _>()
        .await
        .expect_err("a 502 is not in the set");
    assert_eq!(err.status_code(), Some(http::StatusCode::BAD_GATEWAY));

    server.set_fallback(Reply::status(409));
    let err = client
        .get("/prices/1")
        .fallback(|_| async { Ok(Price { cents: 0 }) })
        .on(FallbackOn::DEFAULT)
        .send::<Price, _>()
        .await
        .expect_err("never on 4xx");
    assert_eq!(err.status_code(), Some(http::StatusCode::CONFLICT));
    assert_eq!(server.hits(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_shows_in_on_call_metrics_and_tracing() {
    let (prometheus, logs) = (support::recorder(), support::capture_logs());
    let server = Scripted::start(Reply::status(503)).await;
    type Seen = Vec<(CallOutcome, Option<FallbackOn>)>;
    let outcomes: Arc<Mutex<Seen>> = Arc::default();
    let sink = outcomes.clone();
    let sdk = ServiceSdk::builder()
        .service("observed-prices", once().instance(&server.url))
        .on_call(move |call| {
            sink.lock()
                .expect("lock")
                .push((call.outcome, call.fallback_cause))
        })
        .build()
        .expect("valid");
    let client = PricesClient::with_service(&sdk, "observed-prices");
    client.price(1, "EUR".into()).await.expect("fallback");
    let err = sdk
        .get_client("observed-prices")
        .get("/plain")
        .send::<()>()
        .await
        .expect_err("no fallback");
    assert_eq!(
        err.status_code(),
        Some(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        outcomes.lock().expect("lock").as_slice(),
        [
            (CallOutcome::Fallback, Some(FallbackOn::SERVER_ERROR)),
            (CallOutcome::ServerError, None)
        ]
    );

    if let Some(samples) = support::prometheus::parse(&prometheus.render()) {
        let endpoint = ["service=observed-prices", "endpoint=/prices/<id>"];
        let value = |name: &str, more: &str| {
            support::prometheus::value(&samples, name, &[endpoint[0], endpoint[1], more])
        };
        assert_eq!(value("sdk_fallbacks_total", "cause=server_error"), 1.0);
        assert_eq!(value("sdk_calls_total", "outcome=fallback"), 1.0);
        assert_eq!(value("sdk_calls_total", "outcome=server_error"), 0.0);
    }

    let logged = logs.text();
    let line = logged
        .lines()
        .find(|l| l.contains("falling back") && l.contains("observed-prices"))
        .unwrap_or_else(|| panic!("no fallback event in:\n{logged}"));
    assert!(line.contains("cause=\"server_error\""), "{line}");
    assert!(line.contains("503"), "{line}");
}
