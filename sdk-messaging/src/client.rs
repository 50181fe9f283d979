//! [`MessageClient`]: `send` (request/reply) and `emit` (events) through the SDK's pipeline.

use std::time::Duration;

use futures_util::future::Either;
use http::{HeaderName, HeaderValue};
use sdk::{fallback::FallbackOn, ServiceClient, ServiceError, ServiceResult};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    broker::{emit_method, queue_method, send_method},
    envelope::{headers, new_id_value},
    Pattern, Urgency,
};

/// Sends messages over one messaging connection. Cheap to clone.
///
/// Every `send` and `emit` goes through the SDK's pipeline, configured by the connection's
/// settings: a deadline (default 10 s: a `send` never waits forever), retries with the
/// connection's budget (a message that could not be handed to the broker is retried, since
/// nothing was sent; a `send` that may have arrived is retried only if marked idempotent;
/// an `emit` always, as consumers drop duplicates by id), a breaker per pattern, metrics
/// (`sdk_calls_total{service = connection, method = "SEND" | "EMIT", endpoint = pattern}`),
/// the `on_call` and `on_error` hooks, and a `traceparent` in the message's headers.
///
/// ```no_run
/// # #[derive(serde::Serialize)] struct NewUser { name: String }
/// # #[derive(serde::Deserialize)] struct User { id: String }
/// # async fn run(client: sdk_messaging::MessageClient) -> sdk::ServiceResult<()> {
/// let user: User = client.send("user.create", &NewUser { name: "John".into() }).await?;
/// client.emit("user.created", &serde_json::json!({ "id": user.id })).await?;
/// let urgent: User = client
///     .message("user.create", &NewUser { name: "Ada".into() })
///     .urgency(sdk_messaging::Urgency::High)
///     .header("x-tenant", "acme")
///     .timeout(std::time::Duration::from_secs(2))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MessageClient {
    client: ServiceClient,
}

impl MessageClient {
    pub(crate) fn new(client: ServiceClient) -> Self {
        MessageClient { client }
    }

    /// The connection's name (the `service` label of its metrics).
    pub fn name(&self) -> &str {
        self.client.name()
    }

    /// Sends `request` to the handler of `pattern` and decodes its reply.
    pub async fn send<Req, Resp>(&self, pattern: &str, request: &Req) -> ServiceResult<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.message(pattern, request).send().await
    }

    /// Publishes `event` to `pattern`; returns once the broker has stored it.
    pub async fn emit<E: Serialize + ?Sized>(&self, pattern: &str, event: &E) -> ServiceResult<()> {
        self.message(pattern, event).emit().await
    }

    /// A message to `pattern` with `payload`, to give headers, a correlation id, an urgency
    /// or a deadline, then [`send`](MessageBuilder::send) or [`emit`](MessageBuilder::emit).
    pub fn message<T: Serialize + ?Sized>(&self, pattern: &str, payload: &T) -> MessageBuilder {
        let mut builder = MessageBuilder {
            client: self.client.clone(),
            pattern: pattern.to_owned(),
            payload: serde_json::to_vec(payload).map_err(|e| e.to_string()),
            headers: http::HeaderMap::new(),
            correlation_id: None,
            urgency: Urgency::default(),
            timeout: None,
            idempotent: None,
            error: None,
        };
        if let Err(e) = Pattern::check_message(pattern) {
            builder.error = Some(e.to_string());
        }
        builder
    }

    /// Stores `message` for `to_service` in that service's durable queue (named from its
    /// URL, see [`queue_name`](crate::service_queue::queue_name)) with `urgency` as its
    /// priority, as the reference's `send_to_microservice` does; returns once the broker
    /// confirmed it. The stored body is exactly the reference's JSON
    /// ([`ServiceMessage`](crate::ServiceMessage)). RabbitMQ only.
    ///
    /// ```no_run
    /// # async fn run(client: sdk_messaging::MessageClient) -> sdk::ServiceResult<()> {
    /// client
    ///     .send_to_service(
    ///         "http://localhost:8002/api/v1/orders",
    ///         "catalog-service",
    ///         "POST",
    ///         &serde_json::json!({ "product_id": 123, "action": "price_updated" }),
    ///         sdk_messaging::Urgency::High,
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_to_service<T: Serialize + ?Sized>(
        &self,
        to_service: &str,
        from_service: &str,
        method: &str,
        message: &T,
        urgency: Urgency,
    ) -> ServiceResult<()> {
        let service: std::sync::Arc<str> = self.client.name().into();
        let payload = serde_json::to_value(message).map_err(|e| ServiceError::InvalidRequest {
            service,
            reason: format!("the message could not be serialized as JSON: {e}"),
        })?;
        let envelope = crate::ServiceMessage {
            from_service: from_service.to_owned(),
            to_service: to_service.to_owned(),
            method: method.to_owned(),
            payload,
            urgency,
            timestamp: crate::service_queue::timestamp(),
        };
        let queue = crate::service_queue::queue_name(to_service);
        self.message(&queue, &envelope)
            .urgency(urgency)
            .into_request(queue_method())?
            .idempotent(true)
            .hide_deadline()
            .send::<()>()
            .await
    }

    /// The SDK client underneath (its breakers per pattern: `circuit_state()`).
    pub fn service_client(&self) -> &ServiceClient {
        &self.client
    }
}

/// One message being built; see [`MessageClient::message`].
#[must_use = "a message does nothing until it is sent or emitted"]
#[derive(Debug)]
pub struct MessageBuilder {
    client: ServiceClient,
    pattern: String,
    payload: Result<Vec<u8>, String>,
    headers: http::HeaderMap,
    correlation_id: Option<String>,
    urgency: Urgency,
    timeout: Option<Duration>,
    idempotent: Option<bool>,
    error: Option<String>,
}

impl MessageBuilder {
    /// Adds a header (a bad name or value makes the call an `InvalidRequest`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => {
                self.error
                    .get_or_insert_with(|| format!("header `{name}` is not a valid header"));
            }
        }
        self
    }

    /// The correlation id (default: the message's own id, fresh per message).
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The urgency (default medium): a priority on RabbitMQ, a header everywhere.
    pub fn urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = urgency;
        self
    }

    /// The deadline of this message, across retries (default: the connection's `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Declares a `send` safe to repeat, so one that may have arrived is retried after a
    /// timeout or a 5xx reply (default: only messages that never left are retried). An
    /// `emit` is always safe: consumers drop duplicates by message id.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Sends the message as a request and decodes the reply; a reply with a failure status
    /// is [`ServiceError::Status`] (4xx: the handler refused it; 5xx: it failed).
    pub fn send<Resp: DeserializeOwned>(
        self,
    ) -> impl std::future::Future<Output = ServiceResult<Resp>> + Send + 'static {
        let idempotent = self.idempotent;
        // Built before the future, which holds the call's alone (see `emit`).
        let mut request = match self.into_request(send_method()) {
            Ok(request) => request,
            Err(e) => return Either::Left(async move { Err(e) }),
        };
        if let Some(idempotent) = idempotent {
            request = request.idempotent(idempotent);
        }
        Either::Right(request.send())
    }

    /// Like [`send`](Self::send), answering with `fallback` instead when the call fails
    /// in a way it takes over (see [`sdk::fallback`](mod@sdk::fallback)).
    pub async fn send_or<Resp, F, Fut>(self, on: FallbackOn, fallback: F) -> ServiceResult<Resp>
    where
        Resp: DeserializeOwned,
        F: FnOnce(ServiceError) -> Fut,
        Fut: std::future::Future<Output = ServiceResult<Resp>>,
    {
        let idempotent = self.idempotent;
        let mut request = self.into_request(send_method())?;
        if let Some(idempotent) = idempotent {
            request = request.idempotent(idempotent);
        }
        request.fallback(fallback).on(on).send().await
    }

    /// Publishes the message as an event; returns once the broker has stored it. Retried
    /// with the same message id when that is not certain.
    pub fn emit(self) -> impl std::future::Future<Output = ServiceResult<()>> + Send + 'static {
        // Built before the future, which then holds the call's future alone: as an `async
        // fn` it also kept this builder and the request's (624 bytes), copied at every
        // move (issue 33). An event carries no deadline; the broker transport decides it
        // (`strip_http_headers`), and `hide_deadline` spares writing what it takes out.
        match self.into_request(emit_method()) {
            Ok(request) => Either::Right(request.idempotent(true).hide_deadline().send::<()>()),
            Err(e) => Either::Left(async move { Err(e) }),
        }
    }

    pub(crate) fn into_request(self, method: http::Method) -> ServiceResult<sdk::RequestBuilder> {
        let client = &self.client;
        let invalid = |reason: String| ServiceError::InvalidRequest {
            service: client.name().into(),
            reason,
        };
        if let Some(reason) = self.error {
            return Err(invalid(reason));
        }
        let payload = self
            .payload
            .map_err(|e| invalid(format!("the payload could not be serialized as JSON: {e}")))?;
        let mut path = String::with_capacity(self.pattern.len() + 1);
        path.push('/');
        path.push_str(&self.pattern);
        let mut request = self
            .client
            .request(method.clone(), &path)
            .endpoint(self.pattern)
            .header(headers::MESSAGE_ID_NAME, new_id_value())
            .body(payload);
        // Only what a reader would not assume (see `envelope`): each header is paid for on
        // both ends of every message.
        if let Some(correlation) = self.correlation_id {
            request = request.header(headers::CORRELATION_ID_NAME, correlation);
        }
        if self.urgency != Urgency::Medium {
            request = request.header(
                headers::URGENCY_NAME,
                HeaderValue::from_static(self.urgency.as_str()),
            );
        }
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        Ok(request)
    }
}
