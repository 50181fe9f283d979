//! Rate limits: per client (token subject, else address; forwarded addresses only from
//! trusted proxies), held across two gateway processes sharing Redis, and counted locally
//! while Redis is away.

use crate::support;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::support::{tokens, upstream::Upstream, Gateway};
use serde_json::json;

/// One limited public route and one limited protected route to `upstream`.
fn config(upstream: &Upstream, limit: &str, extra: &str) -> String {
    format!(
        r#"
[services.product-service]
instances = ["{url}"]

[services.user-service]
instances = ["{url}"]

[routes.products]
path = "/api/products"
service = "product-service"
rate_limit = {limit}

[routes.users]
path = "/api/users/{{id}}"
service = "user-service"
protected = true
rate_limit = {limit}

[gateway.jwt]
hs256_secret = "{secret}"

{extra}
"#,
        url = upstream.url(),
        secret = tokens::SECRET,
    )
}

async fn statuses(requests: Vec<reqwest::RequestBuilder>) -> Vec<u16> {
    let mut out = Vec::new();
    for request in requests {
        out.push(request.send().await.expect("reachable").status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_has_its_own_allowance() {
    let upstream = Upstream::start("p").await;
    let gateway = Gateway::start(&config(
        &upstream,
        // One request's allowance back every 2 s: a slow machine has seconds of margin.
        "{ per_minute = 30, burst = 3 }",
        "[gateway.clients]\ntrusted_proxies = [\"127.0.0.1/32\"]",
    ))
    .await;
    let http = reqwest::Client::new();
    let products = format!("{}/api/products", gateway.url);
    // Three at once, then refused, with a time to come back.
    let got = statuses((0..5).map(|_| http.get(&products)).collect()).await;
    assert_eq!(got, [200, 200, 200, 429, 429]);
    let refused = http.get(&products).send().await.expect("up");
    let retry_after = refused.headers()["retry-after"].to_str().expect("text");
    assert!(
        ["1", "2"].contains(&retry_after),
        "back within the 2 s interval: {retry_after}"
    );
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "rate limit exceeded");
    // Behind a trusted proxy, the forwarded address is the client.
    let from = |ip: &'static str| http.get(&products).header("x-forwarded-for", ip);
    let got = statuses((0..4).map(|_| from("203.0.113.7")).collect()).await;
    assert_eq!(got, [200, 200, 200, 429]);
    let got = statuses(vec![from("203.0.113.8")]).await;
    assert_eq!(got, [200], "another address, another allowance");
    // Token subjects are clients of their own, wherever they come from.
    let users = format!("{}/api/users/1", gateway.url);
    let alice = tokens::hs256(&tokens::claims("alice", json!({})));
    let bob = tokens::hs256(&tokens::claims("bob", json!({})));
    let got = statuses(
        (0..4)
            .map(|_| http.get(&users).bearer_auth(&alice))
            .collect(),
    )
    .await;
    assert_eq!(got, [200, 200, 200, 429]);
    let got = statuses(vec![http.get(&users).bearer_auth(&bob)]).await;
    assert_eq!(got, [200]);
    // The allowance comes back at the configured rate: one request in 3 s (a second is
    // back after 4 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = statuses(
        (0..2)
            .map(|_| http.get(&users).bearer_auth(&alice))
            .collect(),
    )
    .await;
    assert_eq!(got, [200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_choose_its_address() {
    let upstream = Upstream::start("p").await;
    let gateway = Gateway::start(&config(&upstream, "{ per_second = 1, burst = 2 }", "")).await;
    let http = reqwest::Client::new();
    let products = format!("{}/api/products", gateway.url);
    let forged: Vec<_> = ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
        .into_iter()
        .map(|ip| http.get(&products).header("x-forwarded-for", ip))
        .collect();
    assert_eq!(statuses(forged).await, [200, 200, 429]);
}

/// Hammers `urls` (one per gateway) with `subject`'s token from `workers` tasks each for
/// `run`: how many passed, and the time from the first send to the last answer.
async fn hammer(urls: &[String], token: &str, workers: usize, run: Duration) -> (usize, Duration) {
    let passed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for url in urls {
        for _ in 0..workers {
            let (url, token, passed) = (url.clone(), token.to_owned(), passed.clone());
            let http = reqwest::Client::new();
            tasks.push(tokio::spawn(async move {
                while started.elapsed() < run {
                    let status = http
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("up")
                        .status();
                    if status == 200 {
                        passed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert_eq!(status, 429);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("worker");
    }
    (passed.load(Ordering::SeqCst), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_holds_across_two_gateways_sharing_redis() {
    if !support::required("Redis", "127.0.0.1:6379").await {
        return;
    }
    let upstream = Upstream::start("u").await;
    let prefix = format!("sdk-gateway-test-{}", fastrand::u64(..));
    let shared = format!(
        "[gateway.rate_limit]\nredis_url = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\""
    );
    let (per_second, burst) = (40.0, 10.0);
    let limit = format!("{{ per_second = {per_second}, burst = {burst} }}");
    let first = Gateway::start(&config(&upstream, &limit, &shared)).await;
    let second = Gateway::start(&config(&upstream, &limit, &shared)).await;
    // Both connected to Redis before the clock starts.
    for gateway in [&first, &second] {
        for _ in 0..50 {
            let health: serde_json::Value = reqwest::get(format!("{}/health", gateway.url))
                .await
                .expect("up")
                .json()
                .await
                .expect("json");
            if health["shared_limits"] == "connected" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let token = tokens::hs256(&tokens::claims("shared-client", json!({})));
    let urls = [
        format!("{}/api/users/1", first.url),
        format!("{}/api/users/1", second.url),
    ];
    let (passed, elapsed) = hammer(&urls, &token, 4, Duration::from_secs(3)).await;
    let allowed = burst + per_second * elapsed.as_secs_f64();
    println!("{passed} passed in {elapsed:?}; the limit allows {allowed:.0}");
    assert!(
        passed as f64 <= allowed * 1.05,
        "{passed} passed through two gateways; the shared limit allows {allowed:.0} (+5 %)"
    );
    // Each gateway alone would let the whole rate through: sharing is what holds it.
    assert!(
        passed as f64 >= allowed * 0.8,
        "{passed} passed, {allowed:.0} allowed: too strict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_gateway_counts_alone() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let upstream = Upstream::start("u").await;
    let shared = format!(
        "[gateway.rate_limit]\nredis_url = \"redis://127.0.0.1:{port}\"\ntimeout = \"50ms\""
    );
    let gateway =
        Gateway::start(&config(&upstream, "{ per_second = 1, burst = 2 }", &shared)).await;
    let http = reqwest::Client::new();
    let products = format!("{}/api/products", gateway.url);
    assert_eq!(
        statuses((0..3).map(|_| http.get(&products)).collect()).await,
        [200, 200, 429]
    );
    let health = gateway.json("/health").await;
    assert_eq!(health["shared_limits"], "local");
    let metrics = gateway.text("/metrics").await;
    assert!(
        metrics.contains("sdk_gateway_rate_limit_fallbacks_total"),
        "{metrics}"
    );
}
