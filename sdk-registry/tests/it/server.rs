//! The registry server as a real process: API, auth, bad input, TTL, durability, concurrency.
#![cfg(feature = "server")]

use crate::support;

use std::{path::Path, time::Duration};

use crate::support::{data_file, Server};
use serde_json::{json, Value};

async fn start(data: &Path, ttl_secs: u64) -> Server {
    start_with(data, ttl_secs, &[]).await
}

async fn start_with(data: &Path, ttl_secs: u64, extra: &[&str]) -> Server {
    support::start_server(data, ttl_secs, "127.0.0.1:0", extra).await
}

fn instance(id: &str, port: u16) -> Value {
    json!({ "id": id, "service": "orders", "host": "127.0.0.1", "port": port, "metadata": { "region": "eu" } })
}

async fn register(http: &reqwest::Client, server: &Server, body: &Value) -> reqwest::Response {
    http.post(format!("{}/v1/instances", server.url))
        .bearer_auth("s3cret")
        .json(body)
        .send()
        .await
        .expect("reachable")
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json")
}

async fn ids(http: &reqwest::Client, server: &Server) -> Vec<String> {
    let records = get_json(http, format!("{}/v1/services/orders/instances", server.url)).await;
    let mut ids: Vec<String> = records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["instance"]["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Requests that are refused, each with its status and a word its error says.
fn bad_input(
    http: &reqwest::Client,
    url: &str,
) -> Vec<(reqwest::RequestBuilder, u16, &'static str)> {
    vec![
        (
            http.post(format!("{url}/v1/instances"))
                .body("{not json")
                .header("content-type", "application/json"),
            400,
            "",
        ),
        (
            http.post(format!("{url}/v1/instances"))
                .json(&json!({ "id": "x", "service": "orders" })),
            400,
            "host",
        ),
        (
            http.post(format!("{url}/v1/instances"))
                .json(&instance("b", 0)),
            400,
            "port",
        ),
        (
            http.post(format!("{url}/v1/instances"))
                .json(&json!({ "id": "c", "service": "orders", "host": "a b", "port": 1 })),
            400,
            "host",
        ),
        (
            http.post(format!("{url}/v1/instances"))
                .body(vec![b'x'; 100_000])
                .header("content-type", "application/json"),
            413,
            "",
        ),
        (
            http.put(format!(
                "{url}/v1/services/orders/instances/nobody/heartbeat"
            )),
            404,
            "nobody",
        ),
        (
            http.delete(format!("{url}/v1/services/orders/instances/nobody")),
            404,
            "nobody",
        ),
    ]
}

/// A write without the token, or with a wrong one: 401, saying so.
async fn writes_need_the_token(http: &reqwest::Client, url: &str) {
    let anonymous = http
        .post(format!("{url}/v1/instances"))
        .json(&instance("a", 8081))
        .send()
        .await
        .expect("up");
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .post(format!("{url}/v1/instances"))
        .bearer_auth("guess")
        .json(&instance("a", 8081))
        .send()
        .await
        .expect("up");
    assert_eq!(wrong.status(), 401);
    let message: Value = wrong.json().await.expect("json");
    assert!(message["error"]
        .as_str()
        .expect("message")
        .contains("token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn register_list_heartbeat_and_refuse_bad_input() {
    let server = start(&data_file("api"), 90).await;
    let http = reqwest::Client::new();
    let health = get_json(&http, format!("{}/health", server.url)).await;
    assert_eq!(health["status"], "ok");
    // `GET /` says what the server is and lists its API.
    let index = get_json(&http, format!("{}/", server.url)).await;
    assert_eq!(index["name"], "sdk-registry");
    assert_eq!(index["writes"], "token");
    let paths: Vec<&str> = index["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(paths.contains(&"/v1/instances"), "{paths:?}");

    writes_need_the_token(&http, &server.url).await;
    assert_eq!(
        register(&http, &server, &instance("a", 8081))
            .await
            .status(),
        201
    );
    assert_eq!(ids(&http, &server).await, ["a"]);
    let services = get_json(&http, format!("{}/v1/services", server.url)).await;
    assert_eq!(services, json!(["orders"]));

    assert_eq!(heartbeat(&http, &server, "a").await, 204);

    let cases = bad_input(&http, &server.url);
    support::assert_json_errors(cases).await;
    assert_eq!(
        ids(&http, &server).await,
        ["a"],
        "bad input disturbed nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silence_evicts_and_watchers_hear_changes() {
    let server = start(&data_file("ttl"), 1).await;
    let http = reqwest::Client::new();
    let (version, _, _) = long_poll(&http, &server, "orders", 0, 1).await;
    let waiter = {
        let (http, url) = (http.clone(), server.url.clone());
        tokio::spawn(async move {
            http.get(format!(
                "{url}/v1/services/orders/watch?after={version}&wait=10"
            ))
            .send()
            .await
            .expect("up")
            .json::<Value>()
            .await
            .expect("json")
        })
    };
    waiting_watchers(&http, &server, 1).await;
    assert_eq!(
        register(&http, &server, &instance("a", 8081))
            .await
            .status(),
        201
    );
    let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the long poll answered")
        .expect("task");
    assert_eq!(seen["instances"][0]["instance"]["id"], "a");
    assert!(seen["version"].as_u64().expect("version") > version);

    let evicted = support::poll(Duration::from_secs(10), || {
        let (http, server) = (&http, &server);
        async move { ids(http, server).await.is_empty().then_some(()) }
    })
    .await;
    assert!(
        evicted.is_some(),
        "evicted after a 1 s TTL without heartbeats"
    );
}

/// Waits (up to 10 s) until `n` long polls wait on the server (`sdk_registry_watchers`).
async fn waiting_watchers(http: &reqwest::Client, server: &Server, n: usize) {
    let metrics = format!("{}/metrics", server.url);
    let line = format!("sdk_registry_watchers {n}");
    let found = support::poll(Duration::from_secs(10), || {
        let (http, metrics, line) = (http, &metrics, &line);
        async move {
            let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
            text.lines().any(|l| l == line).then_some(())
        }
    })
    .await;
    assert!(found.is_some(), "{n} long poll(s) waiting on the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_restart_loses_nothing() {
    let data = data_file("restart");
    let mut server = start(&data, 90).await;
    let http = reqwest::Client::new();
    for (id, port) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(
            register(&http, &server, &instance(id, port)).await.status(),
            201
        );
    }
    server.child.kill().await.expect("kill -9");
    let server = start(&data, 90).await;
    assert_eq!(ids(&http, &server).await, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_lose_no_update() {
    let data = data_file("concurrent");
    let mut server = start(&data, 90).await;
    let http = reqwest::Client::new();
    let url = server.url.clone();
    let writes = (0..200u16).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let id = format!("i{i}");
            let registered = http
                .post(format!("{url}/v1/instances"))
                .bearer_auth("s3cret")
                .json(&instance(&id, 1000 + i))
                .send()
                .await
                .expect("up");
            assert_eq!(registered.status(), 201);
            if i % 2 == 0 {
                let removed = http
                    .delete(format!("{url}/v1/services/orders/instances/{id}"))
                    .bearer_auth("s3cret")
                    .send()
                    .await
                    .expect("up");
                assert_eq!(removed.status(), 204);
            }
        }
    });
    futures_util::future::join_all(writes).await;
    let ids = ids(&http, &server).await;
    assert_eq!(
        ids.len(),
        100,
        "every odd instance remains, every even one is gone"
    );
    assert!(ids
        .iter()
        .all(|id| id[1..].parse::<u16>().expect("number") % 2 == 1));

    // Every acknowledged write reached the snapshot (writes are group-committed).
    server.child.kill().await.expect("kill -9");
    let server = start(&data, 90).await;
    assert_eq!(
        self::ids(&http, &server).await,
        ids,
        "the snapshot holds the same state"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_discovers_through_the_registry_server() {
    use sdk_registry::{HealthStatus, HttpBackend, RegistryBackend, ServiceInstance};

    let server = start(&data_file("sdk"), 90).await;
    let backend = HttpBackend::new(&server.url, Some("s3cret".into())).expect("url");
    assert!(
        !format!("{backend:?}").contains("s3cret"),
        "the token never prints"
    );
    let sdk = sdk::ServiceSdk::builder()
        .registry(backend.clone())
        .build()
        .expect("valid");
    let (a, b) = (support::echo("a").await, support::echo("b").await);
    let _a = sdk
        .register_current_service(ServiceInstance::new("echo", ("127.0.0.1", a)).with_id("a"))
        .await
        .expect("registered");
    let reg_b = sdk
        .register_current_service(ServiceInstance::new("echo", ("127.0.0.1", b)).with_id("b"))
        .await
        .expect("registered");

    let client = sdk.get_client("echo");
    let seen = |n: usize| {
        let client = client.clone();
        async move {
            let mut names = Vec::new();
            for _ in 0..n {
                if let Ok(name) = client.get("/").send::<String>().await {
                    names.push(name);
                }
            }
            names.sort();
            names.dedup();
            names
        }
    };
    let eventually = |want: Vec<&'static str>| async move {
        for _ in 0..100 {
            if seen(20).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never routed to exactly {want:?}");
    };
    eventually(vec!["a", "b"]).await;

    backend
        .set_health("echo", "a", HealthStatus::Unhealthy)
        .await
        .expect("known");
    eventually(vec!["b"]).await;
    backend
        .set_health("echo", "a", HealthStatus::Healthy)
        .await
        .expect("known");
    eventually(vec!["a", "b"]).await;
    reg_b.deregister().await.expect("registered");
    eventually(vec!["a"]).await;

    let err = backend
        .deregister("echo", "nobody")
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, sdk_registry::RegistryError::UnknownInstance { .. }),
        "{err:?}"
    );
    let unauthorized = HttpBackend::new(&server.url, None).expect("url");
    let err = unauthorized
        .register(ServiceInstance::new("echo", ("127.0.0.1", 1)).with_id("c"))
        .await
        .expect_err("no token");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn active_health_checks_flip_instances() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let flag = flag.clone();
            async move {
                if flag.load(Ordering::SeqCst) {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let server = start_with(
        &data_file("health"),
        90,
        &["--health-interval-ms", "100", "--unhealthy-threshold", "2"],
    )
    .await;
    let http = reqwest::Client::new();
    let mut body = instance("checked", port);
    body["health_check_path"] = json!("/healthz");
    assert_eq!(register(&http, &server, &body).await.status(), 201);

    let health_is = |want: &'static str| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            for _ in 0..100 {
                let records = get_json(&http, format!("{url}/v1/services/orders/instances")).await;
                if records[0]["health"] == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("health never became {want}");
        }
    };
    health_is("healthy").await;
    healthy.store(false, Ordering::SeqCst);
    health_is("unhealthy").await;
    healthy.store(true, Ordering::SeqCst);
    health_is("healthy").await;
}

/// Sends `orders/{id}`'s heartbeat; returns the status.
async fn heartbeat(http: &reqwest::Client, server: &Server, id: &str) -> u16 {
    http.put(format!(
        "{}/v1/services/orders/instances/{id}/heartbeat",
        server.url
    ))
    .bearer_auth("s3cret")
    .send()
    .await
    .expect("up")
    .status()
    .as_u16()
}

/// The next `instances` event of a server-sent event stream, as JSON (keep-alive comments
/// are skipped); `None` if the stream ended.
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String) -> Option<Value> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if event.lines().any(|l| l == "event: instances") {
                return Some(serde_json::from_str(&data).expect("JSON data"));
            }
            continue; // a keep-alive comment
        }
        let chunk = stream.chunk().await.expect("stream readable")?;
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

/// [`next_event`], within 5 s.
async fn next_within(stream: &mut reqwest::Response, buffer: &mut String) -> Option<Value> {
    tokio::time::timeout(Duration::from_secs(5), next_event(stream, buffer))
        .await
        .expect("an event within 5 s")
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sent_events_follow_a_service_until_shutdown() {
    let mut server = start(&data_file("events"), 90).await;
    let http = reqwest::Client::new();
    let mut events = http
        .get(format!("{}/v1/services/orders/events", server.url))
        .send()
        .await
        .expect("up");
    assert_eq!(
        events.headers()["content-type"],
        "text/event-stream",
        "an event stream"
    );
    let mut buffer = String::new();
    assert_eq!(
        next_within(&mut events, &mut buffer).await,
        Some(json!([])),
        "the current set first"
    );

    register(&http, &server, &instance("a", 8081)).await;
    let set = next_within(&mut events, &mut buffer)
        .await
        .expect("an event");
    assert_eq!(set[0]["instance"]["id"], "a");
    assert_eq!(set[0]["health"], "unknown");

    // A heartbeat changes nothing a watcher acts on: no event.
    assert_eq!(heartbeat(&http, &server, "a").await, 204);
    assert_eq!(server.mark(&http, "orders", "a", "unhealthy").await, 204);
    let set = next_within(&mut events, &mut buffer)
        .await
        .expect("an event");
    assert_eq!(
        set[0]["health"], "unhealthy",
        "the heartbeat sent no event of its own"
    );

    // Hostile names are refused.
    let bad = http
        .get(format!("{}/v1/services/..%2Fx/events", server.url))
        .send()
        .await
        .expect("up");
    assert_eq!(bad.status(), 400);

    // SIGTERM ends the open stream, so the server exits promptly instead of waiting on it.
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        next_within(&mut events, &mut buffer).await,
        None,
        "the stream ended"
    );
}

/// A long poll of `service` after `after` (wait `wait` s): (version, instances), and how
/// long it took.
async fn long_poll(
    http: &reqwest::Client,
    server: &Server,
    service: &str,
    after: u64,
    wait: u64,
) -> (u64, Value, Duration) {
    let started = std::time::Instant::now();
    let answer: Value = http
        .get(format!(
            "{}/v1/services/{service}/watch?after={after}&wait={wait}",
            server.url
        ))
        .send()
        .await
        .expect("up")
        .json()
        .await
        .expect("json");
    let version = answer["version"].as_u64().expect("version");
    (version, answer["instances"].clone(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_wake_only_for_their_own_service() {
    let server = start(&data_file("per-service"), 90).await;
    let http = reqwest::Client::new();
    let (version, _, _) = long_poll(&http, &server, "orders", 0, 0).await;
    let waiter = {
        let (http, url) = (http.clone(), server.url.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let answer: Value = http
                .get(format!(
                    "{url}/v1/services/orders/watch?after={version}&wait=2"
                ))
                .send()
                .await
                .expect("up")
                .json()
                .await
                .expect("json");
            (answer, started.elapsed())
        })
    };
    waiting_watchers(&http, &server, 1).await;
    for i in 0..20 {
        let body = json!({ "id": format!("p{i}"), "service": "payments", "host": "127.0.0.1", "port": 9000 });
        assert_eq!(register(&http, &server, &body).await.status(), 201);
    }
    let (answer, took) = waiter.await.expect("task");
    assert!(
        took >= Duration::from_millis(1900),
        "writes to another service did not wake the poll ({took:?})"
    );
    assert_eq!(
        answer["version"].as_u64(),
        Some(version),
        "orders did not change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eviction_wakes_followers_at_once() {
    let server = start(&data_file("evict-wakes"), 1).await;
    let http = reqwest::Client::new();
    assert_eq!(
        register(&http, &server, &instance("a", 8081))
            .await
            .status(),
        201
    );
    let (version, instances, _) = long_poll(&http, &server, "orders", 0, 0).await;
    assert_eq!(instances.as_array().map(Vec::len), Some(1));
    // A read in between must not swallow the eviction (it used to evict lazily, silently).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = ids(&http, &server).await;
    let (after, instances, took) = long_poll(&http, &server, "orders", version, 20).await;
    assert!(after > version);
    assert_eq!(instances, json!([]));
    assert!(
        took < Duration::from_secs(3),
        "announced at once ({took:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_never_go_backwards_across_a_restart() {
    let data = data_file("epoch");
    let mut server = start(&data, 90).await;
    let http = reqwest::Client::new();
    for i in 0..5 {
        assert_eq!(
            register(&http, &server, &instance(&format!("i{i}"), 8081))
                .await
                .status(),
            201
        );
    }
    let (before, _, _) = long_poll(&http, &server, "orders", 0, 0).await;
    server.child.kill().await.expect("kill -9");
    let server = start(&data, 90).await;
    // What changed while the follower was away: one more instance.
    assert_eq!(
        register(&http, &server, &instance("new", 8082))
            .await
            .status(),
        201
    );
    let (after, instances, took) = long_poll(&http, &server, "orders", before, 20).await;
    assert!(after > before, "{after} > {before}");
    assert_eq!(
        instances.as_array().map(Vec::len),
        Some(6),
        "the whole current set"
    );
    assert!(took < Duration::from_secs(1), "answered at once ({took:?})");
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_instances_do_not_delay_health_checks_and_https_instances_are_probed() {
    // Ten instances that accept and never answer.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hung_port = hung.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = hung.accept().await {
            held.push(tcp);
        }
    });
    // One healthy https instance with a private certificate.
    let identity = support::tls::self_signed();
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let https_port = support::tls::serve_tls(app, &identity).await;
    let ca = data_file("probe-ca").with_file_name("ca.pem");
    std::fs::write(&ca, &identity.cert_pem).expect("write the CA");

    let server = start_with(
        &data_file("hung"),
        90,
        &[
            "--health-interval-ms",
            "1000",
            "--health-timeout-ms",
            "2000",
            "--unhealthy-threshold",
            "3",
            "--probe-ca",
            ca.to_str().expect("path"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    for i in 0..10 {
        let mut body = instance(&format!("hung{i}"), hung_port);
        body["health_check_path"] = json!("/healthz");
        assert_eq!(register(&http, &server, &body).await.status(), 201);
    }
    let mut body = json!({ "id": "tls", "service": "orders", "scheme": "https", "host": "localhost", "port": https_port, "health_check_path": "/healthz" });
    assert_eq!(register(&http, &server, &body).await.status(), 201);
    body["id"] = json!("tls-dead");
    body["port"] = json!(1);
    assert_eq!(register(&http, &server, &body).await.status(), 201);

    let started = std::time::Instant::now();
    loop {
        let records = get_json(
            &http,
            format!("{}/v1/services/orders/instances", server.url),
        )
        .await;
        let health = |id: &str| {
            records
                .as_array()
                .expect("array")
                .iter()
                .find(|r| r["instance"]["id"] == id)
                .map(|r| r["health"].clone())
        };
        let all_hung_marked =
            (0..10).all(|i| health(&format!("hung{i}")) == Some(json!("unhealthy")));
        if all_hung_marked
            && health("tls") == Some(json!("healthy"))
            && health("tls-dead") == Some(json!("unhealthy"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "ten hung instances marked within ~6 s, the https one healthy: {records}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The reason a call to `service` found no instance, within 5 s of it being `want`.
async fn no_instance_because(
    sdk: &sdk::ServiceSdk,
    service: &str,
    want: impl Fn(&sdk::balance::NoInstanceReason) -> bool,
) -> sdk::balance::NoInstanceReason {
    let client = sdk.get_client(service);
    let mut last = None;
    for _ in 0..100 {
        match client.get("/").send::<String>().await {
            Err(sdk::ServiceError::NoHealthyInstance { reason, .. }) => {
                if want(&reason) {
                    return reason;
                }
                last = Some(reason);
            }
            other => panic!("expected no instance, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reason never became the one wanted; last: {last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_says_why_it_has_no_instance() {
    use sdk::balance::NoInstanceReason as Why;
    use sdk_registry::{HealthStatus, HttpBackend, RegistryBackend, ServiceInstance};

    let mut server = start_with(&data_file("why"), 90, &["--protect-reads"]).await;
    let backend = HttpBackend::new(&server.url, Some("s3cret".into())).expect("url");
    let sdk = sdk::ServiceSdk::builder()
        .registry(backend.clone())
        .build()
        .expect("valid");
    no_instance_because(&sdk, "ghost", |w| *w == Why::NothingRegistered).await;

    backend
        .register(ServiceInstance::new("sick", ("127.0.0.1", 1)).with_id("a"))
        .await
        .expect("registered");
    backend
        .set_health("sick", "a", HealthStatus::Unhealthy)
        .await
        .expect("known");
    let why = no_instance_because(&sdk, "sick", |w| matches!(w, Why::AllUnhealthy { .. })).await;
    assert_eq!(why, Why::AllUnhealthy { registered: 1 });

    let wrong = HttpBackend::new(&server.url, Some("wrong".into())).expect("url");
    let locked_out = sdk::ServiceSdk::builder()
        .registry(wrong)
        .build()
        .expect("valid");
    let why = no_instance_because(&locked_out, "sick", |w| matches!(w, Why::Unauthorized(_))).await;
    assert!(why.to_string().contains("401"), "{why}");

    // A URL that answers, but not as a registry (another web server, which answers 404 to
    // the registry's paths): said as such, not as "unreachable".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, axum::Router::new()).await });
    let elsewhere = HttpBackend::new(&other, Some("s3cret".into())).expect("url");
    let astray = sdk::ServiceSdk::builder()
        .registry(elsewhere)
        .build()
        .expect("valid");
    let why = no_instance_because(&astray, "sick", |w| matches!(w, Why::RegistryNotFound(_))).await;
    let said = why.to_string();
    assert!(
        said.contains("404") && said.contains("not a registry") && !said.contains("unreachable"),
        "{said}"
    );

    server.child.kill().await.expect("kill -9");
    let down = HttpBackend::new(&server.url, Some("s3cret".into())).expect("url");
    let stranded = sdk::ServiceSdk::builder()
        .registry(down)
        .build()
        .expect("valid");
    let why = no_instance_because(&stranded, "sick", |w| {
        matches!(w, Why::RegistryUnreachable(_))
    })
    .await;
    assert!(why.to_string().contains("unreachable"), "{why}");
}

#[test]
fn help_describes_the_server() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sdk-registry"))
        .arg("--help")
        .output()
        .expect("the binary runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        help.contains("The sdk-registry server") && help.contains("--data"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_instances_and_writes() {
    let server = start(&data_file("metrics"), 90).await;
    let http = reqwest::Client::new();
    assert_eq!(
        register(&http, &server, &instance("m1", 8081))
            .await
            .status(),
        201
    );
    assert_eq!(
        register(&http, &server, &instance("m2", 8082))
            .await
            .status(),
        201
    );
    let refused = http
        .delete(format!("{}/v1/services/orders/instances/nope", server.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("up");
    assert_eq!(refused.status(), 404);
    let response = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .expect("up");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.expect("text");
    let Some(samples) = support::prometheus::parse(&text) else {
        return;
    };
    use support::prometheus::value;
    let orders = ["service=orders", "health=healthy"];
    assert_eq!(value(&samples, "sdk_registry_instances", &orders), 2.0);
    let saved = ["op=register", "result=saved"];
    assert_eq!(value(&samples, "sdk_registry_writes_total", &saved), 2.0);
    let refused = ["op=deregister", "result=refused"];
    assert_eq!(value(&samples, "sdk_registry_writes_total", &refused), 1.0);
    assert!(value(&samples, "sdk_registry_commit_seconds_count", &[]) >= 2.0);

    // Once the service has no instance left, it is reported at zero, not at its last count.
    for id in ["m1", "m2"] {
        let gone = http
            .delete(format!("{}/v1/services/orders/instances/{id}", server.url))
            .bearer_auth("s3cret")
            .send()
            .await
            .expect("up");
        assert_eq!(gone.status(), 204);
    }
    let text = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .expect("up")
        .text()
        .await
        .expect("text");
    let samples = support::prometheus::parse(&text).expect("parsed above");
    assert_eq!(value(&samples, "sdk_registry_instances", &orders), 0.0);
}
