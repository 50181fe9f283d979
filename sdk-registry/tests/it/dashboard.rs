//! The dashboard in a real browser: headless Chromium loads `/` from a running registry
//! process; the page lists every service and instance with health and heartbeat age, marks
//! stale instances, and follows registrations without a reload.
#![cfg(feature = "server")]

use crate::support;
use sdk_test_support::readme_curl;

use std::time::Duration;

use crate::support::{browser::Browser, start_binary, Server};
use serde_json::json;

/// Registers `instance` (a `ServiceInstance` as JSON) and checks the 201.
async fn register(server: &Server, http: &reqwest::Client, instance: serde_json::Value) {
    let (status, body) = server
        .send(
            http,
            reqwest::Method::POST,
            "/v1/instances",
            Some(&instance),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn instance(service: &str, id: &str, port: u16) -> serde_json::Value {
    json!({ "service": service, "id": id, "scheme": "http", "host": "10.0.4.17", "port": port })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_registry_live_in_a_browser() {
    // A 6 s TTL: an instance that stops heartbeating is stale after 3 s.
    let server = start_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--ttl-secs",
            "6",
            "--token",
            support::TOKEN,
        ],
        None,
    )
    .await;
    let http = reqwest::Client::new();
    seed(&server, &http).await;
    let keep_alive = keep_alive(&server, &http);
    let Some(mut page) = Browser::open(&format!("{}/", server.url)).await else {
        return;
    };
    shows_services_and_instances(&mut page).await;
    shows_data_as_text(&server, &http, &mut page).await;
    follows_registrations_live(&server, &http, &mut page).await;
    lays_out_for_wide_and_narrow_screens(&mut page).await;
    screenshot(&mut page).await;
    keep_alive.abort();
}

/// Two services, three instances, one of them marked unhealthy.
async fn seed(server: &Server, http: &reqwest::Client) {
    let mut users = instance("user-service", "users-7f3a", 8081);
    users["version"] = json!("2.4.1");
    users["metadata"] = json!({ "zone": "eu-west-1a", "pool": "blue" });
    register(server, http, users).await;
    let mut second = instance("user-service", "users-91bc", 8082);
    second["version"] = json!("2.4.1");
    second["metadata"] = json!({ "zone": "eu-west-1b" });
    register(server, http, second).await;
    let mut orders = instance("order-service", "orders-1", 9090);
    orders["version"] = json!("1.9.0");
    register(server, http, orders).await;
    assert_eq!(
        server
            .mark(http, "user-service", "users-91bc", "unhealthy")
            .await,
        204
    );
}

/// Heartbeats for the instances that stay alive (a later one will not be).
fn keep_alive(server: &Server, http: &reqwest::Client) -> tokio::task::JoinHandle<()> {
    {
        let (url, http) = (server.url.clone(), http.clone());
        tokio::spawn(async move {
            loop {
                for (service, id) in [
                    ("user-service", "users-7f3a"),
                    ("user-service", "users-91bc"),
                    ("order-service", "orders-1"),
                    ("order-service", "orders-2"),
                    ("payment-service", "payments-1"),
                ] {
                    let _ = http
                        .put(format!(
                            "{url}/v1/services/{service}/instances/{id}/heartbeat"
                        ))
                        .bearer_auth(support::TOKEN)
                        .send()
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }
}

/// Every service and instance, with its health, version, address and metadata.
async fn shows_services_and_instances(page: &mut Browser) {
    let limit = Duration::from_secs(10);
    page.wait_for(
        "document.querySelectorAll('section.service').length === 2",
        limit,
    )
    .await;
    let names = page
        .eval("[...document.querySelectorAll('section.service .name')].map(n => n.textContent)")
        .await;
    assert_eq!(names, json!(["order-service", "user-service"]));
    let counts = page
        .eval("[...document.querySelectorAll('section.service')].map(s => s.dataset.count)")
        .await;
    assert_eq!(counts, json!(["1", "2"]));
    let summary = page
        .eval("document.querySelector('section[data-service=\"user-service\"] .meta').textContent")
        .await;
    assert_eq!(summary, json!("2 instances · 1 unhealthy"));
    let health = page
        .eval("Object.fromEntries([...document.querySelectorAll('tr.instance')].map(r => [r.dataset.id, r.dataset.health]))")
        .await;
    assert_eq!(
        health,
        json!({ "orders-1": "unknown", "users-7f3a": "unknown", "users-91bc": "unhealthy" })
    );
    let row = page
        .eval("document.querySelector('tr[data-id=\"users-7f3a\"]').innerText")
        .await;
    let row = row.as_str().expect("text");
    for shown in ["http://10.0.4.17:8081", "2.4.1", "zone=eu-west-1a", "s ago"] {
        assert!(row.contains(shown), "{shown:?} missing from {row:?}");
    }
}

/// Registry data is shown as text, never run as markup.
async fn shows_data_as_text(server: &Server, http: &reqwest::Client, page: &mut Browser) {
    let limit = Duration::from_secs(10);
    let mut markup = instance("probe", "probe-1", 1);
    markup["metadata"] = json!({ "<b>tag</b>": "<img src=x onerror=alert(1)>" });
    register(server, http, markup).await;
    page.wait_for(
        "document.querySelector('section[data-service=\"probe\"]') !== null",
        limit,
    )
    .await;
    assert_eq!(
        page.eval("document.querySelectorAll('main b, main img').length")
            .await,
        json!(0)
    );
    let tag = page
        .eval("document.querySelector('section[data-service=\"probe\"] .tag').textContent")
        .await;
    assert_eq!(tag, json!("<b>tag</b>=<img src=x onerror=alert(1)>"));
    assert_eq!(server.remove(http, "probe", "probe-1").await, 204);
}

/// Registrations appear without a reload, and an instance that stops heartbeating is
/// marked stale.
async fn follows_registrations_live(server: &Server, http: &reqwest::Client, page: &mut Browser) {
    let limit = Duration::from_secs(10);
    // Registrations appear without a reload: a marker set now survives them.
    page.eval("window.__sameDocument = 'yes'").await;
    register(server, http, instance("order-service", "orders-2", 9091)).await;
    let mut payments = instance("payment-service", "payments-1", 7000);
    payments["metadata"] = json!({ "pci": "true" });
    register(server, http, payments).await;
    page.wait_for(
        "document.querySelector('section[data-service=\"payment-service\"]') !== null \
         && document.querySelector('section[data-service=\"order-service\"]').dataset.count === '2' \
         && document.querySelector('section[data-service=\"probe\"]') === null",
        limit,
    )
    .await;
    assert_eq!(page.eval("window.__sameDocument").await, json!("yes"));

    // An instance that stops heartbeating is marked stale, the others are not.
    register(server, http, instance("user-service", "users-silent", 8083)).await;
    page.wait_for(
        "document.querySelector('tr[data-id=\"users-silent\"]')?.dataset.stale === 'true'",
        limit,
    )
    .await;
    assert_eq!(
        page.eval("document.querySelector('tr[data-id=\"users-7f3a\"]').dataset.stale")
            .await,
        json!("false")
    );
}

/// The status line, no inline code, cards apart, and a narrow screen's sideways scroll.
async fn lays_out_for_wide_and_narrow_screens(page: &mut Browser) {
    let status = page
        .eval("document.getElementById('status').textContent")
        .await;
    assert_eq!(status, json!("live"));
    // The script and style are files of their own (the policy runs no inline code).
    assert_eq!(
        page.eval("document.querySelectorAll('script:not([src]), style').length")
            .await,
        json!(0)
    );
    let summary = page
        .eval("document.getElementById('summary').textContent")
        .await;
    assert!(
        summary
            .as_str()
            .is_some_and(|s| s.starts_with("3 services · 6 instances")),
        "{summary}"
    );
    // The cards stand apart.
    let gaps = page
        .eval("(() => { const s = [...document.querySelectorAll('section.service')]; \
               return s.slice(1).map((c, i) => c.getBoundingClientRect().top - s[i].getBoundingClientRect().bottom); })()")
        .await;
    assert!(
        gaps.as_array()
            .is_some_and(|g| !g.is_empty() && g.iter().all(|v| v.as_f64().unwrap_or(0.0) >= 8.0)),
        "gaps between cards: {gaps}"
    );

    // On a 420 px wide screen a service's table scrolls sideways instead of being cut off.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": true }),
    )
    .await;
    let narrow = page
        .eval("(() => { const r = document.querySelector('section[data-service=\"user-service\"] .rows'); \
               return [getComputedStyle(r).overflowX, r.scrollWidth > r.clientWidth, \
                       document.documentElement.scrollWidth <= window.innerWidth]; })()")
        .await;
    assert_eq!(
        narrow,
        json!(["auto", true, true]),
        "[overflow, scrolls, page fits]"
    );
    page.call("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
}

/// The screenshot: `target/dashboard.png`, and the README's picture when asked.
async fn screenshot(page: &mut Browser) {
    let png = page.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard.png");
    std::fs::write(&target, &png).expect("write the screenshot");
    // The README's picture: `SDK_DASHBOARD_SCREENSHOT=1 scripts/test -p sdk-registry --test dashboard`.
    if std::env::var_os("SDK_DASHBOARD_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::write(docs, &png).expect("write docs/dashboard.png");
    }
}

/// The page runs only its own files: no `unsafe-inline` for scripts or styles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_no_inline_code() {
    let server = start_binary(
        &["--listen", "127.0.0.1:0", "--token", support::TOKEN],
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/", server.url))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("<style") && !html.contains("<script>"),
        "{html}"
    );
    for (path, kind) in [("/dashboard.js", "javascript"), ("/dashboard.css", "css")] {
        let asset = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("asset");
        assert_eq!(asset.status(), 200, "{path} is served without a token");
        let content_type = asset.headers()["content-type"].to_str().expect("text");
        assert!(content_type.contains(kind), "{path}: {content_type}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_still_get_json_at_the_root() {
    let server = start_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--token",
            support::TOKEN,
            "--protect-reads",
        ],
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let index: serde_json::Value = http
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("up")
        .json()
        .await
        .expect("JSON");
    assert_eq!(index["name"], "sdk-registry");
    let page = http
        .get(format!("{}/", server.url))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("up");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("default-src 'none'"));
    assert!(page
        .text()
        .await
        .expect("html")
        .contains("<title>sdk-registry</title>"));
    // With reads protected, the feed needs the token (the page asks for it).
    let refused = http
        .get(format!("{}/v1/events", server.url))
        .send()
        .await
        .expect("up");
    assert_eq!(refused.status(), 401);
    let feed = http
        .get(format!("{}/v1/events", server.url))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("up");
    assert_eq!(feed.status(), 200);
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
}

/// The documentation's curl lines for the registry server and its dashboard, run as written
/// against the binary (writes open, as the dashboard's lines start it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_curl_lines_work_as_written() {
    let server = start_binary(&["--listen", "127.0.0.1:0", "--allow-open-writes"], None).await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        let replace = [
            ("127.0.0.1:8500", addr.as_str()),
            ("localhost:8500", addr.as_str()),
        ];
        let index =
            readme_curl::run_all(&readme_curl::curls("## The registry server"), &replace, &[]);
        assert!(index[0].contains("\"endpoints\""), "{index:?}");
        let live = readme_curl::run_all(&readme_curl::curls("# Dashboard"), &replace, &[]);
        assert!(
            live[1].contains("users-1"),
            "the stream shows the registration: {live:?}"
        );
    })
    .await
    .expect("the curl lines");
}
