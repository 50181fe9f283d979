//! The dashboard: one HTML page (plain HTML, CSS and a little JavaScript, no build step)
//! served at `/` to browsers. It follows `GET /v1/events` and shows every service, its
//! instances with address, version, metadata, health and "last heartbeat N s ago", marks
//! stale instances (no heartbeat for more than half the TTL: one missed at the SDK's
//! default interval, a third of the TTL), and updates as the registry changes, without a
//! reload.
//!
//! The page holds no data itself, so it is served without a token; when reads need one,
//! the page asks for it and sends it as a bearer token (it reads the event stream with
//! `fetch`, since `EventSource` cannot send headers), keeping it for the browser tab only.
//! Every value from the registry is put in the page as text, never as markup.

use axum::{
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
};

const PAGE: &str = include_str!("dashboard.html");

/// The page, never cached (a new server version may serve a new page).
pub(super) fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Only its own script and style, and requests to this server.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        ),
    );
    response
}
