//! [`ApiError`]: every server's error answer, `{"error": "..."}` with its status, and
//! [`json_errors`], the middleware that makes axum's own answers (405s, 413s, 408s,
//! rejections) the same JSON and logs each without its query or headers.

use axum::{
    body::Body,
    extract::{rejection::JsonRejection, Request},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};

/// A JSON error answer: `{"error": "..."}` with its status. The registry's and the event
/// bus's servers answer every error this way.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // A body that did not arrive in time is the client's timeout, not bad JSON.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(e) = source {
            if e.is::<tower_http::timeout::TimeoutError>() {
                return ApiError(StatusCode::REQUEST_TIMEOUT, rejection.body_text());
            }
            source = e.source();
        }
        // A body that is JSON but not the expected shape (an unknown field, a wrong type) is
        // a bad request like malformed JSON: 422 is the event bus's answer for a payload
        // its schema refuses, and only that.
        let status = match &rejection {
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            other => other.status(),
        };
        ApiError(status, rejection.body_text())
    }
}

/// Makes every error answer JSON (axum's own 405s, body-limit 413s, body-timeout 408s and
/// extractor rejections are plain), and logs each one: without the query string or any
/// header, so no credential reaches the log. A middleware for any axum router
/// (`middleware::from_fn(json_errors)`).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    match status {
        s if s.is_server_error() => tracing::error!(%method, %path, %status, "request failed"),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            tracing::warn!(%method, %path, %status, "request refused")
        }
        _ => tracing::info!(%method, %path, %status, "request refused"),
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text.trim().to_owned()
    };
    let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
