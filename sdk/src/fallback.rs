//! Fallbacks: what a call answers instead when the service fails.
//!
//! A fallback takes over a failed call's error and answers in its place: a default, a
//! cached copy, another service or another version of the same one. It is used only for the
//! failures it is given ([`FallbackOn`]): by default an open breaker, a timeout, a 5xx answer,
//! or the service being unreachable (no connection, a broken one, or no instance to call).
//! Never for a 4xx answer, an invalid request or an answer that does not decode: those are
//! the caller's mistakes, and a fallback would hide them.
//!
//! Generated clients take `#[fallback(path::to::function)]` on a method (the function gets
//! the method's arguments and the error); ad-hoc calls take
//! [`RequestBuilder::fallback`](crate::RequestBuilder::fallback):
//!
//! ```no_run
//! use sdk::{fallback::FallbackOn, prelude::*};
//! # #[derive(Debug, serde::Deserialize)] struct Price { cents: u64 }
//!
//! # async fn run(sdk: ServiceSdk) -> ServiceResult<()> {
//! let prices = sdk.get_client("price-service");
//! let price: Price = prices
//!     .get("/prices/42")
//!     .fallback(|error| async move {
//!         eprintln!("using the list price: {error}");
//!         Ok(Price { cents: 999 })
//!     })
//!     .on(FallbackOn::CIRCUIT_OPEN.or(FallbackOn::TIMEOUT))
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! A fallback's use is visible: the call's `on_call` outcome and its `sdk_calls_total`
//! outcome are `fallback`, `sdk_fallbacks_total` counts it by cause, and an INFO event
//! `falling back` (service, endpoint, cause, error) is emitted in the call's span.

use std::{fmt, future::Future};

use serde::de::DeserializeOwned;

pub use crate::settings::FallbackOn;
use crate::{RequestBuilder, ServiceError, ServiceResult};

// The entry point lives here, with what it returns, so the client never names the
// fallback module (which sits above it).
impl RequestBuilder {
    /// Answers with `fallback` instead when the call fails with an open breaker, a timeout,
    /// a 5xx answer or an unreachable service ([`FallbackOn::DEFAULT`]; choose with
    /// [`WithFallback::on`](crate::fallback::WithFallback::on)); never on a 4xx. The
    /// fallback gets the error. See [`fallback`](mod@crate::fallback).
    ///
    /// [`FallbackOn::DEFAULT`]: crate::fallback::FallbackOn::DEFAULT
    pub fn fallback<F, Fut, T>(self, fallback: F) -> WithFallback<F>
    where
        F: FnOnce(ServiceError) -> Fut,
        Fut: std::future::Future<Output = ServiceResult<T>>,
    {
        WithFallback::new(self, fallback)
    }
}

/// A request with a fallback; [`send`](Self::send) it. Made by
/// [`RequestBuilder::fallback`](crate::RequestBuilder::fallback).
#[must_use = "a request does nothing until it is sent"]
pub struct WithFallback<F> {
    request: RequestBuilder,
    fallback: F,
    on: FallbackOn,
}

impl<F> WithFallback<F> {
    pub(crate) fn new(request: RequestBuilder, fallback: F) -> Self {
        WithFallback {
            request,
            fallback,
            on: FallbackOn::DEFAULT,
        }
    }

    /// The failures the fallback takes over (default [`FallbackOn::DEFAULT`]).
    pub fn on(mut self, on: FallbackOn) -> Self {
        self.on = on;
        self
    }

    /// Sends the request as [`RequestBuilder::send`] does; when it fails in a way the
    /// fallback takes over, returns what the fallback answers instead.
    pub async fn send<T, Fut>(self) -> ServiceResult<T>
    where
        T: DeserializeOwned,
        F: FnOnce(ServiceError) -> Fut,
        Fut: Future<Output = ServiceResult<T>>,
    {
        let on = self.on;
        match self.request.fallback_on(on).send::<T>().await {
            Err(error) if on.matches(&error) => (self.fallback)(error).await,
            result => result,
        }
    }
}

impl<F> fmt::Debug for WithFallback<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithFallback")
            .field("request", &self.request)
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}
