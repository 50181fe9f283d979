//! Receiving deliveries in an axum handler: [`VerifiedEvent<T>`] checks the Standard
//! Webhooks signature against the receiver's secrets, then decodes the payload.

use std::time::SystemTime;

use axum::{
    body::Bytes,
    extract::{FromRef, FromRequest, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{de::DeserializeOwned, Deserialize};

use crate::signature::{verify, Secret, SignatureError, DEFAULT_TOLERANCE};

/// The secrets a receiver accepts deliveries signed with (the current one, and the one
/// being rotated out), as axum state: `WebhookSecrets: FromRef<S>`.
#[derive(Clone, Debug)]
pub struct WebhookSecrets(pub Vec<Secret>);

/// A delivery whose signature checked out, with its payload decoded into `T`.
///
/// ```no_run
/// use axum::{routing::post, Router};
/// use sdk_events::{signature::Secret, VerifiedEvent, WebhookSecrets};
///
/// #[derive(serde::Deserialize)]
/// struct UserCreated { user_id: String, email: String }
///
/// async fn welcome(event: VerifiedEvent<UserCreated>) -> &'static str {
///     println!("{} ({}): welcome {}", event.id, event.action, event.payload.email);
///     "ok"
/// }
///
/// # fn run() -> Result<(), sdk_events::signature::SignatureError> {
/// let secrets = WebhookSecrets(vec![Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?]);
/// let app: Router = Router::new().route("/webhooks/user-created", post(welcome)).with_state(secrets);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct VerifiedEvent<T> {
    /// The `webhook-id`: the same on every attempt and replay, to drop repeats by.
    pub id: String,
    /// The action (`user.created`).
    pub action: String,
    /// When the event was published (RFC 3339).
    pub timestamp: String,
    /// The payload.
    pub payload: T,
}

#[derive(Deserialize)]
struct Envelope<T> {
    action: String,
    timestamp: String,
    payload: T,
}

/// Why a delivery was refused: 401 for a signature that does not check out, 400 for a
/// body that does not decode (a JSON `{"error": ...}` either way).
#[derive(Debug)]
pub struct Rejected(pub StatusCode, pub String);

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl<S, T> FromRequest<S> for VerifiedEvent<T>
where
    S: Send + Sync,
    WebhookSecrets: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Rejected;

    async fn from_request(request: Request, state: &S) -> Result<Self, Rejected> {
        let secrets = WebhookSecrets::from_ref(state);
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| Rejected(e.status(), e.body_text()))?;
        let verified = verify(
            &secrets.0,
            &headers,
            &body,
            SystemTime::now(),
            DEFAULT_TOLERANCE,
        )
        .map_err(|e: SignatureError| Rejected(StatusCode::UNAUTHORIZED, e.to_string()))?;
        let envelope: Envelope<T> = serde_json::from_slice(&body).map_err(|e| {
            Rejected(
                StatusCode::BAD_REQUEST,
                format!("the delivery does not decode: {e}"),
            )
        })?;
        Ok(VerifiedEvent {
            id: verified.id,
            action: envelope.action,
            timestamp: envelope.timestamp,
            payload: envelope.payload,
        })
    }
}
