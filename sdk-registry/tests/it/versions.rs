//! Service versions through the registry server (the real binary): instances of two versions
//! register, and the SDK's version requirements (per service in config, per generated client,
//! per call) and weighted splits pick among them.
#![cfg(feature = "server")]

use crate::support;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{data_file, Server};
use sdk::{
    balance::NoInstanceReason, circuit_breaker::BreakerConfig, prelude::*, retry::BudgetConfig,
    version::VersionSelector, HttpBackend, ServiceConfig,
};
use sdk_registry::RegistryBackend;
use serde::Deserialize;

/// What an instance answers: who it is.
#[derive(Debug, Deserialize)]
pub(crate) struct Answer {
    /// The instance's id.
    pub id: String,
}

/// The user service, v2 and later.
#[service_interface(name = "users", version = "^2")]
pub(crate) trait UsersV2 {
    /// One user.
    #[service_call(GET, "/users/<id>")]
    async fn user(&self, id: u64) -> ServiceResult<Answer>;
}

/// One running instance: its id, and the trace ids of the requests it saw.
#[derive(Clone)]
struct Running {
    id: &'static str,
    port: u16,
    traces: Arc<Mutex<Vec<String>>>,
}

/// Starts an instance that answers its id on every path (503 on `/flaky`), after `delay`.
async fn run(id: &'static str, delay: Duration) -> Running {
    use axum::{extract::Request, http::StatusCode, response::IntoResponse, Json};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let traces: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = traces.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let seen = seen.clone();
        async move {
            let trace = request
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split('-').nth(1))
                .unwrap_or_default()
                .to_owned();
            seen.lock().expect("lock").push(trace);
            tokio::time::sleep(delay).await;
            if request.uri().path() == "/flaky" {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            Json(serde_json::json!({ "id": id })).into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Running { id, port, traces }
}

impl Running {
    fn hits(&self) -> usize {
        self.traces.lock().expect("lock").len()
    }

    fn instance(&self, version: &str) -> ServiceInstance {
        ServiceInstance::new("users", ("127.0.0.1", self.port))
            .with_id(self.id)
            .with_version(version)
    }
}

struct Fleet {
    _server: Server,
    url: String,
    backend: HttpBackend,
    v1: [Running; 2],
    v2: [Running; 2],
}

/// The registry binary, with instances of 1.x (`1.4.0`, `1.4.2`) and 2.x (`2.0.1`, `v2.1`)
/// registered.
async fn fleet(name: &str, v1_delay: [Duration; 2]) -> Fleet {
    let server = support::start_server(&data_file(name), 90, "127.0.0.1:0", &[]).await;
    let backend = HttpBackend::new(&server.url, Some("s3cret".into())).expect("url");
    let v1 = [run("v1a", v1_delay[0]).await, run("v1b", v1_delay[1]).await];
    let v2 = [
        run("v2a", Duration::ZERO).await,
        run("v2b", Duration::ZERO).await,
    ];
    for (running, version) in [
        (&v1[0], "1.4.0"),
        (&v1[1], "1.4.2"),
        (&v2[0], "2.0.1"),
        (&v2[1], "v2.1"),
    ] {
        backend
            .register(running.instance(version))
            .await
            .expect("registered");
    }
    Fleet {
        url: server.url.clone(),
        _server: server,
        backend,
        v1,
        v2,
    }
}

impl Fleet {
    /// An SDK discovering through the registry, with `users` configured as given.
    fn sdk(&self, users: ServiceConfig) -> ServiceSdk {
        ServiceSdk::builder()
            .registry(HttpBackend::new(&self.url, Some("s3cret".into())).expect("url"))
            .service("users", users)
            .build()
            .expect("valid")
    }
}

/// Waits (bounded) until `sdk` routes `users` to `n` instances.
async fn routed_to(sdk: &ServiceSdk, n: usize) {
    for _ in 0..400 {
        if sdk.service_instances("users").len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("users never had {n} instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirement_picks_only_matching_instances_and_names_itself_when_none_match() {
    let fleet = fleet("versions-require", [Duration::ZERO; 2]).await;
    let sdk = fleet.sdk(ServiceConfig::new());
    routed_to(&sdk, 4).await;

    // The generated client's `version = "^2"`: both 2.x instances, never a 1.x one.
    let users = UsersV2Client::new(&sdk);
    let mut ids = HashSet::new();
    for id in 0..40 {
        ids.insert(users.user(id).await.expect("a v2 instance").id);
    }
    assert_eq!(ids, HashSet::from(["v2a".to_owned(), "v2b".to_owned()]));
    assert_eq!(fleet.v1[0].hits() + fleet.v1[1].hits(), 0);

    // A view of the same client, and an ad-hoc call, with a requirement of their own.
    let v1 = users.with_version(VersionSelector::require("~1.4.1").expect("valid"));
    for id in 0..10 {
        assert_eq!(v1.user(id).await.expect("1.4.2").id, "v1b");
    }
    let answer: Answer = sdk
        .get_client("users")
        .get("/users/1")
        .version("=1.4.0")
        .send()
        .await
        .expect("1.4.0");
    assert_eq!(answer.id, "v1a");
    let err = sdk
        .get_client("users")
        .get("/users/1")
        .version("two")
        .send::<Answer>()
        .await
        .expect_err("not a requirement");
    assert!(matches!(err, ServiceError::InvalidRequest { .. }), "{err}");

    // A service-wide requirement in the config file that nothing matches: a typed error
    // naming it, and the versions that are there; nothing is sent.
    let sent = fleet.v1[0].hits() + fleet.v1[1].hits() + fleet.v2[0].hits() + fleet.v2[1].hits();
    let config = sdk::SdkConfig::from_toml_str(&format!(
        "[sdk]\nregistry_url = \"{}\"\nregistry_token = \"s3cret\"\n\n[services.users]\nversion = \"^3\"\n",
        fleet.url
    ))
    .expect("valid config");
    let v3 = ServiceSdk::from_config(config).expect("valid");
    routed_to(&v3, 4).await;
    let err = v3
        .get_client("users")
        .get("/users/1")
        .send::<Answer>()
        .await
        .expect_err("no 3.x");
    match &err {
        ServiceError::NoHealthyInstance {
            reason:
                NoInstanceReason::NoVersionMatch {
                    requirement,
                    registered,
                    versions,
                },
            ..
        } => {
            assert_eq!(requirement, "^3");
            assert_eq!(*registered, 4);
            assert_eq!(versions, &["1.4.0", "1.4.2", "2.0.1", "v2.1"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("matches version ^3"), "{err}");
    let after = fleet.v1[0].hits() + fleet.v1[1].hits() + fleet.v2[0].hits() + fleet.v2[1].hits();
    assert_eq!(after, sent);
    assert!(
        v3.get_service_instance("users").await.is_none(),
        "a pick for a WebSocket honours the service's requirement too"
    );
    let v2_only =
        fleet.sdk(ServiceConfig::new().version(VersionSelector::require("^2").expect("valid")));
    routed_to(&v2_only, 4).await;
    for _ in 0..20 {
        let picked = v2_only
            .get_service_instance("users")
            .await
            .expect("a 2.x instance");
        let version = picked.version().and_then(|v| v.semver()).map(|v| v.major);
        assert_eq!(version, Some(2), "{picked:?}");
    }
    // A generated client's requirement wins over the service's.
    assert_eq!(
        UsersV2Client::new(&v3)
            .user(1)
            .await
            .expect("2.x")
            .id
            .chars()
            .next(),
        Some('v')
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_migrates_gradually_with_the_balancer_inside_each_group() {
    // v1b is slow: inside the 1.x group, the balancer sends it little.
    let fleet = fleet(
        "versions-split",
        [Duration::ZERO, Duration::from_millis(20)],
    )
    .await;
    let split = VersionSelector::split([("^1", 90), ("^2", 10)]).expect("valid");
    let sdk = fleet.sdk(ServiceConfig::new().version(split));
    routed_to(&sdk, 4).await;
    let users = sdk.get_client("users");
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for id in 0..1000 {
        let answer: Answer = users
            .get(&format!("/users/{id}"))
            .send()
            .await
            .expect("answered");
        *by_id.entry(answer.id).or_default() += 1;
    }
    let count = |id: &str| by_id.get(id).copied().unwrap_or(0);
    let v2 = count("v2a") + count("v2b");
    assert!((50..=150).contains(&v2), "{by_id:?}: about 10 % to 2.x");
    assert!(
        count("v2a") > 0 && count("v2b") > 0,
        "{by_id:?}: both 2.x used"
    );
    assert!(
        count("v1b") * 10 < count("v1a"),
        "{by_id:?}: the slow 1.x instance is avoided within its group"
    );

    // The new version is withdrawn: its share goes to the old one, no call fails.
    for running in &fleet.v2 {
        fleet
            .backend
            .deregister("users", running.id)
            .await
            .expect("registered");
    }
    routed_to(&sdk, 2).await;
    let before = fleet.v1[0].hits() + fleet.v1[1].hits();
    for id in 0..100 {
        let answer: Answer = users
            .get(&format!("/users/{id}"))
            .send()
            .await
            .expect("1.x takes every call");
        assert!(answer.id.starts_with("v1"), "{answer:?}");
    }
    assert_eq!(fleet.v1[0].hits() + fleet.v1[1].hits(), before + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_of_a_call_stays_in_the_group_it_drew() {
    let fleet = fleet("versions-retries", [Duration::ZERO; 2]).await;
    let split = VersionSelector::split([("^1", 1), ("^2", 1)]).expect("valid");
    let retry = sdk::retry::RetryConfig::new()
        .max_attempts(3)
        .budget(BudgetConfig::new().min_per_second(1000));
    let sdk = fleet.sdk(
        ServiceConfig::new()
            .version(split)
            .retry(retry)
            .circuit_breaker(BreakerConfig::new().failure_threshold(10_000)),
    );
    routed_to(&sdk, 4).await;
    let users = sdk.get_client("users");
    for _ in 0..30 {
        let err = users
            .get("/flaky")
            .send::<()>()
            .await
            .expect_err("503 everywhere");
        assert_eq!(err.attempts(), 3, "{err}");
    }
    let traces = |group: &[Running; 2]| -> HashSet<String> {
        group
            .iter()
            .flat_map(|r| r.traces.lock().expect("lock").clone())
            .collect()
    };
    let (v1, v2) = (traces(&fleet.v1), traces(&fleet.v2));
    assert_eq!(v1.len() + v2.len(), 30, "one trace id per call");
    assert!(!v1.is_empty() && !v2.is_empty(), "both groups drawn");
    assert!(v1.is_disjoint(&v2), "no call crossed between versions");
    let attempts: usize = fleet.v1.iter().chain(&fleet.v2).map(Running::hits).sum();
    assert_eq!(attempts, 90);
}
