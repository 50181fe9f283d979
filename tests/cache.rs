//! The response cache against a real server: hit, miss, expiry, refresh, clear, single flight.

mod support;

use std::time::Duration;

use sdk::{
    cache::CacheConfig, circuit_breaker::BreakerConfig, retry::RetryConfig, CacheStatus,
    ServiceConfig,
};
use support::{sdk_for, Reply, Scripted};

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
