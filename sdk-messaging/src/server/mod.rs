//! [`MessageServer`]: handlers by pattern, consuming from a broker.
//!
//! Each handler gets its own subscription, shared by every instance of the server's group
//! (a service): a request goes to one instance and is answered by one handler; an event is
//! delivered once to each group that handles it, and again until it is settled.
//!
//! - A message two handlers match goes to the more specific one (see
//!   [`Pattern::specificity`](crate::Pattern::specificity)), so it is handled once.
//! - A request's reply carries the handler's answer, or its failure: the status of the
//!   `ServiceError` it returned (4xx or 5xx), 500 otherwise, 400 for a payload that does not
//!   decode into the handler's type.
//! - An event whose handler fails with a retryable error is delivered again after a backoff
//!   (the SDK's `ExponentialBackoff`), up to `max_attempts` deliveries; then, or at once for
//!   an error retrying would not fix (a 4xx, a payload that does not decode), it goes to the
//!   dead letters with the reason, and the consumer goes on.
//! - Delivery is at least once: an event handled and redelivered (its settlement lost to a
//!   broken connection) is recognised by its id and settled without running the handler
//!   again, within the last `dedup_capacity` ids.
//! - [`RunningServer::shutdown`] stops taking messages and waits for the handlers in
//!   flight (up to the grace period); what was not settled is delivered again later.

mod consume;
mod handler;

use std::{future::Future, sync::Arc, time::Duration};

use sdk::{retry::ExponentialBackoff, ServiceResult};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{watch, Semaphore};

use self::{consume::Worker, handler::ErasedHandler};
use crate::{
    broker::{Broker, Subscription},
    envelope::Kind,
    MessageContext, MessagingError, Pattern,
};

/// How a server consumes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Messages in flight per handler (default 16): the broker's prefetch.
    pub prefetch: usize,
    /// Deliveries of an event before it goes to the dead letters (default 5).
    pub max_attempts: u32,
    /// The wait before an event is delivered again after its handler failed (default
    /// 100 ms doubling to 10 s, full jitter).
    pub backoff: ExponentialBackoff,
    /// How long `shutdown` waits for handlers in flight (default 10 s).
    pub shutdown_grace: Duration,
    /// How many handled event ids are remembered to drop duplicates (default 100,000).
    pub dedup_capacity: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            prefetch: 16,
            max_attempts: 5,
            backoff: ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            shutdown_grace: Duration::from_secs(10),
            dedup_capacity: 100_000,
        }
    }
}

impl ServerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages in flight per handler (default 16).
    #[must_use]
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Deliveries of an event before it goes to the dead letters (default 5).
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The wait before an event is delivered again (default 100 ms doubling to 10 s).
    #[must_use]
    pub fn backoff(mut self, backoff: ExponentialBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long `shutdown` waits for handlers in flight (default 10 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How many handled event ids are remembered (default 100,000).
    #[must_use]
    pub fn dedup_capacity(mut self, capacity: u64) -> Self {
        self.dedup_capacity = capacity;
        self
    }
}

struct Route {
    pattern: Pattern,
    kind: Kind,
    handler: ErasedHandler,
}

/// Handlers by pattern for one consumer group; [`start`](Self::start) it.
///
/// ```no_run
/// use sdk::ServiceResult;
/// use sdk_messaging::{MessageContext, Messaging};
/// # #[derive(serde::Deserialize)] struct NewUser { name: String }
/// # #[derive(serde::Serialize)] struct User { id: String }
/// # #[derive(serde::Deserialize)] struct UserCreated { id: String }
///
/// async fn create(user: NewUser, context: MessageContext) -> ServiceResult<User> {
///     Ok(User { id: format!("{}-{}", user.name, context.correlation_id) })
/// }
///
/// # async fn run(messaging: Messaging) -> Result<(), sdk_messaging::MessagingError> {
/// let server = messaging
///     .server("user-service")
///     .message_pattern("user.create", create)
///     .event_pattern("order.*", |event: UserCreated, context: MessageContext| async move {
///         println!("{} on {}", event.id, context.subject);
///         Ok(())
///     })
///     .start()
///     .await?;
/// // ... later
/// server.shutdown().await;
/// # Ok(()) }
/// ```
pub struct MessageServer {
    broker: Arc<dyn Broker>,
    group: Arc<str>,
    routes: Vec<Route>,
    options: ServerOptions,
    error: Option<MessagingError>,
}

impl MessageServer {
    pub(crate) fn new(broker: Arc<dyn Broker>, group: &str) -> Self {
        MessageServer {
            broker,
            group: group.into(),
            routes: Vec::new(),
            options: ServerOptions::default(),
            error: None,
        }
    }

    /// Sets how the server consumes (default: [`ServerOptions::default`]).
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Answers requests sent to `pattern` (wildcards allowed) with `handler`. A bad
    /// pattern, or a second handler for one, is reported by [`start`](Self::start).
    pub fn message_pattern<T, R, F, Fut>(mut self, pattern: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(T, MessageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ServiceResult<R>> + Send + 'static,
    {
        self.route(pattern, Kind::Request, handler::erase(handler));
        self
    }

    /// Handles events emitted to `pattern` (wildcards allowed) with `handler`.
    pub fn event_pattern<T, F, Fut>(mut self, pattern: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, MessageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ServiceResult<()>> + Send + 'static,
    {
        self.route(pattern, Kind::Event, handler::erase(handler));
        self
    }

    /// Hands every message stored for `service` (its queue is named from it, see
    /// [`queue_name`](crate::service_queue::queue_name)) to `callback`, as the reference's
    /// `consume_messages` does: a message is acknowledged once the callback returns `Ok`,
    /// delivered again after a retryable failure, and sent to the dead letters after a 4xx
    /// or its last attempt. RabbitMQ only.
    pub fn consume_messages<F, Fut>(mut self, service: &str, callback: F) -> Self
    where
        F: Fn(crate::ServiceMessage, MessageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ServiceResult<()>> + Send + 'static,
    {
        let queue = crate::service_queue::queue_name(service);
        self.route(&queue, Kind::Queue, handler::erase(callback));
        self
    }

    /// Consumes `service`'s messages and makes each one the HTTP call it stands for through
    /// `sdk`'s pipeline (its method and payload to its `to_service` URL, with an
    /// `Idempotency-Key` of the message id): a 2xx settles it, a 4xx sends it to the dead
    /// letters, anything else delivers it again later.
    pub fn deliver_to_http(self, service: &str, sdk: &sdk::ServiceSdk) -> Self {
        let bridge = crate::service_queue::HttpBridge::new(sdk);
        self.consume_messages(service, move |message, context| {
            let bridge = bridge.clone();
            async move { bridge.deliver(message, context).await }
        })
    }

    /// Registers an already erased handler (the typed interfaces' dispatchers use it).
    pub(crate) fn route(&mut self, pattern: &str, kind: Kind, handler: ErasedHandler) {
        match Pattern::handler(pattern) {
            Ok(pattern)
                if self
                    .routes
                    .iter()
                    .any(|r| r.kind == kind && r.pattern == pattern) =>
            {
                self.error.get_or_insert(MessagingError::Config(format!(
                    "two {} handlers for `{pattern}`",
                    kind.as_str()
                )));
            }
            Ok(pattern) => self.routes.push(Route {
                pattern,
                kind,
                handler,
            }),
            Err(e) => {
                self.error.get_or_insert(MessagingError::Pattern(e));
            }
        }
    }

    /// Subscribes every handler and starts consuming.
    pub async fn start(self) -> Result<RunningServer, MessagingError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let options = Arc::new(self.options);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for kind in [Kind::Request, Kind::Event, Kind::Queue] {
            let siblings: Arc<[Pattern]> = self
                .routes
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.pattern.clone())
                .collect();
            for route in self.routes.iter().filter(|r| r.kind == kind) {
                let subscription = Subscription {
                    group: self.group.to_string(),
                    pattern: route.pattern.clone(),
                    kind,
                    prefetch: options.prefetch.max(1),
                };
                let deliveries = self
                    .broker
                    .subscribe(subscription)
                    .await
                    .map_err(MessagingError::Broker)?;
                let worker = Arc::new(Worker {
                    group: self.group.clone(),
                    pattern: route.pattern.clone(),
                    kind,
                    handler: route.handler.clone(),
                    siblings: siblings.clone(),
                    options: options.clone(),
                    seen: moka::sync::Cache::new(options.dedup_capacity),
                    permits: Arc::new(Semaphore::new(options.prefetch.max(1))),
                    metrics: crate::telemetry::HandlerMetrics::new(
                        &self.group,
                        &route.pattern,
                        kind,
                    ),
                });
                tasks.push((
                    worker.clone(),
                    tokio::spawn(worker.run(deliveries, stopped.clone())),
                ));
            }
        }
        Ok(RunningServer {
            stop,
            tasks,
            grace: options.shutdown_grace,
            group: self.group,
            broker: self.broker,
        })
    }
}

impl std::fmt::Debug for MessageServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageServer")
            .field("group", &self.group)
            .field(
                "patterns",
                &self.routes.iter().map(|r| &r.pattern).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A started server; dropping it stops taking messages at once (handlers in flight still
/// finish), [`shutdown`](Self::shutdown) also waits for them.
pub struct RunningServer {
    stop: watch::Sender<bool>,
    tasks: Vec<(Arc<Worker>, tokio::task::JoinHandle<()>)>,
    grace: Duration,
    group: Arc<str>,
    broker: Arc<dyn Broker>,
}

impl RunningServer {
    /// Stops taking messages, and waits up to the grace period for the handlers in flight
    /// to finish and settle.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let deadline = tokio::time::Instant::now() + self.grace;
        for (worker, task) in tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
            let all = u32::try_from(worker.options.prefetch.max(1)).unwrap_or(u32::MAX);
            if tokio::time::timeout_at(deadline, worker.permits.acquire_many(all))
                .await
                .is_err()
            {
                tracing::warn!(group = %self.group, pattern = %worker.pattern,
                    "handlers still running after the shutdown grace period");
            }
        }
        // Settlements a client buffers (NATS acks) reach the broker before this returns,
        // or a process that exits next would leave them unacknowledged, to be delivered
        // again to the next consumer.
        if tokio::time::timeout_at(deadline, self.broker.flush())
            .await
            .is_err()
        {
            tracing::warn!(group = %self.group, "settlements not flushed within the grace period");
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("group", &self.group)
            .field("handlers", &self.tasks.len())
            .finish_non_exhaustive()
    }
}
