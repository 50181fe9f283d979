//! Typed, resilient clients for calling other services.
//!
//! Every call, ad-hoc or generated, goes through one pipeline of tower layers, outermost
//! first:
//!
//! 1. [`deadline`]: the whole call, across retries (and a wait on another call's cache fill);
//! 2. [`cache`]: GET answers with a TTL, one upstream request per key under concurrency;
//! 3. [`retry`](mod@retry): exponential backoff with full jitter, `Retry-After`, a retry budget;
//! 4. [`circuit_breaker`](mod@circuit_breaker): per endpoint, lock-free when closed;
//! 5. [`balance`]: picks an instance from [`discovery`];
//! 6. [`timeout`](mod@timeout): one timer per attempt, at the attempt timeout or the deadline;
//! 7. user [`middleware`];
//! 8. [`transport`]: hyper-util's pooled client, rustls for HTTPS.
//!
//! # Quick start
//!
//! ```no_run
//! use sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Order {
//!     id: u64,
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sdk = ServiceSdk::builder()
//!     .service("order-service", ServiceConfig::new().instance("http://127.0.0.1:8081"))
//!     .build()?;
//! let orders = sdk.get_client("order-service");
//! match orders.get("/orders/123").send::<Order>().await {
//!     Ok(order) => println!("order {}", order.id),
//!     Err(e) if e.status_code() == Some(http::StatusCode::NOT_FOUND) => println!("no such order"),
//!     Err(e) if e.is_circuit_open() => println!("order-service is failing; not calling it"),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(()) }
//! ```
//!
//! # Typed clients
//!
//! Describe a service as a trait; [`service_interface`] generates `<Trait>Client`, which
//! implements it through the same pipeline:
//!
//! ```no_run
//! use sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! pub struct User {
//!     pub id: u64,
//! }
//!
//! /// The user service.
//! #[service_interface(name = "user-service", base_path = "/api/v1")]
//! pub trait UserService {
//!     /// One user.
//!     #[service_call(GET, "/users/<id>")]
//!     #[retry(max_attempts = 3, delay = "100ms")]
//!     #[timeout("2s")]
//!     async fn get_user(&self, id: u64) -> ServiceResult<User>;
//!
//!     /// A page of users.
//!     #[service_call(GET, "/users")]
//!     #[cached(ttl = "30s")]
//!     async fn list_users(&self, #[query] limit: u32) -> ServiceResult<Vec<User>>;
//! }
//!
//! # async fn run(sdk: ServiceSdk) -> ServiceResult<()> {
//! let users = UserServiceClient::new(&sdk);
//! let user = users.get_user(42).await?;
//! let page = users.list_users(10).await?;
//! # Ok(()) }
//! ```
//!
//! Configuration can also come from a TOML file with [`ServiceSdk::from_config_file`]; see
//! [`config`].

#[macro_use]
mod setters;

pub mod balance;
pub mod batch;
mod box_error;
pub mod cache;
pub mod circuit_breaker;
mod client;
mod clock;
pub mod config;
pub mod deadline;
pub mod discovery;
mod endpoint_map;
mod error;
mod error_chain;
pub mod health;
mod hooks;
mod outcome;
#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}
pub mod middleware;
pub mod path;
mod private;
mod redact;
mod request;
mod response;
pub mod retry;
pub mod telemetry;
/// The `bytes` crate, so request and response bodies can be named without depending on it.
pub use bytes;
/// The `http` crate (`StatusCode`, `HeaderValue`, `Method`...), so they can be named without
/// depending on it.
pub use http;
/// The registry's data model and backends (the `sdk-registry` crate).
pub use sdk_registry as registry;
pub use sdk_registry::{
    EtcdBackend, HttpBackend, InMemoryBackend, InstanceRecord, RegistryBackend, RegistryError,
    ServiceInstance,
};
mod service_sdk;
pub mod timeout;
pub mod trace;
pub mod transport;

pub use sdk_macros::{
    cached, circuit_breaker, idempotent, retry, service_call, service_interface, timeout,
};

pub use crate::{
    client::{RequestBuilder, ServiceClient},
    config::{ConfigError, EtcdConfig, SdkConfig, ServiceConfig},
    error::{
        BoxError, Endpoint, ErrorContext, RetryStop, ServiceError, ServiceResult, TimeoutKind,
    },
    hooks::{CallHook, ErrorHook},
    redact::is_secret_header,
    request::{CacheMode, CallOptions, Policy, ServiceRequest, VaryOn},
    response::{CacheStatus, ServiceResponse},
    retry::RetryOverride,
    service_sdk::{Registration, ServiceSdk, ServiceSdkBuilder},
};

/// The README's Rust examples, compiled (and run, unless marked `no_run`) as doctests so
/// they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The names most programs need.
pub mod prelude {
    pub use sdk_macros::{
        cached, circuit_breaker, idempotent, retry, service_call, service_interface, timeout,
    };

    pub use crate::{
        batch::{Batch, BatchCallResults, BatchKey, BatchResults},
        cache::CacheConfig,
        circuit_breaker::{BreakerConfig, CircuitState},
        retry::RetryConfig,
        CacheStatus, Registration, RetryStop, ServiceClient, ServiceConfig, ServiceError,
        ServiceInstance, ServiceResponse, ServiceResult, ServiceSdk, TimeoutKind,
    };
}
