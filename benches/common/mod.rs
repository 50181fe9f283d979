//! What every benchmark shares: the JSON server, and the clients under comparison, each
//! making the same typed GET.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod balance;
pub mod report;

use std::time::Duration;

use axum::{routing::get, Json, Router};
use bytes::Bytes;
use feignhttp::FeignClientBuilder;
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use sdk::{
    cache::CacheConfig, circuit_breaker::BreakerConfig, retry::RetryConfig, ServiceConfig,
    ServiceSdk,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub active: bool,
}

/// The same call as a generated client.
#[sdk::service_interface(name = "users")]
pub trait Users {
    /// One user.
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, id: u64) -> sdk::ServiceResult<User>;
}

/// The same call through the cached service, for the no-network comparison.
#[sdk::service_interface(name = "users-cached")]
pub trait CachedUsers {
    /// One user (the service caches GETs).
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, id: u64) -> sdk::ServiceResult<User>;
}

/// Where the suite's server listens: feignhttp takes its base URL at compile time, so the
/// server every client shares sits on a fixed loopback port.
pub const FIXED_ADDR: &str = "127.0.0.1:38917";

/// The same call through feignhttp (its URL is a compile-time constant).
#[feignhttp::feign(url = "http://127.0.0.1:38917")]
pub trait FeignUsers {
    /// One user.
    #[get("/users/{id}")]
    async fn get_user(&self, #[path] id: u64) -> feignhttp::Result<User>;
}

pub fn app() -> Router {
    Router::new().route(
        "/users/{id}",
        get(
            |axum::extract::Path(id): axum::extract::Path<u64>| async move {
                Json(User {
                    id,
                    name: "Alice Example".into(),
                    email: "alice@example.com".into(),
                    active: true,
                })
            },
        ),
    )
}

/// Serves `app()` on a loopback port from a runtime of its own on another thread.
pub fn start_server_thread() -> String {
    start_server_thread_on("127.0.0.1:0")
}

/// Serves `app()` on `addr` from a runtime of its own on another thread.
pub fn start_server_thread_on(addr: &'static str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
            tx.send(format!("http://{}", listener.local_addr().expect("addr")))
                .expect("send url");
            axum::serve(listener, app()).await.expect("serve");
        });
    });
    rx.recv().expect("server url")
}

/// The `users` settings without an instance: found through the registry.
fn protected_discovered() -> ServiceConfig {
    ServiceConfig::new()
        .timeout(Duration::from_secs(10))
        .attempt_timeout(Duration::from_secs(2))
        .retry(RetryConfig::default())
        .circuit_breaker(BreakerConfig::default())
}

/// The clients under comparison, all built once.
pub struct Clients {
    pub url: String,
    pub hyper: Client<HttpConnector, Empty<Bytes>>,
    pub reqwest: reqwest::Client,
    pub sdk: sdk::ServiceClient,
    pub typed: UsersClient,
    pub typed_cached: CachedUsersClient,
    pub sdk_cached: sdk::ServiceClient,
    pub sdk_open: sdk::ServiceClient,
    /// reqwest-middleware with reqwest-retry (up to two retries of transient failures).
    pub middleware: reqwest_middleware::ClientWithMiddleware,
    /// feignhttp over a shared reqwest client (calls `FIXED_ADDR`).
    pub feign: FeignUsersClient,
    /// The same service found through the embedded registry (one instance, `2.0.0`).
    pub sdk_discovered: sdk::ServiceClient,
    /// The same, with the version requirement `^2`.
    pub sdk_versioned: sdk::ServiceClient,
    /// The registrations behind the two above (dropping one deregisters it).
    _registrations: Vec<sdk::Registration>,
}

/// feignhttp's generated client type for [`FeignUsers`].
pub type FeignUsersClient = FeignUsers;

impl Clients {
    /// Builds the clients; the SDK has breaker, retry policy and budget, and both timeouts on.
    pub async fn new(url: &str) -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let hyper = Client::builder(TokioExecutor::new()).build(connector);
        let reqwest = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client");
        let protected = ServiceConfig::new()
            .instance(url)
            .timeout(Duration::from_secs(10))
            .attempt_timeout(Duration::from_secs(2))
            .retry(RetryConfig::default())
            .circuit_breaker(BreakerConfig::default());
        let open = ServiceConfig::new()
            .instance("http://127.0.0.1:9") // discard port: refused
            .retry(RetryConfig::new().max_attempts(1))
            .circuit_breaker(
                BreakerConfig::new()
                    .failure_threshold(1)
                    .open_duration(Duration::from_secs(3600)),
            );
        let sdk = ServiceSdk::builder()
            .service("users", protected.clone())
            .service(
                "users-cached",
                protected.cache(
                    CacheConfig::new()
                        .enabled(true)
                        .ttl(Duration::from_secs(3600)),
                ),
            )
            .service("down", open)
            .service("users-found", protected_discovered())
            .service(
                "users-v2",
                protected_discovered()
                    .version(sdk::version::VersionSelector::require("^2").expect("valid")),
            )
            .build()
            .expect("valid configuration");
        let port: u16 = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        let mut registrations = Vec::new();
        for service in ["users-found", "users-v2"] {
            let instance =
                sdk::ServiceInstance::new(service, ("127.0.0.1", port)).with_version("2.0.0");
            let registration = sdk.register_current_service(instance).await;
            registrations.push(registration.expect("registered"));
        }
        let sdk_discovered = sdk.get_client("users-found");
        let sdk_versioned = sdk.get_client("users-v2");
        // The first call waits for discovery's first fill; the warm-up covers it.
        let _ = sdk_discovered.get("/users/1").send::<User>().await;
        let _ = sdk_versioned.get("/users/1").send::<User>().await;
        let sdk_open = sdk.get_client("down");
        let _ = sdk_open.get("/users/1").send::<User>().await; // opens the breaker
        let policy =
            reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(2);
        let middleware = reqwest_middleware::ClientBuilder::new(reqwest.clone())
            .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
                policy,
            ))
            .build();
        let feign = {
            use feignhttp::Client as _;
            let wrapper = feignhttp::ClientWrapper::with_client(reqwest.clone()).expect("wrap");
            FeignUsersBuilder::build_with_client(wrapper).expect("feign client")
        };
        Clients {
            middleware,
            feign,
            url: url.to_owned(),
            hyper,
            reqwest,
            sdk: sdk.get_client("users"),
            typed: UsersClient::new(&sdk),
            typed_cached: CachedUsersClient::new(&sdk),
            sdk_cached: sdk.get_client("users-cached"),
            sdk_open,
            sdk_discovered,
            sdk_versioned,
            _registrations: registrations,
        }
    }

    pub async fn sdk_discovered_call(&self) -> User {
        self.sdk_discovered
            .get("/users/1")
            .send()
            .await
            .expect("discovered call")
    }

    pub async fn sdk_versioned_call(&self) -> User {
        self.sdk_versioned
            .get("/users/1")
            .send()
            .await
            .expect("versioned call")
    }

    /// Bare hyper-util, the way a user would hand-write it: parse the URI, send, collect,
    /// decode.
    pub async fn hyper_call(&self) -> User {
        let uri: http::Uri = format!("{}/users/1", self.url).parse().expect("uri");
        let response = self.hyper.get(uri).await.expect("hyper response");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("decode")
    }

    pub async fn reqwest_call(&self) -> User {
        self.reqwest
            .get(format!("{}/users/1", self.url))
            .send()
            .await
            .expect("reqwest response")
            .json()
            .await
            .expect("decode")
    }

    pub async fn middleware_call(&self) -> User {
        self.middleware
            .get(format!("{}/users/1", self.url))
            .send()
            .await
            .expect("middleware response")
            .json()
            .await
            .expect("decode")
    }

    pub async fn feign_call(&self) -> User {
        self.feign.get_user(1).await.expect("feign call")
    }

    pub async fn sdk_call(&self) -> User {
        self.sdk.get("/users/1").send().await.expect("sdk call")
    }

    /// The generated client's call: same pipeline, path built from the template.
    pub async fn typed_call(&self) -> User {
        self.typed.get_user(1).await.expect("typed call")
    }

    /// A cache hit through the generated client.
    pub async fn typed_cached_call(&self) -> User {
        self.typed_cached
            .get_user(1)
            .await
            .expect("cached typed call")
    }

    pub async fn sdk_cached_call(&self) -> User {
        self.sdk_cached
            .get("/users/1")
            .send()
            .await
            .expect("cached call")
    }

    pub async fn sdk_open_call(&self) -> bool {
        self.sdk_open.get("/users/1").send::<User>().await.is_err()
    }
}

/// The `p` quantile (0 to 1) of sorted durations; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[index]
}
