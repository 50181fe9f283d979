//! Hedged requests against real loopback instances: a slow instance's calls answered by
//! another, never the same instance twice, idempotent calls only, and no hedge once the
//! retry budget is dry. The instances run in the test's runtime, on paused time: the
//! 300 ms of a slow instance and the hedge's wait are exact, however busy the machine.

use std::{collections::HashSet, time::Duration};

use crate::support::{Reply, Scripted};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    circuit_breaker::BreakerConfig,
    hedge::{HedgeAfter, HedgeConfig},
    retry::{BudgetConfig, RetryConfig},
    ServiceConfig, ServiceSdk,
};
use tokio::time::Instant;

const SLOW: Duration = Duration::from_millis(300);

fn hedge_after(ms: u64) -> HedgeConfig {
    HedgeConfig::new().after(HedgeAfter::Fixed(Duration::from_millis(ms)))
}

fn sdk(servers: &[&Scripted], hedge: Option<HedgeConfig>, retry: RetryConfig) -> ServiceSdk {
    sdk_balanced(servers, hedge, retry, Strategy::RoundRobin)
}

fn sdk_balanced(
    servers: &[&Scripted],
    hedge: Option<HedgeConfig>,
    retry: RetryConfig,
    strategy: Strategy,
) -> ServiceSdk {
    // Round robin, so the slow instance gets its share of first attempts (peak-EWMA
    // would learn to avoid it, which is the balancer's merit, not the hedge's).
    let mut config = ServiceConfig::new()
        .retry(retry)
        .circuit_breaker(BreakerConfig::new().failure_threshold(10_000))
        .load_balancer(LoadBalancerConfig::new().strategy(strategy));
    if let Some(hedge) = hedge {
        config = config.hedge(hedge);
    }
    for server in servers {
        config = config.instance(&server.url);
    }
    ServiceSdk::builder()
        .service("svc", config)
        .build()
        .expect("valid")
}

/// The trace id of every request `server` saw (all attempts of one call share it).
fn trace_ids(server: &Scripted) -> Vec<String> {
    server
        .seen()
        .iter()
        .map(|seen| {
            let traceparent = seen.headers["traceparent"].to_str().expect("ascii");
            traceparent.split('-').nth(1).expect("trace id").to_owned()
        })
        .collect()
}

fn assert_no_instance_saw_a_call_twice(servers: &[&Scripted]) {
    for server in servers {
        let ids = trace_ids(server);
        let distinct: HashSet<_> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "{} got one call twice",
            server.url
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_instance_is_hedged_to_another_and_the_first_answer_wins() {
    let fast = [
        Scripted::start(Reply::json(serde_json::json!("fast"))).await,
        Scripted::start(Reply::json(serde_json::json!("fast"))).await,
        Scripted::start(Reply::json(serde_json::json!("fast"))).await,
    ];
    let slow = Scripted::start(Reply::json(serde_json::json!("slow")).delay(SLOW)).await;
    let all = [&fast[0], &fast[1], &fast[2], &slow];
    let sdk = sdk(&all, Some(hedge_after(50)), RetryConfig::new());
    let client = sdk.get_client("svc");
    let calls = 40;
    for _ in 0..calls {
        let started = Instant::now();
        let answer: String = client.get("/item").send().await.expect("answered");
        assert_eq!(answer, "fast", "the hedge's answer wins");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
    let sent: usize = all.iter().map(|s| s.hits()).sum();
    assert!(
        slow.hits() >= calls / 5,
        "round robin tried the slow instance"
    );
    assert_eq!(
        sent - calls,
        slow.hits(),
        "one hedge for each call that went to the slow instance, none for the rest"
    );
    assert_no_instance_saw_a_call_twice(&all);
}

#[tokio::test(start_paused = true)]
async fn the_balancer_learns_from_attempts_a_hedge_cancelled() {
    let fast = Scripted::start(Reply::status(200)).await;
    let slow = Scripted::start(Reply::status(200).delay(SLOW)).await;
    let sdk = sdk_balanced(
        &[&fast, &slow],
        Some(hedge_after(20)),
        RetryConfig::new(),
        Strategy::PowerOfTwoChoices,
    );
    let client = sdk.get_client("svc");
    for _ in 0..30 {
        client.get("/x").response().await.expect("answered");
    }
    // The slow instance never answers in time (its attempts are cancelled), but each is
    // charged the time it had taken, so peak-EWMA turns away from it.
    assert!(
        slow.hits() <= 3,
        "{} first attempts at the slow instance",
        slow.hits()
    );
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_calls_are_hedged_and_never_to_the_same_instance() {
    let (a, b) = (
        Scripted::start(Reply::status(200).delay(SLOW)).await,
        Scripted::start(Reply::status(200).delay(SLOW)).await,
    );

    // One instance: a hedge has nowhere else to go.
    let alone = sdk(&[&a], Some(hedge_after(20)), RetryConfig::new());
    alone
        .get_client("svc")
        .get("/x")
        .response()
        .await
        .expect("answered");
    assert_eq!(a.hits(), 1);

    let both = sdk(&[&a, &b], Some(hedge_after(20).max(3)), RetryConfig::new());
    let client = both.get_client("svc");
    client.post("/x").response().await.expect("answered");
    assert_eq!(a.hits() + b.hits(), 2, "a POST is not hedged");
    client.get("/x").response().await.expect("answered");
    // Up to 3 hedges allowed, but only one other instance: 2 attempts, one each.
    assert_eq!(
        a.hits() + b.hits(),
        4,
        "a GET is hedged once per other instance"
    );
    assert_no_instance_saw_a_call_twice(&[&a, &b]);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_is_sent_once_the_retry_budget_is_dry() {
    let (a, b) = (
        Scripted::start(Reply::status(200).delay(SLOW)).await,
        Scripted::start(Reply::status(200).delay(SLOW)).await,
    );
    let dry = RetryConfig::new().budget(BudgetConfig::new().ratio(0.0).min_per_second(0));
    let sdk = sdk(&[&a, &b], Some(hedge_after(20)), dry);
    let client = sdk.get_client("svc");
    for _ in 0..3 {
        client.get("/x").response().await.expect("answered");
    }
    assert_eq!(a.hits() + b.hits(), 3, "no token, no hedge");
}

#[tokio::test(start_paused = true)]
async fn a_call_can_ask_for_hedging_of_its_own() {
    let (a, b) = (
        Scripted::start(Reply::status(200).delay(SLOW)).await,
        Scripted::start(Reply::status(200).delay(SLOW)).await,
    );
    let sdk = sdk(&[&a, &b], None, RetryConfig::new());
    let client = sdk.get_client("svc");
    client.get("/x").response().await.expect("answered");
    assert_eq!(a.hits() + b.hits(), 1, "the service does not hedge");
    client
        .get("/x")
        .hedge(hedge_after(20))
        .response()
        .await
        .expect("answered");
    assert_eq!(a.hits() + b.hits(), 3, "this call does");
}

#[sdk::prelude::service_interface(name = "svc")]
trait Items {
    #[service_call(GET, "/items/<id>")]
    #[hedge(after = "20ms", max = 1)]
    async fn item(&self, id: u32) -> sdk::ServiceResult<()>;

    #[service_call(GET, "/plain/<id>")]
    async fn plain(&self, id: u32) -> sdk::ServiceResult<()>;
}

#[tokio::test(start_paused = true)]
async fn a_typed_method_hedges_as_its_attribute_says() {
    let (a, b) = (
        Scripted::start(Reply::status(200).delay(SLOW)).await,
        Scripted::start(Reply::status(200).delay(SLOW)).await,
    );
    let sdk = sdk(&[&a, &b], None, RetryConfig::new());
    let items = ItemsClient::new(&sdk);
    items.plain(1).await.expect("answered");
    assert_eq!(a.hits() + b.hits(), 1, "a method without #[hedge]");
    items.item(1).await.expect("answered");
    assert_eq!(a.hits() + b.hits(), 3, "#[hedge(after = \"20ms\")]");
    assert_no_instance_saw_a_call_twice(&[&a, &b]);
}

#[test]
fn the_config_file_turns_hedging_on_and_names_a_wrong_key() {
    let config = sdk::SdkConfig::from_toml_str(
        "[services.users.hedge]\nafter = \"p99\"\nmax = 2\n\n[services.orders.hedge]\nafter = \"15ms\"\n",
    )
    .expect("valid");
    let users = config.service("users").hedge.expect("on");
    assert_eq!((users.after, users.max), (HedgeAfter::Percentile(99.0), 2));
    let orders = config.service("orders").hedge.expect("on");
    assert_eq!(orders.after, HedgeAfter::Fixed(Duration::from_millis(15)));
    assert!(config.service("other").hedge.is_none(), "off by default");

    let e = sdk::SdkConfig::from_toml_str("[services.users.hedge]\nmax = 5\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("services.users.hedge.max"), "{e}");
    let e = sdk::SdkConfig::from_toml_str("[services.users.hedge]\nafter = \"p100\"\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("percentile"), "{e}");
}
