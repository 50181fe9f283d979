//! The gateway against a direct call, a minimal hand-written hyper reverse proxy and nginx
//! (Debian's package, the proxy a user would otherwise pick), in the same run, and the cost
//! of verifying a token.
//!
//! - **Added latency**: a small JSON GET, directly to the service, through the bare proxy,
//!   and through the gateway (an HS256 token checked, a per-client rate limit taken, the
//!   claim forwarded, the route matched and rewritten, metrics recorded, the call through
//!   the SDK's pipeline). One caller: requests interleaved one by one in rotating order;
//!   64 callers: rounds of one second per target, rotating.
//! - **Cost per request**: each proxy runs in a process of its own (this binary, `serve
//!   bare|gateway`, or nginx with one worker and `master_process off`), pinned to the second
//!   core (`taskset -c 1`) while the callers and the service share the first; its CPU time
//!   (user + system, from `/proc`) over the 64-caller rounds divided by the requests it
//!   forwarded.
//! - **Instructions and allocations per request**: the bare proxy's and the gateway's
//!   process under `valgrind --tool=callgrind`, 2,000 requests one at a time; allocations are
//!   the calls to `malloc` and `calloc` it counted.
//! - **JWT**: `Verifier::verify` of an HS256, an RS256 and an ES256 token, in a loop, checked
//!   each time and remembered.
//!
//! `cargo bench -p sdk-benches --bench gateway` writes the "Gateway" section of
//! docs/benchmarks.md; `cargo bench -p sdk-benches --bench gateway -- floor` prints the
//! gateway's instructions per request with its optional stages turned off one by one
//! (token, rate limit, metrics, retries, breaker), against the bare proxy's.

use std::{
    convert::Infallible,
    net::SocketAddr,
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/report.rs"]
mod report;

const SECRET: &str = "a-bench-secret-that-is-at-least-32-bytes";
const ONE_CALLER: usize = 5_000;
const ROUNDS: usize = 3;
const CALLERS: usize = 64;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// The service: a small JSON object for any GET.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|| async {
        axum::Json(
            json!({"id": 42, "name": "Ada Lovelace", "email": "ada@example.com", "active": true}),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The bare reverse proxy: every request sent on to `upstream` as it is (the URI's
/// authority replaced), the answer streamed back. What a user might hand-write with hyper.
async fn serve_bare(upstream: SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    let client: Client<HttpConnector, hyper::body::Incoming> = {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector)
    };
    let base = format!("http://{upstream}");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    let client = client.clone();
                    let uri = format!(
                        "{base}{}",
                        request.uri().path_and_query().map_or("/", |p| p.as_str())
                    );
                    async move {
                        *request.uri_mut() = uri.parse().expect("a URI");
                        request.headers_mut().remove(http::header::HOST);
                        let response = match client.request(request).await {
                            Ok(response) => response.map(axum::body::Body::new),
                            Err(_) => http::Response::builder()
                                .status(502)
                                .body(axum::body::Body::empty())
                                .expect("a response"),
                        };
                        Ok::<_, Infallible>(response)
                    }
                },
            );
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// The bench's gateway configuration, with the optional stages named in `off` (a comma list
/// of `auth`, `limit`, `metrics`, `retry`, `breaker`; empty for none) turned off.
fn gateway_config(upstream: SocketAddr, off: &str) -> String {
    let off = |stage: &str| off.split(',').any(|s| s.trim() == stage);
    let mut config = format!(
        "[sdk]\nmetrics = {}\n\n[services.users]\ninstances = [\"http://{upstream}\"]\n",
        !off("metrics")
    );
    if off("retry") {
        config.push_str("[services.users.retry]\nmax_attempts = 1\n");
    }
    if off("breaker") {
        config.push_str("[services.users.circuit_breaker]\nenabled = false\n");
    }
    config.push_str(
        "\n[routes.users]\npath = \"/api/users/{id}\"\nservice = \"users\"\nrewrite = \"/users/{id}\"\n",
    );
    if !off("auth") {
        config.push_str("protected = true\n");
    }
    if !off("limit") {
        config.push_str("rate_limit = { per_second = 1000000, burst = 1000000 }\n");
    }
    if !off("auth") {
        config.push_str(&format!(
            "\n[gateway.jwt]\nhs256_secret = \"{SECRET}\"\nforward_claims = {{ sub = \"x-user-id\" }}\n"
        ));
    }
    config
}

/// The variable that turns a served gateway's optional stages off (see [`gateway_config`]).
const OFF_VAR: &str = "GATEWAY_BENCH_OFF";

/// The gateway as the binary runs it: its logging, a Prometheus recorder, the registry
/// server's `serve`.
async fn serve_gateway(upstream: SocketAddr) {
    sdk_gateway::init_logging();
    let off = std::env::var(OFF_VAR).unwrap_or_default();
    let config = sdk::SdkConfig::from_toml_str(&gateway_config(upstream, &off)).expect("config");
    let gateway_config =
        sdk_gateway::GatewayConfig::from_sdk_config(&config).expect("gateway config");
    let metrics = sdk_registry::server::metrics_recorder().expect("recorder");
    let sdk = sdk::ServiceSdk::from_config(config).expect("sdk");
    let gateway = sdk_gateway::Gateway::new(sdk, &gateway_config)
        .expect("gateway")
        .with_metrics(metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    let limits = sdk_registry::server::Limits {
        max_connections: 100_000,
        ..Default::default()
    };
    sdk_registry::server::serve(
        listener,
        gateway.app(),
        None,
        limits,
        std::future::pending(),
    )
    .await
    .expect("serve");
}

/// How a proxy's process is started: pinned to the second core (`taskset -c 1`) when
/// `taskset` is here, so every proxy gets one core and the callers and the service the other.
fn launcher() -> Vec<&'static str> {
    match std::path::Path::new("/usr/bin/taskset").exists() {
        true => vec!["taskset", "-c", "1"],
        false => vec![],
    }
}

/// This process (the callers and the service) pinned to the first core, when it can be.
fn pin_self() {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-cp", "0", &pid])
        .stdout(Stdio::null())
        .status();
}

/// A proxy in a process of its own, on one core: (child, address).
async fn spawn_proxy(kind: &str, upstream: SocketAddr) -> (tokio::process::Child, SocketAddr) {
    let this = std::env::current_exe().expect("this binary");
    let mut child = nginx::launched(&launcher(), this)
        .args(["serve", kind, &upstream.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn a proxy");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = lines.next_line().await.expect("read").expect("an address");
    (child, addr.parse().expect("an address"))
}

/// Instructions per request of the proxy `kind` under `valgrind --tool=callgrind`: 500
/// requests to warm it, the counters zeroed, 2,000 requests, the counters dumped. `None`
/// without valgrind.
async fn instructions_per_request(
    kind: &str,
    upstream: SocketAddr,
    path: &str,
    off: &str,
) -> Option<(f64, f64)> {
    const N: u64 = 2_000;
    let out = std::env::temp_dir().join(format!(
        "sdk-gateway-bench-{kind}-{}.cg",
        std::process::id()
    ));
    let mut child = tokio::process::Command::new("valgrind")
        .args([
            "--tool=callgrind",
            &format!("--callgrind-out-file={}", out.display()),
        ])
        .arg(std::env::current_exe().ok()?)
        .args(["serve", kind, &upstream.to_string()])
        .env(OFF_VAR, off)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let pid = child.id()?.to_string();
    let mut lines = tokio::io::BufReader::new(child.stdout.take()?).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .ok()?
        .ok()??;
    let url = format!("http://{addr}{path}");
    let (client, token) = (client(), bench_token());
    for _ in 0..500 {
        get(&client, &url, &token).await;
    }
    let control = |what: &'static str| {
        let pid = pid.clone();
        async move {
            tokio::process::Command::new("callgrind_control")
                .args([what, &pid])
                .stdout(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success())
        }
    };
    control("-z").await.then_some(())?;
    for _ in 0..N {
        get(&client, &url, &token).await;
    }
    control("-d").await.then_some(())?;
    let _ = child.kill().await;
    // The dump after zeroing is the out file's first part.
    let dump = std::fs::read_to_string(format!("{}.1", out.display())).ok()?;
    let _ = std::fs::remove_file(format!("{}.1", out.display()));
    let _ = std::fs::remove_file(&out);
    let total: f64 = dump
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))?
        .trim()
        .parse()
        .ok()?;
    Some((total / N as f64, allocations(&dump) as f64 / N as f64))
}

/// The calls to `malloc` and `calloc` a callgrind dump records: the allocations of the run
/// it covers (every Rust allocation reaches one of them through the system allocator;
/// reallocations are not counted, as the `instructions` bench's counting allocator does not
/// count them). Function names are compressed: `cfn=(id) name` the first time, `cfn=(id)`
/// after, and a `calls=COUNT ...` line follows the function called.
fn allocations(dump: &str) -> u64 {
    let mut names = std::collections::HashMap::new();
    let (mut counting, mut total) = (false, 0);
    for line in dump.lines() {
        let (called, named) = match (line.strip_prefix("cfn=("), line.strip_prefix("fn=(")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                if let (true, Some(calls)) = (counting, line.strip_prefix("calls=")) {
                    let count = calls.split_whitespace().next().and_then(|c| c.parse().ok());
                    total += count.unwrap_or(0u64);
                    counting = false;
                }
                continue;
            }
        };
        let Some((id, name)) = named.split_once(')') else {
            continue;
        };
        let name = name.trim();
        if !name.is_empty() {
            names.insert(id, name);
        }
        if called {
            counting = matches!(names.get(id), Some(&"malloc" | &"calloc"));
        }
    }
    total
}

/// CPU time (user + system) the process `pid` has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // Linux reports in USER_HZ, 100 a second on every platform it runs on here.
    Duration::from_millis(ticks * 10)
}

struct Target {
    name: &'static str,
    url: String,
    pid: Option<u32>,
    one: Vec<Duration>,
    many: Vec<Duration>,
    completed: u64,
    elapsed: Duration,
    cpu: Duration,
}

async fn get(client: &HttpClient, url: &str, token: &str) -> Duration {
    let request = http::Request::get(url)
        .header(http::header::AUTHORIZATION, token)
        .body(Empty::new())
        .expect("a request");
    let started = Instant::now();
    let response = client.request(request).await.expect("an answer");
    assert_eq!(response.status(), 200, "{url}");
    response.into_body().collect().await.expect("a body");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

async fn one_caller(targets: &mut [Target], token: &str) {
    let client = client();
    for target in targets.iter() {
        for _ in 0..200 {
            get(&client, &target.url, token).await; // warm: connections, caches
        }
    }
    for i in 0..ONE_CALLER {
        for k in 0..targets.len() {
            let target = &mut targets[(i + k) % targets.len()];
            let took = get(&client, &target.url, token).await;
            target.one.push(took);
        }
    }
}

async fn many_callers(target: &mut Target, token: &str) {
    let client = client();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu_before = target.pid.map(cpu_time);
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (client, url, token, done) = (
            client.clone(),
            target.url.clone(),
            token.to_owned(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < Duration::from_secs(1) {
                latencies.push(get(&client, &url, &token).await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    for task in tasks {
        target.many.extend(task.await.expect("a caller"));
    }
    target.elapsed += started.elapsed();
    target.completed += done.load(Ordering::Relaxed);
    if let (Some(pid), Some(before)) = (target.pid, cpu_before) {
        target.cpu += cpu_time(pid) - before;
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Microseconds per verification of `token`.
async fn verify_cost(verifier: &sdk_gateway::auth::Verifier, token: &str) -> f64 {
    for _ in 0..200 {
        verifier.verify(token).await.expect("a valid token");
    }
    let n = 5_000;
    let started = Instant::now();
    for _ in 0..n {
        verifier.verify(token).await.expect("a valid token");
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

async fn jwt_rows() -> Vec<String> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    sdk_gateway::install_jwt_crypto();
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../sdk-gateway/tests/keys/rsa-a.pem"))
        .expect("rsa");
    let ec =
        EncodingKey::from_ec_pem(include_bytes!("../sdk-gateway/tests/keys/ec-a.pem")).expect("ec");
    let jwk = |key: &EncodingKey, alg, kid: &str| {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(key, alg).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    };
    let keys =
        json!({ "keys": [jwk(&rsa, Algorithm::RS256, "r"), jwk(&ec, Algorithm::ES256, "e")] });
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(keys) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let verifier = |remember: &str| {
        let config = sdk::SdkConfig::from_toml_str(&format!(
            "[gateway.jwt]\nhs256_secret = \"{SECRET}\"\njwks_url = \"http://{addr}/jwks\"\nverified_token_ttl = \"{remember}\"\n"
        ))
        .expect("config");
        let jwt = sdk_gateway::GatewayConfig::from_sdk_config(&config)
            .expect("gateway config")
            .jwt
            .expect("jwt");
        let sdk = sdk::ServiceSdk::builder().build().expect("sdk");
        sdk_gateway::auth::Verifier::new(&jwt, &sdk).expect("verifier")
    };
    let (checking, remembering) = (verifier("0s"), verifier("30s"));
    checking.prefetch().await;
    remembering.prefetch().await;
    let claims = json!({ "sub": "bench", "exp": 4_000_000_000u64 });
    let sign = |alg, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, key).expect("sign")
    };
    let hs = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("secret"),
    );
    let rs = sign(Algorithm::RS256, Some("r"), &rsa);
    let es = sign(Algorithm::ES256, Some("e"), &ec);
    let mut rows = vec![
        "| token | per request |".to_owned(),
        "| --- | ---: |".to_owned(),
    ];
    for (name, token, verifier) in [
        ("HS256, checked (configured secret)", &hs, &checking),
        (
            "RS256, checked (2048-bit key from the JWKS)",
            &rs,
            &checking,
        ),
        ("ES256, checked (P-256 key from the JWKS)", &es, &checking),
        (
            "any of them, seen within `verified_token_ttl` (remembered; the gateway's default)",
            &rs,
            &remembering,
        ),
    ] {
        let cost = verify_cost(verifier, token).await;
        eprintln!("{name}: {cost:.2} µs");
        rows.push(format!("| {name} | {cost:.2} µs |"));
    }
    rows
}

/// `Bearer <an HS256 token for bench-user>`.
fn bench_token() -> String {
    format!(
        "Bearer {}",
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({ "sub": "bench-user", "exp": 4_000_000_000u64 }),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("secret"),
        )
        .expect("a token")
    )
}

/// The overhead table's rows, each path against the direct call, and each proxy's CPU per
/// request (µs).
fn overhead_table(targets: &[Target]) -> (Vec<String>, Vec<Option<f64>>) {
    let direct_one = (
        percentile(&targets[0].one, 0.5),
        percentile(&targets[0].one, 0.99),
    );
    let direct_many = (
        percentile(&targets[0].many, 0.5),
        percentile(&targets[0].many, 0.99),
    );
    let mut table = vec![
        "| path | 1 caller p50 | p99 | added p50 | added p99 | 64 callers: req/s | p50 | p99 | added p50 | added p99 | proxy CPU per request |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let mut cost = Vec::new();
    for t in targets {
        let (p50, p99) = (percentile(&t.one, 0.5), percentile(&t.one, 0.99));
        let (m50, m99) = (percentile(&t.many, 0.5), percentile(&t.many, 0.99));
        let rate = t.completed as f64 / t.elapsed.as_secs_f64();
        let per_request = (t.completed > 0).then(|| t.cpu.as_secs_f64() * 1e6 / t.completed as f64);
        cost.push(per_request);
        let added = |a: Duration, b: Duration| us(a.saturating_sub(b));
        table.push(format!(
            "| {} | {} | {} | {} | {} | {rate:.0} | {} | {} | {} | {} | {} |",
            t.name,
            us(p50),
            us(p99),
            added(p50, direct_one.0),
            added(p99, direct_one.1),
            us(m50),
            us(m99),
            added(m50, direct_many.0),
            added(m99, direct_many.1),
            per_request
                .filter(|_| t.pid.is_some())
                .map_or("–".to_owned(), |c| format!("{c:.1} µs")),
        ));
        eprintln!("{}", table[table.len() - 1]);
    }
    (table, cost)
}

/// The instructions per request of the bare proxy and the gateway, as the report says it.
async fn instructions_line(upstream: SocketAddr) -> String {
    eprintln!("instructions (callgrind)...");
    let bare_ir = instructions_per_request("bare", upstream, "/users/42", "").await;
    let gateway_ir = instructions_per_request("gateway", upstream, "/api/users/42", "").await;
    match (bare_ir, gateway_ir) {
        (Some((bare, bare_allocs)), Some((gateway, gateway_allocs))) => format!(
            "Instructions per request (`valgrind --tool=callgrind` on the proxy process, 2,000 requests one at a time after 500 unmeasured): bare proxy {bare:.0}, gateway {gateway:.0}: **{:.2}x**. Allocations per request (the calls to `malloc` and `calloc` callgrind counted in the same runs): bare proxy {bare_allocs:.1}, gateway {gateway_allocs:.1}.",
            gateway / bare
        ),
        _ => "Instructions per request: valgrind is not installed, not measured.".to_owned(),
    }
}

async fn run() {
    pin_self();
    let upstream = upstream().await;
    let (bare, bare_addr) = spawn_proxy("bare", upstream).await;
    let (gateway, gateway_addr) = spawn_proxy("gateway", upstream).await;
    let token = bench_token();
    let target = |name, url: String, pid| Target {
        name,
        url,
        pid,
        one: vec![],
        many: vec![],
        completed: 0,
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    let mut targets = vec![
        target(
            "direct to the service",
            format!("http://{upstream}/users/42"),
            None,
        ),
        target(
            "bare hyper reverse proxy",
            format!("http://{bare_addr}/users/42"),
            bare.id(),
        ),
        target(
            "sdk-gateway (JWT, rate limit, metrics)",
            format!("http://{gateway_addr}/api/users/42"),
            gateway.id(),
        ),
    ];
    let nginx = nginx::start(upstream, &launcher()).await;
    if let Some(nginx) = &nginx {
        targets.push(target(
            "nginx 1.22 (Debian; one worker, upstream keep-alive)",
            format!("http://{}/users/42", nginx.addr),
            nginx.child.id(),
        ));
    }
    eprintln!("one caller...");
    one_caller(&mut targets, &token).await;
    eprintln!("{CALLERS} callers...");
    for round in 0..ROUNDS {
        for k in 0..targets.len() {
            let index = (round + k) % targets.len();
            many_callers(&mut targets[index], &token).await;
        }
    }
    for t in &mut targets {
        t.one.sort();
        t.many.sort();
    }
    let (table, cost) = overhead_table(&targets);
    let ratio = match (cost[1], cost[2]) {
        (Some(bare), Some(gateway)) => format!("{:.2}x", gateway / bare),
        _ => "–".into(),
    };
    let rate = |t: &Target| t.completed as f64 / t.elapsed.as_secs_f64();
    let throughput_ratio = rate(&targets[2]) / rate(&targets[1]);
    let against_nginx = match (cost[2], cost.get(3).copied().flatten()) {
        (Some(gateway), Some(nginx)) => format!(
            " Against nginx: **{:.2}x** its CPU per request (target: at most 1.5x) and **{:.2}x** its requests/s at 64 callers (target: at least 0.67x).",
            gateway / nginx,
            rate(&targets[2]) / rate(&targets[3]),
        ),
        _ => " nginx is not installed here: not compared.".to_owned(),
    };
    let instructions = instructions_line(upstream).await;
    eprintln!("{instructions}");
    eprintln!("JWT...");
    let jwt = jwt_rows().await;
    let section = format!(
        "## Gateway\n\nWritten by `cargo bench -p sdk-benches --bench gateway` (2 cores; commit {}; client, proxies and service on one machine, each proxy in a process of its own). \
A small JSON GET: directly to the service, through a minimal hand-written hyper reverse proxy (hyper-util's server and pooled client, nothing else), through `sdk-gateway` \
(HS256 token verified, a per-client rate limit taken, a claim forwarded, the route matched and rewritten, `x-forwarded-*` and a request id added, metrics recorded, the call through the SDK's pipeline), \
and through Debian's nginx (one worker, keep-alive to the service). Each proxy runs pinned to the second core (`taskset -c 1`; the two Rust proxies on a one-thread runtime), the callers and the service on the first. \
One caller: {ONE_CALLER} requests per path, interleaved one by one; 64 callers: {ROUNDS} rounds of 1 s per path, rotating. \
\"Added\" is over the direct call; proxy CPU per request is the proxy process's user + system time over the 64-caller rounds divided by the requests it forwarded. \
The callers and the service share one core, so the direct row's requests/s is the most any path can show here: compare the proxies by their CPU per request.\n\n{}\n\n\
The gateway's CPU per request against the bare proxy's: **{ratio}** (target: at most 1.3x); its throughput at 64 callers: {throughput_ratio:.2}x the bare proxy's (target: at least 0.8x).{against_nginx}\n\n{instructions}\n\n\
Verifying a token (`Verifier::verify`: header, key lookup, signature, `exp`/`nbf`; 5,000 in a loop), and finding one verified before:\n\n{}\n",
        report::commit(),
        table.join("\n"),
        jwt.join("\n"),
    );
    println!("{section}");
    let path = report::path();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    match std::fs::write(&path, report::with_section(&old, "## Gateway", &section)) {
        Ok(()) => eprintln!("wrote the gateway section of {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
    drop((bare, gateway, nginx));
}

/// `floor`: the gateway's instructions per request with its optional stages turned off one
/// after another, against the bare proxy's in the same run: what forwarding through the
/// SDK's pipeline costs whatever is configured (issue 33). Prints a Markdown table.
async fn floor() {
    let upstream = upstream().await;
    let Some((bare, _)) = instructions_per_request("bare", upstream, "/users/42", "").await else {
        println!("valgrind is not here");
        return;
    };
    println!("bare proxy: {bare:.0} instructions per request\n");
    println!(
        "| turned off | instructions per request | vs the bare proxy |\n| --- | ---: | ---: |"
    );
    for off in [
        "",
        "auth",
        "auth,limit",
        "auth,limit,metrics",
        "auth,limit,metrics,retry",
        "auth,limit,metrics,retry,breaker",
    ] {
        let Some((gateway, _)) =
            instructions_per_request("gateway", upstream, "/api/users/42", off).await
        else {
            println!("| {off} | failed | |");
            continue;
        };
        let shown = if off.is_empty() { "nothing" } else { off };
        println!("| {shown} | {gateway:.0} | {:.2}x |", gateway / bare);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.get(1).map(String::as_str) == Some("serve") {
        // A proxy gets one core, as nginx's one worker does.
        builder.worker_threads(1);
    }
    let runtime = builder.enable_all().build().expect("runtime");
    if args.get(1).map(String::as_str) == Some("serve") {
        let upstream: SocketAddr = args
            .get(3)
            .and_then(|a| a.parse().ok())
            .expect("serve KIND UPSTREAM");
        runtime.block_on(async {
            match args.get(2).map(String::as_str) {
                Some("bare") => serve_bare(upstream).await,
                Some("gateway") => serve_gateway(upstream).await,
                other => panic!("unknown proxy {other:?}"),
            }
        });
        return;
    }
    // Profiling: `upstream` serves the service and prints its address; `load N URL` sends N
    // requests one at a time (under `valgrind --tool=callgrind`, run a proxy with `serve`).
    if args.get(1).map(String::as_str) == Some("upstream") {
        runtime.block_on(async {
            println!("{}", upstream().await);
            std::future::pending::<()>().await;
        });
        return;
    }
    if args.get(1).map(String::as_str) == Some("load") {
        let n: usize = args
            .get(2)
            .and_then(|n| n.parse().ok())
            .expect("load N URL");
        let url = args.get(3).expect("load N URL").clone();
        runtime.block_on(async {
            let client = client();
            let token = bench_token();
            for _ in 0..n {
                get(&client, &url, &token).await;
            }
        });
        return;
    }
    if args.get(1).map(String::as_str) == Some("floor") {
        runtime.block_on(floor());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench` asks harness-less benches to list their tests
    }
    runtime.block_on(run());
}
