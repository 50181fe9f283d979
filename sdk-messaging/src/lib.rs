//! Messaging for the service SDK: `send` (request/reply) and `emit` (events) over a broker,
//! and handlers by pattern, with the guarantees of the SDK's HTTP calls.
//!
//! ```no_run
//! use sdk::ServiceResult;
//! use sdk_messaging::{MessageContext, Messaging, MessagingConfig, TransportKind};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct NewUser {
//!     name: String,
//! }
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct User {
//!     id: String,
//!     name: String,
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = MessagingConfig::new(TransportKind::Nats, "nats://127.0.0.1:4222");
//! let messaging = Messaging::connect("events", &config).await?;
//!
//! // A service answering `user.create` and handling every `user.*` event:
//! let server = messaging
//!     .server("user-service")
//!     .message_pattern("user.create", |user: NewUser, context: MessageContext| async move {
//!         Ok::<_, sdk::ServiceError>(User { id: context.correlation_id, name: user.name })
//!     })
//!     .event_pattern("user.*", |event: serde_json::Value, context: MessageContext| async move {
//!         println!("{} {event}", context.subject);
//!         Ok(())
//!     })
//!     .start()
//!     .await?;
//!
//! // A caller:
//! let client = messaging.client();
//! let user: User = client.send("user.create", &NewUser { name: "John".into() }).await?;
//! client.emit("user.created", &serde_json::json!({ "id": user.id })).await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! - **The pipeline is the SDK's** (see [`broker`]): each `send` and `emit` is a call with a
//!   deadline (default 10 s, so a `send` never waits forever), retries under the
//!   connection's budget, a breaker per pattern, the SDK's metrics and hooks, and a
//!   `traceparent` header. Its failures are [`sdk::ServiceError`]s: no handler listening is
//!   `NoHealthyInstance { reason: NoResponder }` (at once on NATS), the broker down is
//!   `Transport { connect: true }`, a deadline `Timeout`, a handler's failure `Status` with
//!   the handler's status.
//! - **Handlers by pattern** ([`MessageServer`], [`Pattern`]), with wildcards (`order.*`,
//!   `order.#`), a [`MessageContext`], dead letters, duplicates dropped by id, and a
//!   graceful shutdown.
//! - **Transports**: NATS (feature `nats`; [`nats`]).

pub mod broker;
mod client;
pub mod config;
mod context;
mod envelope;
#[cfg(feature = "nats")]
pub mod nats;
mod pattern;
mod server;
pub mod telemetry;
mod urgency;

use std::{collections::BTreeMap, fmt, path::Path, sync::Arc};

use sdk::{BoxError, ServiceError, ServiceSdk};

pub use self::{
    broker::{Broker, BrokerService, Subscription},
    client::{MessageBuilder, MessageClient},
    config::{MessagingConfig, NatsSettings, TransportKind},
    context::MessageContext,
    envelope::{headers, Envelope, Kind, Reply},
    pattern::{Pattern, PatternError},
    server::{MessageServer, RunningServer, ServerOptions},
    urgency::{Urgency, UrgencyError},
};

/// What can go wrong setting messaging up (a message's own failures are
/// [`sdk::ServiceError`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// The configuration is wrong.
    #[error("messaging configuration: {0}")]
    Config(String),
    /// The config file is wrong (names the file and key).
    #[error(transparent)]
    File(#[from] sdk::ConfigError),
    /// A handler's pattern is not one.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// The broker refused a connection or a subscription.
    #[error("the broker: {}", sdk::registry::describe(.0.as_ref()))]
    Broker(BoxError),
    /// The transport is not built in.
    #[error("the `{0}` transport is not built in; enable sdk-messaging's `{0}` feature")]
    NotBuiltIn(&'static str),
}

/// One messaging connection: its [`client`](Self::client), [`server`](Self::server)s and
/// health. Cheap to clone.
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    broker: Arc<dyn Broker>,
    client: MessageClient,
    // Owns the pipeline the client calls through.
    _sdk: ServiceSdk,
}

impl Messaging {
    /// Connects to the broker `config` names; `name` labels the connection's metrics.
    /// The connection is restored by itself whenever it drops.
    pub async fn connect(
        name: &str,
        config: &MessagingConfig,
    ) -> Result<Messaging, MessagingError> {
        match config.transport {
            #[cfg(feature = "nats")]
            TransportKind::Nats => {
                let broker = nats::NatsBroker::connect(&config.url, config.nats.clone()).await?;
                Self::with_broker(name, broker, config)
            }
            #[cfg(not(feature = "nats"))]
            TransportKind::Nats => Err(MessagingError::NotBuiltIn("nats")),
        }
    }

    /// Every `[messaging.NAME]` connection of the SDK's config file.
    pub async fn from_config(
        config: &sdk::SdkConfig,
    ) -> Result<BTreeMap<String, Messaging>, MessagingError> {
        let mut connections = BTreeMap::new();
        for (name, settings) in config.extension::<MessagingConfig>("messaging")? {
            let messaging = Self::connect(&name, &settings).await?;
            connections.insert(name, messaging);
        }
        Ok(connections)
    }

    /// Every `[messaging.NAME]` connection of a config file.
    pub async fn from_config_file(
        path: impl AsRef<Path>,
    ) -> Result<BTreeMap<String, Messaging>, MessagingError> {
        Self::from_config(&sdk::SdkConfig::from_file(path.as_ref())?).await
    }

    /// A connection over a broker of your own (or one built with its own options).
    pub fn with_broker(
        name: &str,
        broker: impl Broker,
        config: &MessagingConfig,
    ) -> Result<Messaging, MessagingError> {
        let broker: Arc<dyn Broker> = Arc::new(broker);
        let service = sdk::ServiceConfig::new()
            // One stand-in instance: the broker routes; the URI's path is the pattern.
            .instance("http://broker.messaging.invalid")
            .timeout(config.timeout)
            .retry(config.retry.clone())
            .circuit_breaker(config.circuit_breaker);
        let sdk = ServiceSdk::builder()
            .service(name, service)
            .transport(BrokerService::new(broker.clone()))
            .build()?;
        let client = MessageClient::new(sdk.get_client(name));
        Ok(Messaging {
            inner: Arc::new(Inner {
                name: name.into(),
                broker,
                client,
                _sdk: sdk,
            }),
        })
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The client that sends over this connection.
    pub fn client(&self) -> MessageClient {
        self.inner.client.clone()
    }

    /// A server for consumer group `group` (a service's name: its instances share the
    /// messages).
    pub fn server(&self, group: &str) -> MessageServer {
        MessageServer::new(self.inner.broker.clone(), group)
    }

    /// Whether the broker connection is up now: the messaging health check.
    pub fn is_connected(&self) -> bool {
        self.inner.broker.is_connected()
    }

    /// The broker underneath.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }
}

impl fmt::Debug for Messaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messaging")
            .field("name", &self.inner.name)
            .field("broker", &self.inner.broker)
            .finish_non_exhaustive()
    }
}

/// A failure for a handler to return: a 4xx `status` says the message is wrong (a request's
/// caller gets it; an event goes to the dead letters at once), a 5xx that handling it
/// failed for now (an event is delivered again).
///
/// ```
/// use sdk::http::StatusCode;
///
/// let refused = sdk_messaging::handler_error(StatusCode::UNPROCESSABLE_ENTITY, "no such product");
/// assert!(!refused.is_retryable());
/// assert!(sdk_messaging::handler_error(StatusCode::SERVICE_UNAVAILABLE, "db down").is_retryable());
/// ```
pub fn handler_error(status: http::StatusCode, reason: impl Into<String>) -> ServiceError {
    ServiceError::Status {
        context: Box::default(),
        status,
        headers: Box::default(),
        body: bytes::Bytes::from(reason.into()),
    }
}
