//! The response cache against a real server: hit, miss, expiry, refresh, clear, single flight.

use crate::support;

use std::time::Duration;

use crate::support::{sdk_for, Reply, Scripted};
use sdk::{
    cache::CacheConfig, circuit_breaker::BreakerConfig, retry::RetryConfig, CacheStatus,
    ServiceConfig,
};

fn cached(ttl: Duration) -> ServiceConfig {
    ServiceConfig::new().cache(CacheConfig::new().enabled(true).ttl(ttl))
}

#[tokio::test(start_paused = true)]
async fn hit_miss_expiry_refresh_and_clear() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "n": 1 }))).await;
    let sdk = sdk_for(&server.url, cached(Duration::from_secs(60)));
    let client = sdk.get_client("svc");

    let first = client.get("/users/1").response().await.expect("ok");
    assert_eq!(first.cache_status(), CacheStatus::Miss);
    let second = client.get("/users/1").response().await.expect("ok");
    assert_eq!(second.cache_status(), CacheStatus::Hit);
    assert_eq!(second.bytes(), first.bytes());
    let value: serde_json::Value = client.get("/users/1").send().await.expect("typed hit");
    assert_eq!(value["n"], 1);
    assert_eq!(server.hits(), 1, "hits do not reach the server");

    client.get("/users/1?x=1").response().await.expect("ok");
    assert_eq!(server.hits(), 2, "the query is part of the key");

    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        client
            .get("/users/1")
            .response()
            .await
            .expect("ok")
            .cache_status(),
        CacheStatus::Miss
    );
    assert_eq!(server.hits(), 3, "an expired entry is fetched again");
    client.get("/users/1?x=1").response().await.expect("ok");
    assert_eq!(server.hits(), 4);

    let refreshed = client
        .get("/users/1")
        .force_refresh()
        .response()
        .await
        .expect("ok");
    assert_eq!(refreshed.cache_status(), CacheStatus::Miss);
    assert_eq!(server.hits(), 5, "force_refresh skips the lookup");
    assert_eq!(
        client
            .get("/users/1")
            .response()
            .await
            .expect("ok")
            .cache_status(),
        CacheStatus::Hit
    );

    client.clear_cache_key("/users/1");
    client.get("/users/1").response().await.expect("ok");
    assert_eq!(server.hits(), 6, "clear_cache_key dropped that entry");
    client.get("/users/1?x=1").response().await.expect("ok");
    assert_eq!(server.hits(), 6, "but not the others");

    client.clear_cache();
    client.get("/users/1?x=1").response().await.expect("ok");
    assert_eq!(server.hits(), 7, "clear_cache dropped everything");

    client
        .get("/users/1")
        .no_cache()
        .response()
        .await
        .expect("ok");
    assert_eq!(server.hits(), 8, "no_cache bypasses the cache");
}

#[tokio::test(start_paused = true)]
async fn only_gets_and_successes_are_cached() {
    let server = Scripted::start(Reply::status(404).body("nope")).await;
    let sdk = sdk_for(&server.url, cached(Duration::from_secs(60)));
    let client = sdk.get_client("svc");
    for _ in 0..2 {
        let err = client.get("/gone").send::<()>().await.expect_err("404");
        assert_eq!(err.status_code(), Some(http::StatusCode::NOT_FOUND));
    }
    assert_eq!(server.hits(), 2, "a 404 is not cached");
    server.set_fallback(Reply::json(serde_json::json!(1)));
    for _ in 0..2 {
        client.put("/thing").response().await.expect("ok");
    }
    assert_eq!(server.hits(), 4, "a PUT is not cached");
}

#[tokio::test(start_paused = true)]
async fn per_request_ttl_caches_without_service_cache() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let sdk = sdk_for(&server.url, ServiceConfig::new());
    let client = sdk.get_client("svc");
    client.get("/x").response().await.expect("ok");
    client.get("/x").response().await.expect("ok");
    assert_eq!(server.hits(), 2, "off by default");
    client
        .get("/y")
        .cache_ttl(Duration::from_secs(5))
        .response()
        .await
        .expect("ok");
    let hit = client
        .get("/y")
        .cache_ttl(Duration::from_secs(5))
        .response()
        .await
        .expect("ok");
    assert_eq!(hit.cache_status(), CacheStatus::Hit);
    assert_eq!(server.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_request() {
    let server = Scripted::start(
        Reply::json(serde_json::json!({ "n": 1 })).delay(Duration::from_millis(200)),
    )
    .await;
    let sdk = sdk_for(&server.url, cached(Duration::from_secs(60)));
    let client = sdk.get_client("svc");

    let calls = (0..10).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get("/users/1").send::<serde_json::Value>().await })
    });
    for call in futures_util::future::join_all(calls).await {
        assert_eq!(call.expect("task").expect("ok")["n"].as_i64(), Some(1));
    }
    assert_eq!(
        server.hits(),
        1,
        "ten concurrent identical GETs reached the server once"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_the_last_good_answer() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "v": "good" }))).await;
    let config = ServiceConfig::new()
        .cache(
            CacheConfig::new()
                .enabled(true)
                .ttl(Duration::from_secs(10))
                .stale_if_error(Duration::from_secs(300)),
        )
        .retry(RetryConfig::new().max_attempts(1))
        .circuit_breaker(BreakerConfig::new().failure_threshold(2));
    let sdk = sdk_for(&server.url, config);
    let client = sdk.get_client("svc");
    client.get("/conf").response().await.expect("ok");

    server.set_fallback(Reply::status(503));
    tokio::time::advance(Duration::from_secs(11)).await;
    let stale = client.get("/conf").response().await.expect("served stale");
    assert_eq!(stale.cache_status(), CacheStatus::Stale);
    assert_eq!(
        stale.json::<serde_json::Value>().expect("json")["v"],
        "good"
    );
    let stale = client
        .get("/conf")
        .response()
        .await
        .expect("served stale again");
    assert_eq!(stale.cache_status(), CacheStatus::Stale);
    assert_eq!(server.hits(), 3);

    // The breaker is open now; the stale entry still answers, with no request.
    let stale = client
        .get("/conf")
        .response()
        .await
        .expect("stale while open");
    assert_eq!(stale.cache_status(), CacheStatus::Stale);
    assert_eq!(server.hits(), 3);

    // After the stale window the error comes through.
    tokio::time::advance(Duration::from_secs(301)).await;
    let err = client
        .get("/conf")
        .send::<()>()
        .await
        .expect_err("too stale");
    assert!(
        err.is_circuit_open() || err.status_code().is_some(),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn vary_headers_are_part_of_the_key() {
    let server = Scripted::start(Reply::json(serde_json::json!(1))).await;
    let config = ServiceConfig::new().cache(
        CacheConfig::new()
            .enabled(true)
            .vary_headers(vec![http::HeaderName::from_static("accept-language")]),
    );
    let sdk = sdk_for(&server.url, config);
    let client = sdk.get_client("svc");
    for lang in ["en", "fr", "en"] {
        client
            .get("/greeting")
            .header("accept-language", lang)
            .response()
            .await
            .expect("ok");
    }
    assert_eq!(server.hits(), 2);
    client.clear_cache_key("/greeting");
    client
        .get("/greeting")
        .header("accept-language", "fr")
        .response()
        .await
        .expect("ok");
    assert_eq!(server.hits(), 3, "clear_cache_key drops every variant");
}

#[tokio::test(start_paused = true)]
async fn a_caller_joining_a_fill_waits_no_longer_than_its_own_deadline() {
    let slow = Reply::json(serde_json::json!({ "n": 1 })).delay(Duration::from_secs(2));
    let server = Scripted::start(slow).await;
    let sdk = sdk_for(&server.url, cached(Duration::from_secs(60)));
    let client = sdk.get_client("svc");
    let patient = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get("/users/1")
                .timeout(Duration::from_secs(10))
                .response()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await; // the fill is under way
    let started = tokio::time::Instant::now();
    let err = client
        .get("/users/1")
        .timeout(Duration::from_millis(300))
        .response()
        .await
        .expect_err("its own deadline passes first");
    assert!(err.is_timeout(), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let answer = patient.await.expect("task").expect("the fill went on");
    assert_eq!(answer.cache_status(), CacheStatus::Miss);

    // The other way round: the caller filling gives up, a waiter with time left takes over.
    client.clear_cache();
    let hasty = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get("/users/2")
                .timeout(Duration::from_millis(300))
                .response()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let answer = client
        .get("/users/2")
        .timeout(Duration::from_secs(10))
        .response()
        .await
        .expect("the fill is taken over");
    assert_eq!(answer.status(), 200);
    assert!(hasty
        .await
        .expect("task")
        .expect_err("timed out")
        .is_timeout());
}

#[tokio::test(start_paused = true)]
async fn error_answers_are_cached_for_their_own_ttl_with_cache_on_error() {
    let server = Scripted::start(Reply::status(404).body("no such product")).await;
    let config = support::once()
        .circuit_breaker(support::lenient_breaker())
        .cache(
            CacheConfig::enabled_for(Duration::from_secs(300))
                .cache_on_error(Duration::from_secs(10)),
        );
    let sdk = sdk_for(&server.url, config);
    let client = sdk.get_client("svc");
    for _ in 0..3 {
        let err = client
            .get("/products/9")
            .send::<()>()
            .await
            .expect_err("404");
        assert_eq!(err.status_code(), Some(http::StatusCode::NOT_FOUND));
        assert_eq!(err.body().map(|b| &b[..]), Some(&b"no such product"[..]));
    }
    assert_eq!(server.hits(), 1, "the 404 was cached");
    let hit = client
        .get("/products/9")
        .response()
        .await
        .expect("any status");
    assert_eq!(
        (hit.status(), hit.cache_status()),
        (http::StatusCode::NOT_FOUND, CacheStatus::Hit)
    );

    // Its own TTL (10 s), not the answers' (300 s).
    tokio::time::advance(Duration::from_secs(11)).await;
    server.set_fallback(Reply::json(serde_json::json!({ "id": 9 })));
    let found: serde_json::Value = client.get("/products/9").send().await.expect("now there");
    assert_eq!(found["id"], 9);
    assert_eq!(server.hits(), 2);

    // Only the configured statuses; never a 5xx or a "later".
    for status in [400, 503, 429] {
        server.set_fallback(Reply::status(status));
        let path = format!("/status/{status}");
        for _ in 0..2 {
            client.get(&path).response().await.expect("any status");
        }
    }
    assert_eq!(server.hits(), 8, "400, 503 and 429 are not cached");

    // Off unless asked for: a service without cache_on_error fetches every 404.
    let plain = sdk_for(&server.url, cached(Duration::from_secs(300)));
    server.set_fallback(Reply::status(404));
    for _ in 0..2 {
        plain
            .get_client("svc")
            .get("/p")
            .response()
            .await
            .expect("404");
    }
    assert_eq!(server.hits(), 10);

    // A request can ask for it, with a TTL of its own.
    for _ in 0..2 {
        client
            .get("/q")
            .no_cache()
            .response()
            .await
            .expect("bypassed");
    }
    assert_eq!(server.hits(), 12, "no_cache still bypasses");
    let adhoc = plain.get_client("svc");
    for _ in 0..3 {
        adhoc
            .get("/r")
            .cache_on_error(Duration::from_secs(5))
            .response()
            .await
            .expect("404");
    }
    assert_eq!(server.hits(), 13, "per-request cache_on_error");
}

#[tokio::test(start_paused = true)]
async fn error_statuses_that_say_later_are_refused() {
    for status in [429u16, 503, 408, 200] {
        let config = ServiceConfig::new().cache(
            CacheConfig::new()
                .cache_on_error(Duration::from_secs(5))
                .error_statuses([http::StatusCode::from_u16(status).expect("status")]),
        );
        let err = sdk::ServiceSdk::builder()
            .service("svc", config)
            .build()
            .expect_err("refused");
        assert_eq!(
            err.key(),
            Some("services.svc.cache.error_statuses"),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_named_key_is_shared_by_paths_and_cleared_by_name() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 123 }))).await;
    let sdk = sdk_for(&server.url, cached(Duration::from_secs(300)));
    let client = sdk.get_client("svc");
    for path in [
        "/products/123",
        "/products/123?fields=all",
        "/v2/products/123",
    ] {
        let product: serde_json::Value = client
            .get(path)
            .cache_key("product:123")
            .send()
            .await
            .expect("ok");
        assert_eq!(product["id"], 123);
    }
    assert_eq!(server.hits(), 1, "one key for three paths");
    client.get("/products/123").response().await.expect("ok");
    assert_eq!(server.hits(), 2, "without the key, the path is the key");

    client.clear_cache_key("product:123");
    client
        .get("/products/123")
        .cache_key("product:123")
        .response()
        .await
        .expect("ok");
    assert_eq!(server.hits(), 3, "cleared by its name");
    client.get("/products/123").response().await.expect("ok");
    assert_eq!(server.hits(), 3, "the path-keyed entry is another one");

    sdk.clear_cache_key("product:123");
    sdk.clear_cache_key("/products/123");
    client
        .get("/products/123")
        .cache_key("product:123")
        .response()
        .await
        .expect("ok");
    client.get("/products/123").response().await.expect("ok");
    assert_eq!(server.hits(), 5, "the SDK clears by key in every service");
}
