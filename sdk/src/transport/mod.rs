//! The bottom of the pipeline: sending one HTTP request and reading the whole response.
//!
//! [`HyperTransport`] uses hyper-util's pooled client directly (HTTP/1.1 and HTTP/2, rustls
//! for HTTPS through hyper-rustls). It is the default because it is the cheapest correct
//! client there is: the URI arrives already built from a pre-parsed base, and nothing is
//! parsed twice. `reqwest` is available as a second transport (`ReqwestTransport`, feature
//! `reqwest`) for users who bring a configured `reqwest::Client` (custom roots, proxies).
//!
//! Transports are `tower::Service<HttpRequest, Response = HttpResponse, Error = BoxError>`,
//! the same shape user middleware wraps.

mod body;
mod exchange;
mod hyper;
#[cfg(feature = "reqwest")]
mod reqwest;

use std::fmt;

use bytes::Bytes;

pub(crate) use self::body::{read_body, whole_request};
pub(crate) use self::exchange::Exchange;
#[cfg(feature = "reqwest")]
pub use self::reqwest::ReqwestTransport;
pub use self::{
    body::Body,
    hyper::{HyperStreaming, HyperTransport, TransportConfig, DEFAULT_USER_AGENT},
};

/// The request type transports and user middleware see: absolute URI, body already bytes.
pub type HttpRequest = http::Request<Bytes>;
/// The response type transports and `from_fn` middleware produce: the body fully read.
pub type HttpResponse = http::Response<Bytes>;
/// The request type at the middleware seam: what tower layers see (the body is whole, but
/// a [`Body`], as tower-http's layers ask for).
pub type StreamRequest = http::Request<Body>;
/// The response type at the middleware seam, before the body is read: what tower layers see.
pub type StreamResponse = http::Response<Body>;

/// The response body was larger than the configured limit; it was not read further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "response body exceeds the {}-byte limit", self.limit)
    }
}

impl std::error::Error for BodyTooLarge {}

/// The request body a streamed call was sending failed on the *caller's* side: its source
/// broke off (the client of a gateway went away mid-upload, or the stream the caller handed
/// in failed), or it stalled: the attempt's time ran out while the body was waiting for the
/// caller's next bytes, or the server's body timeout passed.
///
/// The service's health is not in question: no breaker counts it, no instance is charged or
/// ejected for it, and it is not retried (the body can be sent once). A caller may wrap its
/// own body's errors in it (a server's idle-body timeout as [`Stalled`](Self::Stalled)); the
/// SDK wraps every other error of a streamed request body in [`Broke`](Self::Broke).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestBodyError {
    /// The caller's body failed or was cut off.
    #[error("the request body broke off on the caller's side: {}", sdk_base::describe(.0.as_ref()))]
    Broke(#[source] crate::BoxError),
    /// The caller sent no body bytes for too long.
    #[error("the request body stalled on the caller's side")]
    Stalled,
}

impl RequestBodyError {
    /// Whether the body stalled (rather than broke off).
    pub fn is_stalled(&self) -> bool {
        matches!(self, RequestBodyError::Stalled)
    }
}

/// True if an answer's body declares a length over `limit`, so it is refused before a byte
/// of it is read. `declared` is the body's own size hint, which hyper takes from
/// `Content-Length` (and is zero for an answer to HEAD and for 1xx, 204 and 304, whose
/// `Content-Length` describes the resource, not the message: RFC 9110, 6.4.1); a body with
/// no declared length is held to the limit as it is read.
pub(crate) fn declares_too_large(head: bool, declared: Option<u64>, limit: usize) -> bool {
    !head && declared.is_some_and(|len| len > limit as u64)
}

/// A transport-level failure and whether it happened while connecting (nothing was sent,
/// so even a non-idempotent request may be retried).
#[derive(Debug)]
pub struct TransportError {
    connect: bool,
    source: crate::BoxError,
}

impl TransportError {
    /// Wraps a transport failure.
    pub fn new(connect: bool, source: impl Into<crate::BoxError>) -> Self {
        TransportError {
            connect,
            source: source.into(),
        }
    }

    /// Whether the connection could not be made (the request was never sent).
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.connect {
            f.write_str("could not connect: ")?;
        }
        // hyper-util's errors keep the interesting part (refused, reset, the certificate
        // problem) in their causes.
        f.write_str(&sdk_base::describe(self.source.as_ref()))
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}
