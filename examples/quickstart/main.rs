//! The SDK in one minute, with nothing installed: a demo service starts on loopback, and the
//! SDK calls it through its whole pipeline.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{extract::Path, http::StatusCode, routing::get, Json, Router};
use sdk::{circuit_breaker::CircuitState, prelude::*, retry::RetryConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// The demo shop, as its callers see it. `ShopClient` is generated and implements it.
#[service_interface(name = "shop")]
trait Shop {
    /// One user.
    #[service_call(GET, "/users/<id>")]
    async fn user(&self, id: u64) -> ServiceResult<User>;

    /// Stock levels; this dependency restarts now and then, so it is retried.
    #[service_call(GET, "/inventory")]
    #[retry(max_attempts = 3, delay = "50ms")]
    async fn inventory(&self) -> ServiceResult<serde_json::Value>;

    /// Whether payments work; a failing payments service trips this breaker.
    #[service_call(GET, "/payments/status")]
    #[circuit_breaker(failure_threshold = 3, success_threshold = 1, recovery_timeout = "1s")]
    async fn payments_status(&self) -> ServiceResult<serde_json::Value>;

    /// A delivery estimate; the shipping service is down today, so its fallback answers.
    #[service_call(GET, "/shipping/<id>")]
    #[fallback(standard_shipping)]
    async fn shipping(&self, id: u64) -> ServiceResult<serde_json::Value>;

    /// The catalog: slow to compute, fine to be 30 s old.
    #[service_call(GET, "/catalog")]
    #[cached(ttl = "30s")]
    async fn catalog(&self) -> ServiceResult<serde_json::Value>;
}

/// What `shipping` answers when the shipping service fails: the standard estimate.
async fn standard_shipping(id: u64, error: ServiceError) -> ServiceResult<serde_json::Value> {
    println!("   shipping for order {id} failed ({error}); the fallback answers instead");
    Ok(serde_json::json!({ "order": id, "days": 5, "estimate": "standard" }))
}

/// What the demo service does, switchable from the demo.
#[derive(Default)]
struct Demo {
    flaky_calls: AtomicUsize,
    payments_down: AtomicBool,
    catalog_calls: AtomicUsize,
}

async fn start_demo_service(demo: Arc<Demo>) -> Result<String, Box<dyn std::error::Error>> {
    let (flaky, payments, catalog) = (demo.clone(), demo.clone(), demo);
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u64>| async move {
                Json(User {
                    id,
                    name: format!("user-{id}"),
                })
            }),
        )
        .route(
            "/inventory",
            get(move || async move {
                // Fails twice, then works: what a restarting dependency looks like.
                match flaky.flaky_calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(StatusCode::SERVICE_UNAVAILABLE),
                    _ => Ok(Json(serde_json::json!({ "in_stock": 17 }))),
                }
            }),
        )
        .route(
            "/payments/status",
            get(move || async move {
                if payments.payments_down.load(Ordering::SeqCst) {
                    Err(StatusCode::INTERNAL_SERVER_ERROR)
                } else {
                    Ok(Json(serde_json::json!({ "ok": true })))
                }
            }),
        )
        .route(
            "/shipping/{id}",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/catalog",
            get(move || async move {
                catalog.catalog_calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await; // a slow query
                Json(serde_json::json!({ "items": ["book", "lamp", "mug"] }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("demo service stopped: {e}");
        }
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Metrics through the `metrics` facade, exported for Prometheus (feature `prometheus`);
    // a real service would serve `prometheus.render()` on its own `/metrics` route.
    let prometheus = sdk::telemetry::Prometheus::install()?;
    let demo = Arc::new(Demo::default());
    let url = start_demo_service(demo.clone()).await?;
    println!("demo service listening on {url}\n");

    let sdk = ServiceSdk::builder()
        .service(
            "shop",
            ServiceConfig::new()
                .instance(&url)
                .timeout(Duration::from_secs(2))
                // The service default: no retries; methods opt in with #[retry].
                .retry(RetryConfig::new().max_attempts(1)),
        )
        .on_error(|err, _context| println!("   on_error hook saw: {err}"))
        .build()?;
    let shop = ShopClient::new(&sdk);

    println!("1. A normal call");
    let user = shop.user(42).await?;
    println!("   shop.user(42) answered {user:?}\n");

    println!("2. A retried call");
    let stock = shop.inventory().await?;
    println!("   shop.inventory() failed twice with 503, was retried with backoff, and answered {stock}\n");

    circuit_opening_and_recovering(&shop, &demo).await?;

    println!("4. A fallback");
    let estimate = shop.shipping(42).await?;
    println!("   shop.shipping(42) answered {estimate}\n");

    println!("5. A cache hit");
    let started = Instant::now();
    shop.catalog().await?;
    let miss = started.elapsed();
    let started = Instant::now();
    let items = shop.catalog().await?;
    let hit = started.elapsed();
    println!("   first shop.catalog(): fetched in {miss:?}");
    println!("   second shop.catalog(): served from the cache in {hit:?}: {items}");
    println!(
        "   the service saw {} request(s) for /catalog",
        demo.catalog_calls.load(Ordering::SeqCst)
    );
    println!("\n6. What /metrics would show (a few lines of prometheus.render())");
    for line in prometheus
        .render()
        .lines()
        .filter(|l| l.starts_with("sdk_calls_total") || l.starts_with("sdk_circuit_state"))
    {
        println!("   {line}");
    }
    println!("\nDone. See docs/guide/ for the attribute reference, ad-hoc calls, batch calls, middleware and configuration.");
    Ok(())
}

/// Step 3: payments fails until its breaker opens; the next call is refused at once; once
/// payments is fixed, a probe closes the breaker.
async fn circuit_opening_and_recovering(
    shop: &ShopClient,
    demo: &Demo,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("3. A circuit opening, then recovering");
    demo.payments_down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let outcome = shop.payments_status().await;
        println!("   payments answered: {}", describe(outcome.err()));
    }
    if let Some(breaker) = payments_breaker(shop) {
        println!(
            "   breaker for {} is now {:?} after {} failures in a row",
            breaker.endpoint, breaker.state, breaker.consecutive_failures
        );
    }
    let started = Instant::now();
    let refused = shop.payments_status().await.err();
    println!(
        "   the next call was refused in {:?} without touching the network: {}",
        started.elapsed(),
        describe(refused)
    );
    demo.payments_down.store(false, Ordering::SeqCst);
    println!("   payments is fixed; waiting 1 s for the breaker to let a probe through...");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    shop.payments_status().await?;
    let state = payments_breaker(shop).map_or(CircuitState::Closed, |b| b.state);
    println!("   the probe succeeded; breaker is {state:?}\n");
    Ok(())
}

fn payments_breaker(shop: &ShopClient) -> Option<sdk::circuit_breaker::EndpointCircuit> {
    shop.service_client()
        .circuit_state()
        .into_iter()
        .find(|c| c.endpoint == "GET /payments/status")
}

fn describe(err: Option<ServiceError>) -> String {
    match err {
        None => "ok".into(),
        Some(e) if e.is_circuit_open() => "refused: circuit breaker is open".into(),
        Some(e) => match e.status_code() {
            Some(status) => format!("HTTP {status}"),
            None => e.to_string(),
        },
    }
}
