//! Discovery through the embedded registry: services register themselves, clients follow.

use crate::support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{Reply, Scripted};
use sdk::{
    balance::{LoadBalancerConfig, Strategy},
    health::{HealthChange, HealthSource},
    registry::{HealthStatus, ServiceInstance},
    ServiceConfig, ServiceSdk,
};

fn instance(server: &Scripted, id: &str) -> ServiceInstance {
    let port = server
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    ServiceInstance::new("echo", ("127.0.0.1", port)).with_id(id)
}

/// Waits (bounded) until the SDK routes `echo` to `n` instances.
async fn routed_to(sdk: &ServiceSdk, n: usize) {
    for _ in 0..200 {
        if sdk.service_instances("echo").len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "echo never had {n} instances: {:?}",
        sdk.service_instances("echo")
    );
}

#[tokio::test]
async fn clients_follow_registrations_health_and_deregistrations() {
    let a = Scripted::start(Reply::json(serde_json::json!("a"))).await;
    let b = Scripted::start(Reply::json(serde_json::json!("b"))).await;
    let round_robin = LoadBalancerConfig::new().strategy(Strategy::RoundRobin);
    let sdk = ServiceSdk::builder()
        .defaults(ServiceConfig::new().load_balancer(round_robin))
        .build()
        .expect("defaults");
    let echo = sdk.get_client("echo");
    assert!(
        echo.get("/").send::<String>().await.is_err(),
        "nothing registered yet"
    );

    let reg_a = sdk
        .register_current_service(instance(&a, "a"))
        .await
        .expect("valid");
    let reg_b = sdk
        .register_current_service(instance(&b, "b"))
        .await
        .expect("valid");
    routed_to(&sdk, 2).await;
    for _ in 0..10 {
        echo.get("/").send::<String>().await.expect("routed");
    }
    assert_eq!(
        (a.hits(), b.hits()),
        (5, 5),
        "round robin over both instances"
    );
    assert_eq!(
        sdk.discover_services("echo").await.expect("registry").len(),
        2
    );

    // A hook added at run time hears the registry's health flips.
    let changes: Arc<Mutex<Vec<HealthChange>>> = Arc::default();
    let sink = changes.clone();
    sdk.on_service_health_change(move |change| sink.lock().expect("lock").push(change.clone()));
    sdk.registry()
        .set_health("echo", "a", HealthStatus::Unhealthy)
        .await
        .expect("registered");
    routed_to(&sdk, 1).await;
    for _ in 0..4 {
        assert_eq!(echo.get("/").send::<String>().await.expect("routed"), "b");
    }
    sdk.registry()
        .set_health("echo", "b", HealthStatus::Healthy)
        .await
        .expect("registered");
    sdk.registry()
        .set_health("echo", "a", HealthStatus::Healthy)
        .await
        .expect("registered");
    routed_to(&sdk, 2).await;
    sdk.registry()
        .set_health("echo", "a", HealthStatus::Unhealthy)
        .await
        .expect("registered");
    routed_to(&sdk, 1).await;
    let flip = |healthy| HealthChange {
        service: "echo".into(),
        instance: a.url.trim_end_matches('/').to_owned(),
        healthy,
        source: HealthSource::Registry,
    };
    assert_eq!(
        changes.lock().expect("lock").as_slice(),
        [flip(false), flip(true), flip(false)],
        "b going from unknown to healthy is not a flip"
    );

    reg_b.deregister().await.expect("registered");
    routed_to(&sdk, 0).await;
    assert!(
        echo.get("/").send::<String>().await.is_err(),
        "a is unhealthy, b is gone"
    );
    drop(reg_a);
    for _ in 0..200 {
        if sdk
            .discover_services("echo")
            .await
            .expect("registry")
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("dropping the registration did not deregister it");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_registration_alive_past_the_ttl() {
    let sdk = ServiceSdk::builder().build().expect("defaults");
    let registration = sdk
        .register_current_service(ServiceInstance::new("echo", ("127.0.0.1", 9)).with_id("x"))
        .await
        .expect("valid");
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(
        sdk.discover_services("echo").await.expect("registry").len(),
        1,
        "90 s TTL, heartbeats every 30 s"
    );
    registration.deregister().await.expect("registered");
    assert!(sdk
        .discover_services("echo")
        .await
        .expect("registry")
        .is_empty());

    let err = sdk
        .register_current_service(ServiceInstance::new("echo", ("127.0.0.1", 9)).with_id("bad id!"))
        .await
        .expect_err("invalid id");
    assert!(err.to_string().contains("id"), "{err}");
}

#[tokio::test]
async fn external_registration_wins_over_the_registry() {
    let external = Scripted::start(Reply::json(serde_json::json!("external"))).await;
    let sdk = ServiceSdk::builder().build().expect("defaults");
    let client = sdk.get_client("echo");
    sdk.register_external_service("echo", [&external.url])
        .expect("valid");
    let registered = Scripted::start(Reply::json(serde_json::json!("registered"))).await;
    let _registration = sdk
        .register_current_service(instance(&registered, "r"))
        .await
        .expect("valid");
    // The registry has it: a follower that ignored the pin would route to it from now on.
    let mut listed = false;
    for _ in 0..200 {
        let records = sdk
            .discover_services("echo")
            .await
            .expect("embedded registry");
        listed = records.iter().any(|record| record.instance.id == "r");
        if listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(listed, "the registry lists the registered instance");
    for _ in 0..20 {
        assert_eq!(
            client.get("/").send::<String>().await.expect("routed"),
            "external"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(external.hits(), 20);
    assert_eq!(registered.hits(), 0, "the registered instance got no call");
}

/// A discovery whose one set the test fills when it likes.
#[derive(Debug, Clone, Default)]
struct FilledLater(sdk::discovery::InstanceSet);

impl sdk::discovery::Discovery for FilledLater {
    fn instances(&self, _service: &str) -> sdk::discovery::InstanceSet {
        self.0.clone()
    }
}

/// A GET with a 300 ms timeout that must fail; returns the error and how long it took.
async fn failing_get(client: &sdk::ServiceClient) -> (sdk::ServiceError, Duration) {
    let started = tokio::time::Instant::now();
    let err = client
        .get("/")
        .timeout(Duration::from_millis(300))
        .send::<String>()
        .await
        .expect_err("the call must fail");
    (err, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_first_lookup_stays_within_the_call_deadline() {
    let sdk = ServiceSdk::builder()
        .discovery(FilledLater::default()) // never filled
        .defaults(ServiceConfig::new().timeout(Duration::from_secs(2)))
        .build()
        .expect("valid");
    let client = sdk.get_client("silent");

    let (err, elapsed) = failing_get(&client).await;
    assert_eq!(
        elapsed,
        Duration::from_millis(300),
        "the call's own timeout bounds the wait: {err}"
    );
    assert!(
        matches!(err, sdk::ServiceError::NoHealthyInstance { .. }),
        "{err:?}"
    );

    // Without a timeout of its own, a call waits up to the service's deadline, once.
    let sdk = ServiceSdk::builder()
        .discovery(FilledLater::default()) // never filled
        .defaults(ServiceConfig::new().timeout(Duration::from_secs(2)))
        .build()
        .expect("valid");
    let other = sdk.get_client("silent-too");
    let started = tokio::time::Instant::now();
    let _ = other.get("/").send::<String>().await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "the service's 2 s deadline"
    );
    let started = tokio::time::Instant::now();
    let _ = other.get("/").send::<String>().await;
    assert_eq!(started.elapsed(), Duration::ZERO, "no second wait");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_the_call_not_from_the_end_of_the_wait() {
    let slow =
        Scripted::start(Reply::json(serde_json::json!("late")).delay(Duration::from_millis(500)))
            .await;
    let discovery = FilledLater::default();
    let sdk = ServiceSdk::builder()
        .discovery(discovery.clone())
        .defaults(ServiceConfig::new().retry(support::exact_retry(1)))
        .build()
        .expect("valid");
    let client = sdk.get_client("slow");
    let set = discovery.0.clone();
    let url = slow.url.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        set.replace(vec![sdk::discovery::Instance::parse(&url).expect("valid")]);
    });

    let (err, elapsed) = failing_get(&client).await;
    assert!(err.is_timeout(), "the instance answers too late: {err:?}");
    assert_eq!(
        elapsed,
        Duration::from_millis(300),
        "200 ms waiting for discovery + 100 ms left of the 300 ms deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn with_discovery_off_only_configured_and_external_instances_are_called() {
    let server = Scripted::start(Reply::json(serde_json::json!("hi"))).await;
    let mut config = sdk::SdkConfig::new();
    config.service_discovery = false;
    let sdk = ServiceSdk::builder().config(config).build().expect("valid");
    let _registration = sdk
        .register_current_service(instance(&server, "e-1"))
        .await
        .expect("registered in the embedded registry");
    let started = tokio::time::Instant::now();
    let err = sdk
        .get_client("echo")
        .get("/")
        .send::<String>()
        .await
        .expect_err("the registry is not consulted");
    assert!(
        matches!(err, sdk::ServiceError::NoHealthyInstance { .. }),
        "{err:?}"
    );
    // Paused time: a wait for a first registry lookup would show here as its bound.
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no wait for a first lookup"
    );
    assert_eq!(server.hits(), 0);
    // An external registration is still called.
    sdk.register_external_service("echo", [server.url.as_str()])
        .expect("valid URL");
    let answer: String = sdk
        .get_client("echo")
        .get("/")
        .send()
        .await
        .expect("called");
    assert_eq!(answer, "hi");
}
