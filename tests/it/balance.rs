//! Load balancing over real loopback instances: spreading, avoiding the slow, ejecting the
//! failing, and readmitting them.

use std::time::Duration;

use crate::support::{refused_url, Reply, Scripted};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    circuit_breaker::BreakerConfig,
    retry::RetryConfig,
    ServiceConfig, ServiceSdk,
};

fn sdk(urls: &[&str], retry: u32, lb: LoadBalancerConfig) -> ServiceSdk {
    let mut config = ServiceConfig::new()
        .retry(RetryConfig::new().max_attempts(retry))
        .circuit_breaker(BreakerConfig::new().failure_threshold(10_000))
        .load_balancer(lb);
    for url in urls {
        config = config.instance(*url);
    }
    ServiceSdk::builder()
        .service("svc", config)
        .build()
        .expect("valid")
}

#[tokio::test(start_paused = true)]
async fn calls_spread_over_every_instance() {
    let servers = [
        Scripted::start(Reply::json(serde_json::json!(1))).await,
        Scripted::start(Reply::json(serde_json::json!(2))).await,
        Scripted::start(Reply::json(serde_json::json!(3))).await,
    ];
    let urls: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
    let sdk = sdk(&urls, 1, LoadBalancerConfig::default());
    let client = sdk.get_client("svc");
    for _ in 0..60 {
        client.get("/").send::<u32>().await.expect("ok");
    }
    let mut picked = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let instance = sdk
            .get_service_instance("svc")
            .await
            .expect("has instances");
        picked.insert(instance.url().to_owned());
    }
    assert_eq!(picked.len(), 3, "picks spread too: {picked:?}");
    assert!(sdk.get_service_instance("nothing").await.is_none());
    for server in &servers {
        assert!(
            server.hits() >= 5,
            "every instance gets traffic: {:?}",
            servers.iter().map(Scripted::hits).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_instance_costs_no_failed_call_and_is_ejected() {
    let a = Scripted::start(Reply::json(serde_json::json!("a"))).await;
    let b = Scripted::start(Reply::json(serde_json::json!("b"))).await;
    let stopped = refused_url().await;
    let lb = LoadBalancerConfig::new()
        .strategy(Strategy::RoundRobin)
        .ejection_failures(3);
    let sdk = sdk(&[&a.url, &b.url, &stopped], 3, lb);
    let client = sdk.get_client("svc");
    let mut retried = 0;
    for _ in 0..30 {
        let response = client
            .get("/")
            .response()
            .await
            .expect("idempotent calls always succeed");
        assert_eq!(response.status(), 200);
        if response.attempts() > 1 {
            retried += 1;
        }
    }
    assert_eq!(
        retried, 3,
        "three calls met the stopped instance (then it was ejected), each retried elsewhere"
    );
    assert_eq!(a.hits() + b.hits(), 30);
}

#[tokio::test(start_paused = true)]
async fn an_instance_answering_500s_is_ejected_and_later_readmitted() {
    let good = Scripted::start(Reply::json(serde_json::json!("good"))).await;
    let bad = Scripted::start(Reply::status(500)).await;
    let lb = LoadBalancerConfig::new()
        .strategy(Strategy::RoundRobin)
        .ejection_failures(3)
        .ejection_duration(Duration::from_secs(30));
    let sdk = sdk(&[&good.url, &bad.url], 1, lb);
    let client = sdk.get_client("svc");
    for _ in 0..20 {
        let _ = client.get("/").response().await;
    }
    assert_eq!(bad.hits(), 3, "ejected after three 500s in a row");
    assert_eq!(good.hits(), 17);
    for _ in 0..20 {
        let picked = sdk
            .get_service_instance("svc")
            .await
            .expect("has instances");
        assert_eq!(
            picked.url(),
            good.url.trim_end_matches('/'),
            "get_service_instance skips the ejected instance, as calls do"
        );
    }

    tokio::time::advance(Duration::from_secs(31)).await;
    bad.set_fallback(Reply::json(serde_json::json!("fixed")));
    for _ in 0..10 {
        client.get("/").send::<String>().await.expect("ok");
    }
    assert_eq!(bad.hits(), 8, "readmitted after 30 s and back in rotation");
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_avoids_a_slow_instance_where_round_robin_does_not() {
    let fast: Vec<Scripted> = futures_util::future::join_all(
        (0..3).map(|_| Scripted::start(Reply::json(serde_json::json!(1)))),
    )
    .await;
    let slow =
        Scripted::start(Reply::json(serde_json::json!(1)).delay(Duration::from_millis(50))).await;
    let mut urls: Vec<&str> = fast.iter().map(|s| s.url.as_str()).collect();
    urls.push(&slow.url);

    let p2c = sdk(&urls, 1, LoadBalancerConfig::default());
    let client = p2c.get_client("svc");
    for _ in 0..200 {
        client.get("/").send::<u32>().await.expect("ok");
    }
    assert!(
        slow.hits() <= 5,
        "peak-EWMA sent the slow instance {} of 200 calls",
        slow.hits()
    );

    let before = slow.hits();
    let rr = sdk(
        &urls,
        1,
        LoadBalancerConfig::new().strategy(Strategy::RoundRobin),
    );
    let client = rr.get_client("svc");
    for _ in 0..200 {
        client.get("/").send::<u32>().await.expect("ok");
    }
    assert_eq!(slow.hits() - before, 50, "round robin gives it a quarter");
}
