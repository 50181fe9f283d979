//! One replaceable classification, read by every layer: a fleet whose router answers 404
//! with `x-deploying` while an instance deploys means "unavailable, try again", and an SDK
//! built with a `Classify` that says so sees each layer act on it. The same answers without
//! it are the caller's 404s, and no layer counts them against the service.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{once, Reply, Scripted};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    cache::CacheConfig,
    circuit_breaker::{BreakerConfig, CircuitState},
    hedge::{HedgeAfter, HedgeConfig},
    outcome::{Classify, Fault, Retry, StatusClass},
    telemetry::CallOutcome,
    CacheStatus, ServiceConfig, ServiceSdk,
};

#[derive(Debug)]
struct DeployingIs404;

impl Classify for DeployingIs404 {
    fn classify(&self, status: http::StatusCode, headers: &http::HeaderMap) -> StatusClass {
        match status {
            http::StatusCode::NOT_FOUND if headers.contains_key("x-deploying") => {
                StatusClass::Unavailable
            }
            status => StatusClass::of(status),
        }
    }
}

fn deploying() -> Reply {
    Reply::status(404).header("x-deploying", "1")
}

fn sdk(
    config: ServiceConfig,
    classify: bool,
    outcomes: &Arc<Mutex<Vec<CallOutcome>>>,
) -> ServiceSdk {
    let seen = outcomes.clone();
    let builder = ServiceSdk::builder()
        .service("svc", config)
        .on_call(move |info| seen.lock().expect("lock").push(info.outcome));
    let builder = if classify {
        builder.classify(DeployingIs404)
    } else {
        builder
    };
    builder.build().expect("valid")
}

/// The error's answers and the metrics' outcome follow the class; so does the breaker,
/// which opens on answers it would otherwise never count.
#[tokio::test]
async fn the_error_the_metrics_and_the_breaker_read_the_class() {
    for classify in [false, true] {
        let server = Scripted::start(deploying()).await;
        let breaker = BreakerConfig::new()
            .failure_threshold(3)
            .open_duration(Duration::from_secs(60));
        let config = once().instance(&server.url).circuit_breaker(breaker);
        let outcomes = Arc::default();
        let client = sdk(config, classify, &outcomes).get_client("svc");
        let err = client.get("/items").send::<()>().await.expect_err("a 404");
        let expected = if classify {
            (Fault::Service, Retry::Now, CallOutcome::ServerError)
        } else {
            (Fault::Caller, Retry::Never, CallOutcome::ClientError)
        };
        let outcome = outcomes.lock().expect("lock")[0];
        assert_eq!((err.fault(), err.retry(), outcome), expected, "{classify}");
        for _ in 0..4 {
            let _ = client.get("/items").send::<()>().await;
        }
        let state = client.circuit_state()[0].state;
        if classify {
            assert_eq!(state, CircuitState::Open, "three failures open it");
            assert_eq!(server.hits(), 3, "an open breaker sends nothing");
        } else {
            assert_eq!(state, CircuitState::Closed, "a caller's 404 never opens it");
            assert_eq!(server.hits(), 5);
        }
    }
}

/// The balancer ejects an instance that keeps answering "deploying" and sends the calls to
/// the other one; without the classification both stay in rotation.
#[tokio::test]
async fn the_balancer_reads_the_class() {
    for classify in [false, true] {
        let down = Scripted::start(deploying()).await;
        let up = Scripted::start(Reply::json(serde_json::json!({}))).await;
        let config = once()
            .instance(&down.url)
            .instance(&up.url)
            .circuit_breaker(crate::support::lenient_breaker())
            .load_balancer(
                LoadBalancerConfig::new()
                    .strategy(Strategy::RoundRobin)
                    .ejection_failures(2)
                    .ejection_duration(Duration::from_secs(60)),
            );
        let client = sdk(config, classify, &Arc::default()).get_client("svc");
        for _ in 0..20 {
            let _ = client.get("/items").send::<serde_json::Value>().await;
        }
        if classify {
            assert_eq!(down.hits(), 2, "ejected after two failures");
        } else {
            assert_eq!(down.hits(), 10, "round robin, never ejected");
        }
    }
}

/// The cache serves its stale copy when the service answers "deploying" (stale-if-error);
/// a caller's 404 is an answer, passed on.
#[tokio::test]
async fn the_cache_reads_the_class() {
    for classify in [false, true] {
        let server = Scripted::start(deploying()).await;
        server.then(Reply::json(serde_json::json!({"n": 1})));
        let cache = CacheConfig::enabled_for(Duration::from_millis(1))
            .stale_if_error(Duration::from_secs(60));
        let config = once().instance(&server.url).cache(cache);
        let client = sdk(config, classify, &Arc::default()).get_client("svc");
        let first = client.get("/items").response().await.expect("cached");
        assert_eq!(first.cache_status(), CacheStatus::Miss);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = client.get("/items").response().await;
        if classify {
            let stale = again.expect("the stale copy");
            assert_eq!(stale.cache_status(), CacheStatus::Stale);
        } else {
            let answer = again.map(|r| r.status()).unwrap_or_else(|e| {
                e.status_code()
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
            });
            assert_eq!(answer, http::StatusCode::NOT_FOUND);
        }
    }
}

/// The hedge waits for a better answer than "deploying": a call whose first attempt is slow
/// is hedged to the instance answering 404 at once; without the classification that 404 is
/// the answer, with it the slow instance's 200 is.
#[tokio::test(start_paused = true)]
async fn the_hedge_reads_the_class() {
    for classify in [false, true] {
        let slow =
            Scripted::start(Reply::json(serde_json::json!({})).delay(Duration::from_millis(300)))
                .await;
        let deploying = Scripted::start(self::deploying()).await;
        let config = once()
            .instance(&slow.url)
            .instance(&deploying.url)
            .circuit_breaker(crate::support::lenient_breaker())
            .load_balancer(LoadBalancerConfig::new().strategy(Strategy::RoundRobin))
            .hedge(HedgeConfig::new().after(HedgeAfter::Fixed(Duration::from_millis(50))));
        let client = sdk(config, classify, &Arc::default()).get_client("svc");
        let mut served = 0;
        for _ in 0..4 {
            if client
                .get("/items")
                .send::<serde_json::Value>()
                .await
                .is_ok()
            {
                served += 1;
            }
        }
        if classify {
            assert!(served >= 1, "the slow 200 won over the 404 at least once");
        } else {
            assert_eq!(served, 0, "the hedged 404 is taken as the answer");
        }
    }
}
