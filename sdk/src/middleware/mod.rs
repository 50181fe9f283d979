//! User middleware: any tower `Layer` over the HTTP request of each attempt, and
//! [`from_fn`] for the common case of an async closure.
//!
//! Middleware runs per attempt, below the load balancer, so it sees the absolute URI of the
//! chosen instance, and a header it adds is on every retry.

mod error;
mod from_fn;
mod stack;

pub use self::{
    error::MiddlewareError,
    from_fn::{from_fn, FromFn, FromFnLayer, Next},
    stack::HttpStack,
};
pub(crate) use stack::LayerFn;
