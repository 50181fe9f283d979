//! "Send to a service with an urgency": the reference's deferred calls between services,
//! kept in a durable queue per target service (RabbitMQ).
//!
//! - [`MessageClient::send_to_service`](crate::MessageClient::send_to_service) stores a
//!   [`ServiceMessage`], exactly
//!   `{"from_service", "to_service", "method", "payload", "urgency", "timestamp"}`, in the
//!   queue named from the target's URL ([`queue_name`]), persistent, with the urgency's
//!   priority, and returns once the broker confirmed it.
//! - [`MessageServer::consume_messages`](crate::MessageServer::consume_messages) hands a
//!   service's messages to a callback, acknowledging each once it returns `Ok`.
//! - [`MessageServer::deliver_to_http`](crate::MessageServer::deliver_to_http) is such a
//!   consumer that makes each message the HTTP call it stands for, through the SDK's HTTP
//!   pipeline: queued with a priority, delivered with retries and a breaker, kept across
//!   restarts until the target answered.

use sdk::{ServiceError, ServiceResult, ServiceSdk};
use serde::{Deserialize, Serialize};

use crate::{MessageContext, Urgency};

/// One message for a service, as the reference writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceMessage {
    /// Who sends it (`catalog-service`).
    pub from_service: String,
    /// The target: the URL the message stands for a call to.
    pub to_service: String,
    /// The HTTP method of that call (`POST`).
    pub method: String,
    /// The call's JSON body.
    pub payload: serde_json::Value,
    /// How urgent it is (`high`): the queue priority.
    pub urgency: Urgency,
    /// When it was sent, UTC with milliseconds (`2024-01-15T10:30:00.000Z`).
    pub timestamp: String,
}

/// The queue of a service, named from its URL: the scheme dropped, every character other
/// than a letter, digit, `-` or `_` made `_`, with `queue_` in front.
///
/// ```
/// use sdk_messaging::service_queue::queue_name;
///
/// assert_eq!(queue_name("http://localhost:8002/api/v1/orders"), "queue_localhost_8002_api_v1_orders");
/// assert_eq!(queue_name("http://order-service/api/v1"), "queue_order-service_api_v1");
/// assert_eq!(queue_name("notification-service"), "queue_notification-service");
/// ```
pub fn queue_name(service: &str) -> String {
    let bare = service
        .split_once("://")
        .map_or(service, |(_, rest)| rest)
        .trim_end_matches('/');
    let name: String = bare
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("queue_{name}")
}

/// Now, as the reference's timestamps are written.
pub(crate) fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Delivers service messages as HTTP calls through `sdk`: each target's base URL becomes an
/// external service of the SDK (so it has a breaker, retries and metrics of its own), and
/// each message a call with its method and payload, an `Idempotency-Key` of the message id
/// (the call may be made again after a failure; the target can drop the repeat) and
/// `X-From-Service`. A 2xx settles the message; a 4xx sends it to the dead letters (the
/// target refused it); anything else delivers it again later.
#[derive(Clone, Debug)]
pub(crate) struct HttpBridge {
    sdk: ServiceSdk,
}

impl HttpBridge {
    pub(crate) fn new(sdk: &ServiceSdk) -> Self {
        HttpBridge { sdk: sdk.clone() }
    }

    pub(crate) async fn deliver(
        &self,
        message: ServiceMessage,
        context: MessageContext,
    ) -> ServiceResult<()> {
        let invalid = |reason: String| ServiceError::InvalidRequest {
            service: message.to_service.as_str().into(),
            reason,
        };
        let uri: http::Uri = message
            .to_service
            .parse()
            .map_err(|e| invalid(format!("`to_service` is not a URL: {e}")))?;
        let client = self
            .sdk
            .client_for_url(&message.to_service)
            .map_err(|e| invalid(e.to_string()))?;
        let method = http::Method::from_bytes(message.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid(format!("`{}` is not an HTTP method", message.method)))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = client
            .request(method, path)
            .json(&message.payload)
            .header("x-from-service", message.from_service.as_str())
            .header("x-urgency", message.urgency.as_str());
        if !context.message_id.is_empty() {
            request = request.header("idempotency-key", context.message_id.as_str());
        }
        request.response().await.and_then(|response| {
            if sdk_base::accepted(response.status().as_u16()) {
                Ok(())
            } else {
                Err(crate::handler_error(
                    response.status(),
                    String::from_utf8_lossy(response.bytes()).into_owned(),
                ))
            }
        })
    }
}
