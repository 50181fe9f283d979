//! The event bus: publish latency at a fixed rate, and delivery throughput, on SQLite and
//! PostgreSQL, each against a bare alternative in the same run.
//!
//! - **Publish**: 1,000 events/s for 10 s (open loop: each request is timed from when it
//!   was due, so a stall counts against every request it delays), 1 KB payloads checked
//!   against the reference's schema, stored with their delivery (the outbox), a
//!   dispatcher delivering meanwhile. The bare alternative: an axum handler doing one
//!   `INSERT` of the body per request into the same database (no auth, no schema, no
//!   outbox, no group commit).
//! - **Delivery**: 5,000 stored events delivered to a local receiver (signed, through the
//!   SDK's pipeline, settled in the store), by one dispatcher and (PostgreSQL) two; the
//!   bare alternative: the same number of unsigned POSTs from 64 reqwest tasks.
//!
//! `cargo bench -p sdk-benches --bench events` (PostgreSQL from `SDK_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432`; skipped when unreachable).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::State, http::StatusCode, routing::post, Router};
use sdk_events::{
    clock::Clock,
    dispatcher::{Dispatcher, DispatcherConfig},
    server::{router, Bus, BusConfig},
    store::Store,
};
use serde_json::{json, Value};
use tokio::time::Instant;

#[path = "common/report.rs"]
mod report;

const RATE: u64 = 1_000;
const SECONDS: u64 = 10;
/// Seconds at `RATE` before the measured ones.
const WARM_UP: u64 = 1;
const DELIVERIES: usize = 5_000;
const ADMIN: &str = "bench-admin";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

/// A receiver answering 204, counting.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/hook",
            post(|State(count): State<Arc<AtomicUsize>>| async move {
                count.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(count.clone());
    (format!("{}/hook", serve(app).await), count)
}

/// The bus on `store`, its API at the returned address (as the binary runs it: the API
/// and its dispatcher on one store).
async fn bus(store: &Store, dispatcher: Option<&Dispatcher>) -> String {
    let config = BusConfig {
        admin_token: Some(ADMIN.into()),
        // The handlers here are on this machine.
        handlers: sdk::registry::AddressPolicy::any(),
        ..BusConfig::default()
    };
    let bus = Bus::new(
        store.clone(),
        config,
        Clock::new(),
        dispatcher.map(Dispatcher::waker),
    )
    .expect("bus");
    serve(router(bus)).await
}

fn dispatcher(store: &Store) -> Dispatcher {
    let sdk = sdk::ServiceSdk::builder().build().expect("sdk");
    Dispatcher::new(
        store.clone(),
        sdk,
        DispatcherConfig::default(),
        Clock::new(),
    )
}

async fn post_json(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("answer");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Sets up user-service, its action and a subscription to `hook`: the publishing token.
async fn set_up(http: &reqwest::Client, api: &str, hook: &str) -> String {
    let app = post_json(
        http,
        &format!("{api}/v1/applications"),
        ADMIN,
        &json!({"application": "user-service", "address": "https://users.example.com"}),
    )
    .await;
    post_json(
        http,
        &format!("{api}/v1/applications"),
        ADMIN,
        &json!({"application": "email-service", "address": "https://email.example.com"}),
    )
    .await;
    let schema = json!({"type": "object", "properties": {"user_id": {"type": "string"},
        "email": {"type": "string", "format": "email"}, "plan": {"type": "string", "enum": ["free", "premium"]},
        "bio": {"type": "string"}}, "required": ["user_id", "email", "bio"]});
    post_json(
        http,
        &format!("{api}/v1/actions"),
        ADMIN,
        &json!({"action": "user.created", "application": "user-service", "schemata": schema}),
    )
    .await;
    post_json(http, &format!("{api}/v1/subscriptions"), ADMIN,
        &json!({"application": "email-service", "subscription": "welcome", "action": "user.created", "handler": hook})).await;
    app["token"].as_str().expect("token").to_owned()
}

/// A 1 KB payload.
fn payload(n: u64) -> Value {
    json!({"user_id": format!("u{n}"), "email": format!("u{n}@example.com"), "plan": "free", "bio": "x".repeat(940)})
}

/// `RATE` requests a second for `WARM_UP` + `SECONDS` made by `request`; latencies from
/// when each was due, of those after the warm-up (pools filled, caches loaded).
async fn open_loop<F, Fut>(request: F) -> (Vec<Duration>, usize)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let warm_up = RATE * WARM_UP;
    let total = RATE * (WARM_UP + SECONDS);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + Duration::from_micros(n * 1_000_000 / RATE);
        tokio::time::sleep_until(due).await;
        let call = request(n);
        tasks.push(tokio::spawn(async move { (call.await, due.elapsed()) }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    let mut slow = std::collections::BTreeMap::<u64, usize>::new();
    for (n, task) in tasks.into_iter().enumerate() {
        let (ok, latency) = task.await.expect("request");
        if !ok {
            failed += 1;
        }
        if (n as u64) < warm_up {
            continue;
        }
        if latency > Duration::from_millis(20) {
            *slow.entry(n as u64 / 100).or_default() += 1;
        }
        latencies.push(latency);
    }
    if std::env::var("BENCH_DEBUG").is_ok() {
        eprintln!("slow (>20ms) per 100 ms: {slow:?}");
    }
    latencies.sort();
    (latencies, failed)
}

fn row(name: &str, latencies: &[Duration], failed: usize) -> String {
    format!(
        "| {name} | {:.2} | {:.2} | {:.2} | {failed} |",
        percentile(latencies, 0.5).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    )
}

/// The bare alternative: one INSERT of the body per request, on its own pool.
async fn bare_insert(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") {
        format!("{url}.bare?mode=rwc")
    } else {
        url.to_owned()
    };
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(if url.starts_with("sqlite:") { 1 } else { 16 })
        .connect(&url)
        .await
        .expect("bare pool");
    sqlx::query("CREATE TABLE IF NOT EXISTS bare (id TEXT NOT NULL, body TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("table");
    if url.starts_with("sqlite:") {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .expect("wal");
    }
    let app = Router::new()
        .route(
            "/insert",
            post(
                |State(pool): State<sqlx::AnyPool>, body: String| async move {
                    let id = format!("{:032x}", fastrand::u128(..));
                    match sqlx::query("INSERT INTO bare (id, body) VALUES ($1, $2)")
                        .bind(id)
                        .bind(body)
                        .execute(&pool)
                        .await
                    {
                        Ok(_) => StatusCode::CREATED,
                        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                    }
                },
            ),
        )
        .with_state(pool);
    format!("{}/insert", serve(app).await)
}

/// The publish row on `url` (delivering meanwhile, or not), and the bare row on `bare_url`.
async fn publish_rows(name: &str, url: &str, quiet_url: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for delivering in [true, false] {
        let url = if delivering { url } else { quiet_url };
        let (latencies, failed) = publish_latencies(url, delivering).await;
        let what = if delivering {
            "a dispatcher delivering each meanwhile"
        } else {
            "no dispatcher"
        };
        rows.push(row(
            &format!("{name}: publish (auth, schema, outbox), {what}"),
            &latencies,
            failed,
        ));
        eprintln!("{}", rows[rows.len() - 1]);
    }
    let http = reqwest::Client::new();
    let bare = bare_insert(url).await;
    let (bare_latencies, bare_failed) = open_loop(|n| {
        let (http, bare) = (http.clone(), bare.clone());
        async move {
            let body = payload(n).to_string();
            let sent = http.post(&bare).body(body).send().await;
            sent.is_ok_and(|r| r.status() == StatusCode::CREATED)
        }
    })
    .await;
    rows.push(row(
        &format!("{name}: bare INSERT per request"),
        &bare_latencies,
        bare_failed,
    ));
    rows
}

async fn publish_latencies(url: &str, delivering: bool) -> (Vec<Duration>, usize) {
    let (hook, _) = receiver().await;
    let store = Store::open(url).await.expect("store");
    let dispatcher = dispatcher(&store);
    let api = bus(&store, delivering.then_some(&dispatcher)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    if delivering {
        tokio::spawn(dispatcher.run(async move {
            let _ = stopped.await;
        }));
    }
    let http = reqwest::Client::new();
    let token = set_up(&http, &api, &hook).await;
    let events = format!("{api}/v1/events");
    let (bus_latencies, bus_failed) = open_loop(|n| {
        let (http, events, token) = (http.clone(), events.clone(), token.clone());
        async move {
            let body = json!({"action": "user.created", "payload": payload(n)});
            let sent = http
                .post(&events)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            sent.is_ok_and(|r| r.status() == StatusCode::CREATED)
        }
    })
    .await;
    drop(stop);
    (bus_latencies, bus_failed)
}

/// Events/s delivering `DELIVERIES` stored events with `dispatchers` dispatchers.
async fn delivery_rate(url: &str, dispatchers: usize) -> f64 {
    let (hook, count) = receiver().await;
    let store = Store::open(url).await.expect("store");
    let api = bus(&store, None).await;
    let http = reqwest::Client::new();
    let token = set_up(&http, &api, &hook).await;
    let events = format!("{api}/v1/events");
    let mut publishing = Vec::new();
    for worker in 0..32u64 {
        let (http, events, token) = (http.clone(), events.clone(), token.clone());
        publishing.push(tokio::spawn(async move {
            for n in (worker..DELIVERIES as u64).step_by(32) {
                post_json(
                    &http,
                    &events,
                    &token,
                    &json!({"action": "user.created", "payload": payload(n)}),
                )
                .await;
            }
        }));
    }
    for task in publishing {
        task.await.expect("publish");
    }
    let start = Instant::now();
    let mut stops = Vec::new();
    for _ in 0..dispatchers {
        // On PostgreSQL each dispatcher on a pool of its own, as a process of its own would
        // be; SQLite's one dispatcher shares the API's store (and its one writer).
        let own = match store.backend() {
            sdk_events::store::Backend::Sqlite => store.clone(),
            sdk_events::store::Backend::Postgres => Store::open(url).await.expect("store"),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(dispatcher(&own).run(async move {
            let _ = stopped.await;
        }));
        stops.push(stop);
    }
    while count.load(Ordering::Relaxed) < DELIVERIES {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = DELIVERIES as f64 / start.elapsed().as_secs_f64();
    drop(stops);
    drop(store);
    rate
}

/// The bare alternative: `DELIVERIES` POSTs from 64 tasks.
async fn bare_delivery_rate() -> f64 {
    let (hook, _) = receiver().await;
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..64u64 {
        let (http, hook) = (http.clone(), hook.clone());
        tasks.push(tokio::spawn(async move {
            for n in (worker..DELIVERIES as u64).step_by(64) {
                let body = json!({"action": "user.created", "payload": payload(n)}).to_string();
                http.post(&hook).body(body).send().await.expect("post");
            }
        }));
    }
    for task in tasks {
        task.await.expect("post");
    }
    DELIVERIES as f64 / start.elapsed().as_secs_f64()
}

fn postgres_database() -> Option<(String, String, String)> {
    let server = std::env::var("SDK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let admin = format!("{server}/postgres");
    let db = format!(
        "sdk_events_bench_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    );
    let created = std::process::Command::new("psql")
        .args([&admin, "-q", "-c", &format!("CREATE DATABASE {db}")])
        .output()
        .ok()?;
    created
        .status
        .success()
        // Loopback, as the figures before TLS was built in: without it, bus and bare alike.
        .then(|| (format!("{server}/{db}?sslmode=disable"), admin, db))
}

fn drop_postgres(admin: &str, db: &str) {
    let _ = std::process::Command::new("psql")
        .args([
            admin,
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        ])
        .output();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("sdk-events-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut table = vec![
            format!("Publishing at {RATE} events/s for {SECONDS} s after {WARM_UP} s at that rate unmeasured, 1 KB payloads (latency from when each request was due):"),
            String::new(),
            "| | p50 ms | p99 ms | max ms | failed |".into(),
            "| --- | --: | --: | --: | --: |".into(),
        ];
        let mut rates = Vec::new();
        let sqlite = |name: &str| format!("sqlite:{}", dir.join(name).display());
        eprintln!("sqlite publish...");
        table.extend(publish_rows("SQLite", &sqlite("publish.db"), &sqlite("quiet.db")).await);
        eprintln!("sqlite delivery...");
        rates.push(("SQLite, 1 dispatcher", delivery_rate(&sqlite("deliver.db"), 1).await));
        if let (Some((url, admin, db)), Some((quiet, admin2, db2))) = (postgres_database(), postgres_database()) {
            eprintln!("postgres publish...");
            table.extend(publish_rows("PostgreSQL", &url, &quiet).await);
            drop_postgres(&admin, &db);
            drop_postgres(&admin2, &db2);
            for dispatchers in [1, 2] {
                eprintln!("postgres delivery, {dispatchers} dispatcher(s)...");
                let Some((url, admin, db)) = postgres_database() else { break };
                let rate = delivery_rate(&url, dispatchers).await;
                rates.push((if dispatchers == 1 { "PostgreSQL, 1 dispatcher" } else { "PostgreSQL, 2 dispatchers" }, rate));
                drop_postgres(&admin, &db);
            }
        } else {
            eprintln!("PostgreSQL unreachable: its rows are left out");
        }
        let bare = bare_delivery_rate().await;
        table.push(String::new());
        table.push(format!("Delivering {DELIVERIES} stored events to a local receiver:"));
        table.push(String::new());
        table.push("| | events/s | of bare POSTs |".into());
        table.push("| --- | --: | --: |".into());
        for (name, rate) in &rates {
            table.push(format!("| {name} | {rate:.0} | {:.2}x |", rate / bare));
        }
        table.push(format!("| bare: unsigned POSTs from 64 reqwest tasks | {bare:.0} | 1.00x |"));
        let section = format!(
            "## Event bus\n\nWritten by `cargo bench -p sdk-benches --bench events` (2 cores; commit {}; bus, receiver and load generator in one process; PostgreSQL on loopback without TLS). {}\n\n{}\n",
            report::commit(),
            "Each bus figure is measured against a bare alternative in the same run: an axum handler doing one `INSERT` per request for publishing, unsigned POSTs from 64 reqwest tasks for delivering.",
            table.join("\n")
        );
        println!("{section}");
        let path = report::path();
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        match std::fs::write(&path, report::with_section(&old, "## Event bus", &section)) {
            Ok(()) => eprintln!("wrote the event bus section of {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
