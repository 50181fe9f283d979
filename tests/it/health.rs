//! Client-side active health checks: an instance failing its health path leaves rotation,
//! comes back when it passes, and every change reaches the hooks.

use crate::support;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{http::StatusCode, routing::get, Router};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    health::{HealthChange, HealthCheckConfig, HealthSource},
    ServiceConfig, ServiceSdk,
};

/// An instance answering `name` on `/`, with a switchable `/health`.
async fn instance(name: &'static str, healthy: Arc<AtomicBool>) -> String {
    let router = Router::new()
        .route("/", get(move || async move { format!("\"{name}\"") }))
        .route(
            "/health",
            get(move || {
                let healthy = healthy.clone();
                async move {
                    if healthy.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
    support::serve(router).await
}

#[tokio::test(start_paused = true)]
async fn unhealthy_instances_leave_rotation_and_come_back() {
    let flaky_health = Arc::new(AtomicBool::new(true));
    let flaky = instance("flaky", flaky_health.clone()).await;
    let steady = instance("steady", Arc::new(AtomicBool::new(true))).await;
    let changes: Arc<Mutex<Vec<HealthChange>>> = Arc::default();
    let sink = changes.clone();
    let config = ServiceConfig::new()
        .instance(&flaky)
        .instance(&steady)
        .load_balancer(LoadBalancerConfig::new().strategy(Strategy::RoundRobin))
        .health_check(
            HealthCheckConfig::new()
                .enabled(true)
                .interval(Duration::from_secs(1))
                .unhealthy_threshold(2),
        );
    let sdk = ServiceSdk::builder()
        .service("svc", config)
        .on_service_health_change(move |change| sink.lock().expect("lock").push(change.clone()))
        .build()
        .expect("valid");
    let client = sdk.get_client("svc");
    let answers = |n| {
        let client = client.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..n {
                seen.push(client.get("/").send::<String>().await.expect("routed"));
            }
            seen.sort();
            seen.dedup();
            seen
        }
    };
    assert_eq!(answers(4).await, ["flaky", "steady"]);

    flaky_health.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        answers(6).await,
        ["steady"],
        "two failed probes took it out of rotation"
    );
    assert_eq!(
        changes.lock().expect("lock").as_slice(),
        [HealthChange {
            service: "svc".into(),
            instance: flaky.clone(),
            healthy: false,
            source: HealthSource::ClientCheck,
        }]
    );

    flaky_health.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        answers(4).await,
        ["flaky", "steady"],
        "one passing probe brought it back"
    );
    assert_eq!(changes.lock().expect("lock").len(), 2);
    assert!(changes.lock().expect("lock")[1].healthy);

    let report = sdk.health_check_service("svc").await;
    assert_eq!(report.len(), 2);
    assert!(
        report.iter().all(|r| r.healthy && r.status == Some(200)),
        "{report:?}"
    );
    let all = sdk.all_service_health().await;
    assert_eq!(all["svc"].len(), 2);
}

#[tokio::test(start_paused = true)]
async fn on_demand_checks_report_failures_without_background_checks() {
    let down = support::refused_url().await;
    let up = instance("up", Arc::new(AtomicBool::new(true))).await;
    let sdk = ServiceSdk::builder()
        .service("svc", ServiceConfig::new().instance(&up).instance(&down))
        .build()
        .expect("valid");
    let report = sdk.health_check_service("svc").await;
    let by_url = |url: &str| {
        report
            .iter()
            .find(|r| r.instance == url)
            .expect("reported")
            .clone()
    };
    assert_eq!(by_url(&up).status, Some(200));
    assert!(by_url(&down).error.is_some(), "{report:?}");
    assert!(
        by_url(&down).healthy,
        "one failure is below the threshold of 3"
    );
}
