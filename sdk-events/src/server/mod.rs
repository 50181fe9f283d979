//! The `sdk-events` server (feature `server`): the REST API over the [`Store`], and the
//! [`Dispatcher`](crate::dispatcher::Dispatcher) beside it.
//!
//! | method | path | who | |
//! | --- | --- | --- | --- |
//! | `POST` | `/v1/applications` | admin | `{"application", "address", "secret"?}` → 201 with its publishing `token` and `secret` (shown once) |
//! | `GET` | `/v1/applications` | admin | without tokens or secrets |
//! | `POST` | `/v1/actions` | admin | `{"action", "application", "schemata"}` (a JSON Schema) → 201 |
//! | `GET` | `/v1/actions` | admin | |
//! | `POST` | `/v1/subscriptions` | admin | `{"application", "subscription", "action", "handler", "secret"?}` → 201 with its `secret` |
//! | `GET` | `/v1/subscriptions` | admin | without secrets |
//! | `POST` | `/v1/subscriptions/{name}/secret` | admin | rotate: `{"secret"?, "keep_previous_secs"?}` → the new secret; the old one keeps signing alongside |
//! | `POST` | `/v1/subscriptions/{name}/enable` | admin | turn deliveries on again (after a `410 Gone`) |
//! | `POST` | `/v1/events` | the action's application | `{"action", "payload", "idempotency_key"?}` (or an `Idempotency-Key` header) → 201, or 200 for a repeated key |
//! | `GET` | `/v1/events?action=&from=&to=&after=&limit=` | admin | paged, oldest first |
//! | `GET` | `/v1/deliveries?status=&subscription=&after=&limit=` | admin | paged |
//! | `POST` | `/v1/deliveries/{seq}/redrive`, `/v1/redrive {"subscription"}` | admin | dead deliveries pending again |
//! | `POST` | `/v1/replay` | admin | `{"subscription", "from", "to"}`: re-sent in order with their original ids |
//! | `GET` | `/health`, `/metrics` | anyone | |
//!
//! Every error is JSON `{"error": ...}` with a 4xx or 5xx status; an invalid payload's also
//! lists `violations` (path and keyword). A write is answered only once it is committed.

mod api;
mod auth;
mod requests;

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

pub use self::api::router;
use crate::{clock::Clock, schema::Schemas, store::Store};

/// How the server is set up.
#[derive(Clone)]
pub struct BusConfig {
    /// The admin bearer token (none: admin calls are refused unless `open_writes`).
    pub admin_token: Option<String>,
    /// Accept admin calls, and publishes, without a token (a warning at start;
    /// `/health` says so).
    pub open_writes: bool,
    /// Largest request body (default 1 MiB).
    pub max_body: usize,
    /// Time a request body has to arrive (default 30 s).
    pub body_timeout: Duration,
    /// Where `GET /metrics` renders from (none: 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Which handler addresses subscriptions may name (default: public ones only; loopback,
    /// private, link-local and metadata addresses are refused with 400). The dispatcher's
    /// SDK should connect under the same policy
    /// ([`TransportConfig::addresses`](sdk::transport::TransportConfig::addresses)), which
    /// judges names again after DNS.
    pub handlers: sdk_base::https::AddressPolicy,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            admin_token: None,
            open_writes: false,
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            metrics: None,
            handlers: sdk_base::https::AddressPolicy::public_only(),
        }
    }
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("open_writes", &self.open_writes)
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .field("metrics", &self.metrics.is_some())
            .field("handlers", &self.handlers)
            .finish()
    }
}

/// The server's state: the store, compiled schemas, the settings.
#[derive(Debug)]
pub struct Bus {
    store: Store,
    schemas: Schemas,
    config: BusConfig,
    clock: Clock,
    /// Woken after each publish, so the dispatcher in this process starts at once.
    wake: Option<Arc<Notify>>,
    tokens: auth::Tokens,
    /// Actions as found: they never change once created, so a hit stays true.
    actions: std::sync::RwLock<std::collections::HashMap<String, crate::store::ActionRow>>,
}

impl Bus {
    /// The state over `store`; `wake` (the dispatcher's waker) is notified after each
    /// publish. Refuses a config with neither a token nor `open_writes`.
    pub fn new(
        store: Store,
        config: BusConfig,
        clock: Clock,
        wake: Option<Arc<Notify>>,
    ) -> Result<Arc<Bus>, String> {
        match &config.admin_token {
            Some(token) if token.is_empty() => return Err("the admin token is empty".into()),
            None if !config.open_writes => {
                return Err("no admin token: set one, or allow open writes explicitly".into())
            }
            None => tracing::warn!("no admin token: anyone can set up and publish"),
            Some(_) => {}
        }
        Ok(Arc::new(Bus {
            store,
            schemas: Schemas::default(),
            config,
            clock,
            wake,
            tokens: auth::Tokens::default(),
            actions: Default::default(),
        }))
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
