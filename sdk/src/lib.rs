#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! Typed, resilient clients for calling other services.
//!
//! Every call, ad-hoc or generated, goes through one pipeline of tower layers, outermost
//! first:
//!
//! 1. [`deadline`]: the whole call, across retries (and a wait on another call's cache fill);
//! 2. [`cache`]: GET answers with a TTL, one upstream request per key under concurrency;
//! 3. [`retry`](mod@retry): exponential backoff with full jitter, `Retry-After`, a retry budget;
//!    under it, [`hedge`](mod@hedge): a second attempt to another instance for a slow idempotent call
//!    (opt-in), drawing from the same budget;
//! 4. [`circuit_breaker`](mod@circuit_breaker): per endpoint, lock-free when closed;
//! 5. [`balance`]: picks an instance from [`discovery`];
//! 6. [`timeout`](mod@timeout): one timer per attempt, at the attempt timeout or the deadline;
//! 7. user [`middleware`];
//! 8. [`transport`]: hyper-util's pooled client, rustls for HTTPS.
//!
//! The modules are layered, and no module reaches one above it (the workspace test
//! `tests/module_cycles.rs` fails on any cycle): at the bottom, plain data every stage
//! names (each stage's settings and the per-call `Policy`; the small error kinds, the
//! [`ServiceError`] they map to and the [`CallOutcome`](telemetry::CallOutcome) label; the
//! [`Instance`](discovery::Instance)s and their live set), then the transport, the request
//! and response, the one error classification, then each stage in its folder, and on top
//! the client, the config file and [`ServiceSdk`] that assemble them.
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
mod class;
mod client;
mod clock;
pub mod config;
pub mod deadline;
pub mod discovery;
mod endpoint_map;
mod error;
mod error_chain;
pub mod fallback;
pub mod health;
pub mod hedge;
mod hooks;
mod instances;
pub mod outcome;
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
pub mod testing;
/// The `bytes` crate, so request and response bodies can be named without depending on it.
pub use bytes;
/// The `http` crate (`StatusCode`, `HeaderValue`, `Method`...), so they can be named without
/// depending on it.
pub use http;
/// The registry's data model and backends (the `sdk-registry` crate).
pub use sdk_registry as registry;
#[cfg(feature = "etcd")]
pub use sdk_registry::EtcdBackend;
pub use sdk_registry::{
    HttpBackend, InMemoryBackend, InstanceRecord, RegistryBackend, RegistryError, ServiceInstance,
};
mod service_sdk;
mod settings;
pub mod timeout;
pub mod trace;
pub mod transport;
pub mod version;

pub use sdk_macros::{
    cached, circuit_breaker, fallback, hedge, idempotent, retry, service_call, timeout,
};

/// Turns a trait into a service contract and generates `<Trait>Client`, which implements it
/// through the SDK's pipeline (deadline, cache, retries, breaker, balancing).
///
/// ```
/// use sdk::prelude::*;
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// pub struct User {
///     pub id: u64,
///     pub name: String,
/// }
///
/// #[service_interface(name = "user-service", base_path = "/api/v1")]
/// pub trait UserService {
///     /// `GET /api/v1/users/{id}`: `<id>` is the argument `id`, one encoded segment.
///     #[service_call(GET, "/users/<id>")]
///     #[timeout("2s")]
///     async fn get_user(&self, id: u64) -> ServiceResult<User>;
///
///     /// `GET /api/v1/users?limit=10&active=true&tag=a&tag=b`, with a header.
///     #[service_call(GET, "/users")]
///     #[cached(ttl = "30s", vary_on = ["accept-language"])]
///     async fn list_users(
///         &self,
///         #[query] limit: u32,
///         #[query] active: Option<bool>,
///         #[query("tag")] tags: Vec<String>,
///         #[header("X-Tenant")] tenant: String,
///     ) -> ServiceResult<Vec<User>>;
///
///     /// A POST that may be retried: the key makes it idempotent.
///     #[service_call(POST, "/users")]
///     #[retry(max_attempts = 3, delay = "100ms", backoff = 2.0)]
///     #[circuit_breaker(failure_threshold = 3, recovery_timeout = "30s")]
///     async fn create_user(
///         &self,
///         #[body] user: User,
///         #[idempotency_key] key: String,
///     ) -> ServiceResult<User>;
///
///     /// An empty answer.
///     #[service_call(DELETE, "/users/<id>")]
///     async fn delete_user(&self, id: u64) -> ServiceResult<()>;
/// }
///
/// async fn example(sdk: &ServiceSdk) -> ServiceResult<()> {
///     let users = UserServiceClient::new(sdk);
///     let user = users.get_user(7).await?;
///     let fresh = users.fresh().get_user(7).await?; // skip the cache lookup
///     let v2 = UserServiceClient::with_service(sdk, "user-service-v2");
///     let quick = users.with_timeout(std::time::Duration::from_millis(200));
///     Ok(())
/// }
/// ```
///
/// # Attributes
///
/// | attribute | on | meaning |
/// | --- | --- | --- |
/// | `#[service_interface(name = "...", base_path = "/api")]` | trait | the service to call; `base_path` prefixes every path; `crate = "my_sdk"` for a renamed dependency |
/// | `#[service_call(METHOD, "/path/<param>")]` | method | GET, POST, PUT, PATCH, DELETE or HEAD; `<param>` names an argument (not `{param}`), sent as one percent-encoded segment; an empty value, `.` and `..` are refused |
/// | `#[retry(max_attempts = 3, delay = "100ms", backoff = 2.0)]` | method | this method's retries; the service's retry budget still applies |
/// | `#[circuit_breaker(failure_threshold = 5, success_threshold = 2, recovery_timeout = "60s")]` | method | this endpoint's breaker (unset keys take the defaults) |
/// | `#[cached(ttl = "60s", vary_on = ["header"])]` | GET method | cache answers for `ttl`; `vary_on` headers are part of the key |
/// | `#[timeout("2s")]` | method | this method's deadline, across retries |
/// | `#[idempotent]` | POST/PATCH method | the server deduplicates, so `#[retry]` is allowed |
/// | `#[query]`, `#[query("name")]` | argument | a query parameter (`Option` left out when `None`, `Vec` repeated) |
/// | `#[body]` | argument | the JSON body (one per method; not on GET or HEAD) |
/// | `#[header("X-Name")]` | argument | a request header (`Display` value) |
/// | `#[idempotency_key]` | argument | sent as `Idempotency-Key`, the same on every attempt |
///
/// Durations are `"250ms"`, `"2s"`, `"5m"` or `"1h"`. A method's attribute overrides the
/// service's configuration for that method only. Every argument not in the path must be
/// marked. Return types are `ServiceResult<T>` with `T: DeserializeOwned`, or
/// `ServiceResult<()>`.
///
/// # The generated client
///
/// `<Trait>Client::new(&sdk)` (the trait's service), `with_service(&sdk, name)` (the same
/// interface under another name), and views: `fresh()` (skip the cache lookup),
/// `with_timeout(d)`, `with_header(name, value)`; `clear_cache()`; `service_client()` for
/// ad-hoc calls. The trait's methods return `Send` futures, so a fake for tests implements
/// it with plain `async fn`s.
///
/// # Mistakes
///
/// Each is a compile error at the offending tokens, all reported at once, the trait and its
/// client still emitted so nothing else cascades: a `<param>` with no argument, an unmarked
/// argument, two bodies or a body on GET/HEAD, an unknown method or policy key, a bad
/// duration, a retried POST/PATCH that is not idempotent, `#[cached]` off GET, a method that
/// is not `async` or does not return `ServiceResult<_>`, generic traits and methods, and a
/// `{param}` written for `<param>`.
pub use sdk_macros::service_interface;

pub use crate::{
    client::{RequestBuilder, ServiceClient},
    config::{ConfigError, EtcdConfig, SdkConfig, ServiceConfig},
    error::{
        BoxError, Endpoint, ErrorContext, RetryStop, ServiceError, ServiceResult, TimeoutKind,
    },
    hooks::{CallHook, ErrorHook},
    redact::is_secret_header,
    request::{CacheMode, CallOptions, ServiceRequest, VaryOn},
    response::{CacheStatus, ServiceResponse, Streamed},
    retry::RetryOverride,
    service_sdk::{Registration, ServiceSdk, ServiceSdkBuilder},
    settings::Policy,
};

/// The README's and the guide's Rust examples (`docs/guide/`), compiled (and run, unless
/// marked `no_run`) as doctests so they stay true.
#[cfg(doctest)]
mod docs {
    macro_rules! chapters {
        ($($name:ident = $file:literal),* $(,)?) => {$(
            #[doc = include_str!(concat!("../../", $file))]
            pub struct $name;
        )*};
    }
    chapters! {
        Readme = "README.md",
        ExamplesAndTests = "docs/guide/examples-and-tests.md",
        Architecture = "docs/guide/architecture.md",
        TypedClients = "docs/guide/typed-clients.md",
        Calls = "docs/guide/calls.md",
        Discovery = "docs/guide/discovery.md",
        Dashboard = "docs/guide/dashboard.md",
        Messaging = "docs/guide/messaging.md",
        Events = "docs/guide/events.md",
        Gateway = "docs/guide/gateway.md",
        FailureBehaviour = "docs/guide/failure-behaviour.md",
        Migrating = "docs/guide/migrating.md",
        Configuration = "docs/guide/configuration.md",
        Performance = "docs/guide/performance.md",
    }
}

/// The names most programs need.
pub mod prelude {
    pub use sdk_macros::{
        cached, circuit_breaker, fallback, hedge, idempotent, retry, service_call,
        service_interface, timeout,
    };

    pub use crate::{
        batch::{Batch, BatchCallResults, BatchKey, BatchResults},
        cache::CacheConfig,
        circuit_breaker::{BreakerConfig, CircuitState},
        hedge::{HedgeAfter, HedgeConfig},
        retry::RetryConfig,
        CacheStatus, Registration, RetryStop, ServiceClient, ServiceConfig, ServiceError,
        ServiceInstance, ServiceResponse, ServiceResult, ServiceSdk, TimeoutKind,
    };
}
