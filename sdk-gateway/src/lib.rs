#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! An API gateway on the SDK: each route's service is found through the SDK's discovery
//! (configured instances, the embedded registry, the `sdk-registry` server or etcd) and
//! called through its pipeline (balancing, breaker, deadline, retries for idempotent
//! methods), with both bodies streamed.
//!
//! ```toml
//! [sdk]
//! registry_url = "http://127.0.0.1:8500"
//!
//! [routes.users]
//! path = "/api/users/{user_id}"
//! service = "user-service"
//! rewrite = "/users/{user_id}"
//! protected = true
//! timeout = "2s"
//! rate_limit = { per_second = 100, burst = 200 }
//!
//! [routes.products]
//! path = "/api/products"
//! service = "product-service"
//!
//! [routes.ws]
//! path = "/ws/{service}"
//! service = "{service}"
//! rewrite = "/ws"
//! websocket = true
//!
//! [gateway.jwt]
//! hs256_secret = "${JWT_SECRET}"
//! jwks_url = "https://auth.example.com/.well-known/jwks.json"
//! forward_claims = { sub = "x-user-id" }
//! ```
//!
//! Per request, in order: one `Host` (two are a 400), the route (a `matchit` tree) and the
//! path the service gets, judged as every upstream may decode it
//! ([`sdk::path::check_untrusted_path`]: encoded `/` or `\`, dot segments in any spelling,
//! double encoding and `..;` are a 400), its methods, the token on protected routes
//! ([`auth`]), the client's rate ([`limit`]), then the call through the SDK; WebSocket
//! routes splice the two connections once the service has switched protocols. Every
//! refusal is a JSON answer ([`error`]); the headers that cross are [`forward`]'s.
//!
//! The binary `sdk-gateway --config gateway.toml` serves it with connection limits and
//! header and idle timeouts (the registry server's `serve`), and `/metrics`.

pub mod auth;
pub mod clients;
pub mod config;
pub mod error;
pub mod forward;
mod gateway;
mod jwt_crypto;
pub mod limit;
pub mod metrics;
mod proxy;
mod router;
mod routes;
pub mod template;
mod ws;

/// Logs to stderr as the binary does: events only, filtered by `RUST_LOG` (`info` when
/// unset); the one set-up every server binary uses ([`sdk_server::init_logging`]).
pub fn init_logging() {
    sdk_server::init_logging();
}

pub use crate::jwt_crypto::install_jwt_crypto;
pub use crate::{
    config::{GatewayConfig, GatewayConfigError, RouteConfig},
    error::GatewayError,
    gateway::Gateway,
    router::{GatewayApp, GatewayFuture, GatewayService},
};
