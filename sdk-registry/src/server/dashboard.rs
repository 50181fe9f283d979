//! The dashboard: one HTML page (plain HTML, CSS and a little JavaScript, no build step)
//! served at `/` to browsers, its script and style as files of their own
//! (`/dashboard.js`, `/dashboard.css`) under a policy that runs no inline code. It follows `GET /v1/events` and shows every service, its
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
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// Only the page's own script and style files, and requests to this server: no inline
/// script or style can run, so markup that ever got into the page could do nothing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page, never cached (a new server version may serve a new page).
pub(super) fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    guard(&mut response);
    response
}

/// `/dashboard.js`, the page's script.
pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `/dashboard.css`, the page's style.
pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    guard(&mut response);
    response
}

fn guard(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
