//! User middleware: any tower `Layer` over the HTTP request of each attempt (tower-http's
//! `TraceLayer`, `DecompressionLayer`, `SetRequestIdLayer`...), and [`from_fn`] for the
//! common case of an async closure.
//!
//! Layers wrap a [`Stack`]: `http::Request<`[`Body`]`>` in, `http::Response<`[`Body`]`>`
//! out, the response body still streaming, so a layer may return any `http_body::Body`. The SDK reads the
//! body whole above the last layer, within `max_response_bytes`. A layer must be `Clone`
//! (the pipeline clones its stack per call); wrap one that is not, such as tower's
//! `RateLimit`, in tower's `BufferLayer`.
//!
//! [`Body`]: crate::transport::Body
//!
//! Middleware runs per attempt, below the load balancer, so it sees the absolute URI of the
//! chosen instance, and a header it adds is on every retry.

mod error;
mod from_fn;
mod stack;

pub use self::{
    error::MiddlewareError,
    from_fn::{from_fn, FromFn, FromFnLayer, Next},
    stack::{HttpStack, Stack, Whole, WholeTransport},
};
pub(crate) use stack::LayerFn;
