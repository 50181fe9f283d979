//! The registry server under load, each figure beside the raw alternative measured in the
//! same run:
//!
//! 1. lookups: 10,000 instances (100 services of 100), 64 callers reading a service;
//! 2. heartbeats/s with 20,000 instances in one service and across 500 services, against a
//!    bare axum handler answering 204 (the HTTP floor);
//! 3. registrations/s with the data file on, at 1,000 and at 50,000 instances, against raw
//!    SQLite (sqlx, same WAL and `synchronous=FULL`, one transaction per row);
//! 4. memory with 1,000 event-stream watchers (half of them never reading) on a 1 MB
//!    service, over 20 changes;
//! 5. propagation to a follower (`HttpBackend` watch), worst case over 100 changes: writes,
//!    evictions, and one kill -9 and restart of the registry.
//!
//! The server runs as a child process (this same executable, re-run with
//! `SDK_REGISTRY_BENCH_SERVE` set, running the same code as the `sdk-registry` binary), so
//! its memory is its own. `cargo bench -p sdk-registry-benches --bench registry` (`-- NAME` runs
//! one of lookups, heartbeats, registrations, memory, propagation; `BENCH_SECS` sets each
//! throughput run's length, default 3).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use sdk_registry::{
    server::{router, serve, Limits, Registry, ServerConfig},
    HttpBackend, RegistryBackend, ServiceInstance,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

const CALLERS: usize = 64;
const TOKEN: &str = "bench-token";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(spec) = std::env::var("SDK_REGISTRY_BENCH_SERVE") {
        rt.block_on(serve_child(&spec));
        return;
    }
    let seconds: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // `cargo bench -p sdk-registry-benches --bench registry -- heartbeats` runs one section.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    rt.block_on(async move {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        if run("lookups") {
            lookups(&client, seconds).await;
        }
        if run("heartbeats") {
            heartbeats(&client, seconds).await;
        }
        if run("registrations") {
            registrations(&client).await;
        }
        if run("memory") {
            event_stream_memory(&client).await;
        }
        if run("propagation") {
            propagation(&client).await;
        }
    });
}

// === the child server ===

/// Runs as the server: `SDK_REGISTRY_BENCH_SERVE` is `registry [data|-] [ttl] [addr]` or
/// `bare`.
async fn serve_child(spec: &str) {
    let mut words = spec.split(' ');
    let addr = spec.split(' ').nth(3).unwrap_or("127.0.0.1:0");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    let limits = Limits {
        max_connections: 10_000,
        ..Limits::default()
    };
    let router = match words.next() {
        Some("bare") => {
            // The same 100 records a lookup answers, serialized once, as a static answer.
            let records: Vec<sdk_registry::InstanceRecord> = (0..100)
                .map(|i| sdk_registry::InstanceRecord {
                    instance: instance("svc-0", &format!("i-{i}"), 0),
                    health: sdk_registry::HealthStatus::Unknown,
                    last_heartbeat_ms: 1_764_000_000_000,
                })
                .collect();
            let body = Bytes::from(serde_json::to_vec(&records).expect("json"));
            axum::Router::new()
                .route(
                    "/v1/services/{service}/instances/{id}/heartbeat",
                    axum::routing::put(|| async { axum::http::StatusCode::NO_CONTENT }),
                )
                .route(
                    "/v1/services/{service}/instances",
                    axum::routing::get(move || {
                        let body = body.clone();
                        async move { ([("content-type", "application/json")], body) }
                    }),
                )
        }
        _ => {
            let data = words
                .next()
                .filter(|d| !d.is_empty() && *d != "-")
                .map(PathBuf::from);
            let ttl = words.next().and_then(|t| t.parse().ok()).unwrap_or(90);
            let registry = Registry::open(ServerConfig {
                data,
                ttl: Duration::from_secs(ttl),
                token: Some(TOKEN.into()),
                ..ServerConfig::default()
            })
            .await
            .expect("registry");
            registry.spawn_evictor(Duration::from_millis(250));
            router(registry)
        }
    };
    serve(listener, router, None, limits, std::future::pending())
        .await
        .expect("serve");
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    async fn start(spec: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env("SDK_REGISTRY_BENCH_SERVE", spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("stdout");
        let line = BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .expect("read")
            .expect("line");
        let addr = line
            .strip_prefix("listening on ")
            .expect("address line")
            .to_owned();
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// Resident and peak memory (VmRSS, VmHWM) in MB.
    fn memory(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id().expect("pid")))
                .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

async fn send(client: &HttpClient, method: &str, url: String, body: Option<Vec<u8>>) -> u16 {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let response = client.request(request).await.expect("answer");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

/// Registers `body` (a JSON instance); returns the status.
async fn post(client: &HttpClient, url: &str, body: Vec<u8>) -> u16 {
    send(client, "POST", format!("{url}/v1/instances"), Some(body)).await
}

fn instance(service: &str, id: &str, padding: usize) -> ServiceInstance {
    let mut instance = ServiceInstance::new(service, ("10.0.0.1", 8080)).with_id(id);
    if padding > 0 {
        instance
            .metadata
            .insert("padding".into(), "x".repeat(padding));
    }
    instance
}

/// Registers `ids` with `CALLERS` concurrent callers; returns registrations per second.
async fn register_all(client: &HttpClient, url: &str, instances: Vec<ServiceInstance>) -> f64 {
    let total = instances.len();
    let queue = Arc::new(std::sync::Mutex::new(instances));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, url, queue) = (client.clone(), url.to_owned(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(next) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    let body = serde_json::to_vec(&next).expect("json");
                    let status =
                        send(&client, "POST", format!("{url}/v1/instances"), Some(body)).await;
                    assert_eq!(status, 201);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// `CALLERS` callers sending `request(n)` for `seconds`; returns requests per second.
async fn throughput(
    client: &HttpClient,
    seconds: f64,
    request: impl Fn(usize) -> (String, String) + Send + Sync + 'static,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, stop, done, request) =
                (client.clone(), stop.clone(), done.clone(), request.clone());
            tokio::spawn(async move {
                let mut n = caller;
                while !stop.load(Ordering::Relaxed) {
                    let (method, url) = request(n);
                    let status = send(&client, &method, url, None).await;
                    assert!(status < 300, "{status}");
                    done.fetch_add(1, Ordering::Relaxed);
                    n += CALLERS;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / seconds
}

// === 1. lookups ===

async fn lookups(client: &HttpClient, seconds: f64) {
    let bare = Server::start("bare").await;
    let url = bare.url.clone();
    let floor = throughput(client, seconds, move |n| {
        (
            "GET".into(),
            format!("{url}/v1/services/svc-{}/instances", n % 100),
        )
    })
    .await;
    drop(bare);
    let server = Server::start("registry").await;
    let instances = (0..100)
        .flat_map(|s| (0..100).map(move |i| instance(&format!("svc-{s}"), &format!("i-{i}"), 0)))
        .collect();
    register_all(client, &server.url, instances).await;
    let url = server.url.clone();
    let rate = throughput(client, seconds, move |n| {
        (
            "GET".into(),
            format!("{url}/v1/services/svc-{}/instances", n % 100),
        )
    })
    .await;
    println!("\n1. lookups/s: 10,000 instances (100 services x 100), {CALLERS} callers; each answers 100 instances as JSON");
    println!("   bare axum, the same JSON precomputed (floor)  {floor:>8.0}");
    println!("   registry                                      {rate:>8.0}  ({:.2}x the floor's time per request)", floor / rate);
}

// === 2. heartbeats ===

async fn heartbeats(client: &HttpClient, seconds: f64) {
    let bare = Server::start("bare").await;
    let url = bare.url.clone();
    let floor = throughput(client, seconds, move |n| {
        (
            "PUT".into(),
            format!("{url}/v1/services/s/instances/i{n}/heartbeat"),
        )
    })
    .await;
    drop(bare);

    let mut rows = Vec::new();
    for (label, services) in [
        ("20,000 in one service", 1usize),
        ("20,000 across 500 services", 500),
    ] {
        let server = Server::start("registry").await;
        let per = 20_000 / services;
        let instances = (0..20_000)
            .map(|i| instance(&format!("svc-{}", i / per), &format!("i-{i}"), 0))
            .collect();
        register_all(client, &server.url, instances).await;
        let url = server.url.clone();
        let rate = throughput(client, seconds, move |n| {
            let i = (n * 7919) % 20_000;
            (
                "PUT".into(),
                format!(
                    "{url}/v1/services/svc-{}/instances/i-{i}/heartbeat",
                    i / per
                ),
            )
        })
        .await;
        rows.push((label, rate));
    }
    println!("\n2. heartbeats/s, {CALLERS} callers (target: >= 5,000/s, the two within 2x)");
    println!("   bare axum 204 (floor)          {floor:>8.0}");
    for (label, rate) in &rows {
        println!(
            "   {label:<30} {rate:>8.0}  ({:.2}x the floor's time per request)",
            floor / rate
        );
    }
    println!(
        "   one service / 500 services: {:.2}",
        rows[0].1 / rows[1].1
    );
}

// === 3. registrations with the data file ===

async fn registrations(client: &HttpClient) {
    let dir = std::env::temp_dir().join(format!("sdk-registry-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = dir.join("registry.db");
    let spec = if std::env::var_os("BENCH_NO_DATA").is_some() {
        "registry".to_owned()
    } else {
        format!("registry {}", data.display())
    };
    let server = Server::start(&spec).await;
    let batch = |from: usize, to: usize| -> Vec<ServiceInstance> {
        (from..to)
            .map(|i| instance(&format!("svc-{}", i % 500), &format!("i-{i}"), 200))
            .collect()
    };
    // At 1,000: 1,000 registered first (and the connections opened), then 5,000 timed.
    register_all(client, &server.url, batch(0, 1_000)).await;
    let first = register_all(client, &server.url, batch(1_000, 6_000)).await;
    let started = Instant::now();
    register_all(client, &server.url, batch(6_000, 50_000)).await;
    let fill = started.elapsed();
    // At 50,000: the next 5,000.
    let last = register_all(client, &server.url, batch(50_000, 55_000)).await;
    drop(server);
    let raw = raw_sqlite(&dir.join("raw.db"), 2_000).await;
    println!("\n3. registrations/s with the data file (SQLite, WAL, synchronous=FULL), {CALLERS} callers");
    println!("   raw SQLite, one transaction per row (floor)   {raw:>8.0}");
    println!(
        "   registry at 1,000 instances (1,000-6,000)     {first:>8.0}  ({:.2}x raw)",
        first / raw
    );
    println!(
        "   registry at 50,000 instances (50,000-55,000)  {last:>8.0}  ({:.2}x raw)",
        last / raw
    );
    println!(
        "   at 1,000 / at 50,000: {:.2} (target: within 2x); 6,000 to 50,000 took {:.1?}",
        first / last,
        fill
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows per second written one transaction at a time, straight through sqlx.
async fn raw_sqlite(path: &Path, rows: usize) -> f64 {
    use sqlx::{
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
        Connection as _,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("sqlite");
    sqlx::raw_sql("CREATE TABLE t (service TEXT, id TEXT, instance TEXT, health TEXT, PRIMARY KEY (service, id)) WITHOUT ROWID")
        .execute(&mut connection)
        .await
        .expect("table");
    let started = Instant::now();
    for i in 0..rows {
        let json = serde_json::to_string(&instance("svc", &format!("i-{i}"), 200)).expect("json");
        sqlx::query("INSERT OR REPLACE INTO t VALUES (?, ?, ?, 'unknown')")
            .bind("svc")
            .bind(format!("i-{i}"))
            .bind(json)
            .execute(&mut connection)
            .await
            .expect("insert");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

// === 4. event-stream memory ===

async fn event_stream_memory(client: &HttpClient) {
    let server = Server::start("registry").await;
    // About 1 MB of JSON: 4,000 instances of ~260 bytes.
    let instances = (0..4_000)
        .map(|i| instance("big", &format!("i-{i}"), 150))
        .collect();
    register_all(client, &server.url, instances).await;
    let set_bytes = {
        let response = client
            .get(
                format!("{}/v1/services/big/instances", server.url)
                    .parse()
                    .expect("uri"),
            )
            .await
            .expect("answer");
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len()
    };
    let (before, _) = server.memory();
    let addr = server.url.trim_start_matches("http://").to_owned();
    let received = Arc::new(AtomicUsize::new(0));
    let mut held = Vec::new();
    for n in 0..1_000 {
        let mut tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        tcp.write_all(b"GET /v1/services/big/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        if n % 2 == 0 {
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(read) = tcp.read(&mut buf).await {
                    if read == 0 {
                        break;
                    }
                    received.fetch_add(read, Ordering::Relaxed);
                }
            });
        } else {
            held.push(tcp); // never reads
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (connected, _) = server.memory();
    for i in 0..20 {
        let body = serde_json::to_vec(&instance("big", &format!("new-{i}"), 150)).expect("json");
        assert_eq!(post(client, &server.url, body).await, 201);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, peak) = server.memory();
    println!("\n4. memory with 1,000 event-stream watchers (500 reading, 500 never reading), service set {:.2} MB, 20 changes (target: < 100 MB)", set_bytes as f64 / 1e6);
    println!("   server RSS before watchers {before:.0} MB, with watchers {connected:.0} MB, after 20 changes {after:.0} MB, peak {peak:.0} MB");
    println!("   readers received {:.0} MB in all ({:.0} MB if every reader got every version), sent from one shared buffer per version",
        received.load(Ordering::Relaxed) as f64 / 1e6, 500.0 * 21.0 * set_bytes as f64 / 1e6);
    drop(held);
}

// === 5. propagation ===

async fn propagation(client: &HttpClient) {
    let dir = std::env::temp_dir().join(format!("sdk-registry-bench-prop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let spec = format!("registry {} 2", dir.join("registry.db").display());
    let mut server = Server::start(&spec).await;
    let spec = format!("{spec} {}", server.url.trim_start_matches("http://"));
    let follower = HttpBackend::new(&server.url, Some(TOKEN.into())).expect("url");
    let mut changes = follower.watch("prop").await.expect("watch");
    let mut writes = Vec::new();
    let mut evictions = Vec::new();
    let mut restart = Duration::ZERO;
    let seen = |changes: &mut tokio::sync::watch::Receiver<sdk_registry::Snapshot>,
                id: &str,
                present: bool| {
        let ids: Vec<String> = changes
            .borrow_and_update()
            .iter()
            .map(|r| r.instance.id.clone())
            .collect();
        ids.iter().any(|i| i == id) == present
    };
    for n in 0..100 {
        let id = format!("p{n}");
        let body = serde_json::to_vec(&instance("prop", &id, 0)).expect("json");
        if n == 50 {
            // kill -9, restart on the same data, then a registration the follower must see.
            server.child.kill().await.expect("kill");
            server = Server::start(&spec).await;
            let url = server.url.clone();
            let acked = Instant::now();
            assert_eq!(post(client, &url, body).await, 201);
            wait_until(&mut changes, |c| seen(c, &id, true)).await;
            restart = acked.elapsed();
            continue;
        }
        let acked = if n % 5 == 4 {
            // Left to expire: TTL 2 s from the registration, removed by the evictor.
            assert_eq!(post(client, &server.url, body).await, 201);
            let expires = Instant::now() + Duration::from_secs(2);
            wait_until(&mut changes, |c| seen(c, &id, true)).await;
            wait_until(&mut changes, |c| seen(c, &id, false)).await;
            evictions.push(expires.elapsed());
            continue;
        } else {
            let acked = Instant::now();
            assert_eq!(post(client, &server.url, body).await, 201);
            acked
        };
        wait_until(&mut changes, |c| seen(c, &id, true)).await;
        writes.push(acked.elapsed());
        let acked = Instant::now();
        assert_eq!(
            send(
                client,
                "DELETE",
                format!("{}/v1/services/prop/instances/{id}", server.url),
                None
            )
            .await,
            204
        );
        wait_until(&mut changes, |c| seen(c, &id, false)).await;
        writes.push(acked.elapsed());
    }
    writes.sort();
    evictions.sort();
    println!(
        "\n5. propagation to a follower (HttpBackend long poll), 100 changes (target: worst < 1 s)"
    );
    println!(
        "   writes ({}): p50 {:.1?}, worst {:.1?}",
        writes.len(),
        writes[writes.len() / 2],
        writes[writes.len() - 1]
    );
    println!(
        "   evictions ({}), from the TTL's end: p50 {:.1?}, worst {:.1?}",
        evictions.len(),
        evictions[evictions.len() / 2],
        evictions[evictions.len() - 1]
    );
    println!("   after kill -9 and restart: {restart:.1?}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn wait_until(
    changes: &mut tokio::sync::watch::Receiver<sdk_registry::Snapshot>,
    mut done: impl FnMut(&mut tokio::sync::watch::Receiver<sdk_registry::Snapshot>) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(changes) {
            changes.changed().await.expect("watching");
        }
    })
    .await
    .expect("seen within 10 s");
}
