//! Publishing from a service: [`EventBus`], through the SDK's HTTP pipeline (the bus's
//! breaker, deadline and metrics; retries only with an idempotency key, which makes a
//! repeated publish store one event).

use std::sync::Arc;

use http::HeaderValue;
use sdk::{ServiceClient, ServiceError, ServiceResult, ServiceSdk};
use serde::{Deserialize, Serialize};

/// What the bus stored for a publish.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Published {
    /// The event's id (`msg_...`): every delivery's `webhook-id`.
    pub id: String,
    /// The action.
    pub action: String,
    /// When it was stored (RFC 3339).
    pub created_at: String,
    /// Deliveries queued for it (0 for a repeated idempotency key).
    pub deliveries: u64,
    /// Whether the idempotency key had been used: the earlier event stands.
    pub duplicate: bool,
}

/// A client of the event bus for one application (its publishing token).
///
/// ```no_run
/// # async fn run(sdk: sdk::ServiceSdk) -> sdk::ServiceResult<()> {
/// #[derive(serde::Serialize)]
/// struct UserCreated { user_id: String, email: String, name: String }
///
/// let bus = sdk_events::EventBus::new(&sdk, "sdk-events", "evt_...");
/// let user = UserCreated { user_id: "u1".into(), email: "a@example.com".into(), name: "Ann".into() };
/// let published = bus.publish("user.created", &user).await?;
/// bus.event("user.created", &user).idempotency_key("signup-u1").send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventBus {
    client: ServiceClient,
    authorization: Arc<Result<HeaderValue, String>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("service", &self.client.name())
            .field("token", &"[redacted]")
            .finish()
    }
}

impl EventBus {
    /// The bus as the SDK's service `service` (configured or discovered like any other),
    /// publishing with `token`.
    pub fn new(sdk: &ServiceSdk, service: &str, token: &str) -> EventBus {
        EventBus::over(sdk.get_client(service), token)
    }

    /// The bus at `url` (`http://127.0.0.1:8600`), publishing with `token`.
    pub fn at(sdk: &ServiceSdk, url: &str, token: &str) -> ServiceResult<EventBus> {
        let client = sdk
            .client_for_url(url)
            .map_err(|e| ServiceError::InvalidRequest {
                service: "sdk-events".into(),
                reason: e.to_string(),
            })?;
        Ok(EventBus::over(client, token))
    }

    fn over(client: ServiceClient, token: &str) -> EventBus {
        let authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map(|mut value| {
                value.set_sensitive(true);
                value
            })
            .map_err(|_| "the token is not a valid header value".to_owned());
        EventBus {
            client,
            authorization: Arc::new(authorization),
        }
    }

    /// Publishes `payload` as an event of `action`; answers once the bus stored it and
    /// its deliveries. A payload the action's schema refuses is `ServiceError::Status`
    /// 422, naming the failing path.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        action: &str,
        payload: &T,
    ) -> ServiceResult<Published> {
        self.event(action, payload).send().await
    }

    /// An event to give an idempotency key before [`send`](PublishBuilder::send).
    pub fn event<'a, T: Serialize + ?Sized>(
        &'a self,
        action: &'a str,
        payload: &'a T,
    ) -> PublishBuilder<'a, T> {
        PublishBuilder {
            bus: self,
            action,
            payload,
            key: None,
        }
    }
}

/// An event on its way; see [`EventBus::event`].
#[derive(Debug)]
pub struct PublishBuilder<'a, T: ?Sized> {
    bus: &'a EventBus,
    action: &'a str,
    payload: &'a T,
    key: Option<String>,
}

#[derive(Serialize)]
struct Body<'a, T: ?Sized> {
    action: &'a str,
    payload: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
}

impl<T: Serialize + ?Sized> PublishBuilder<'_, T> {
    /// The same key twice stores one event; with a key, a publish whose answer was lost
    /// is retried by the pipeline.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Publishes.
    pub async fn send(self) -> ServiceResult<Published> {
        let authorization = self.bus.authorization.as_ref().clone().map_err(|reason| {
            ServiceError::InvalidRequest {
                service: self.bus.client.name().into(),
                reason,
            }
        })?;
        let body = Body {
            action: self.action,
            payload: self.payload,
            idempotency_key: self.key.as_deref(),
        };
        self.bus
            .client
            .post("/v1/events")
            .header(http::header::AUTHORIZATION, authorization)
            .json(&body)
            .idempotent(self.key.is_some())
            .send()
            .await
    }
}
