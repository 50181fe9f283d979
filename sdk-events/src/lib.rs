#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! The event bus (`sdk-events`): applications publish domain events (`user.created`,
//! `order.placed`) whose payloads are checked against their action's JSON Schema; other
//! applications subscribe webhook handlers, which receive each event signed per the
//! Standard Webhooks spec, with retries on a schedule, dead letters and replay.
//!
//! - [`EventBus`]: publishing from a service, typed with serde, through the SDK's pipeline.
//! - `VerifiedEvent<T>` (feature `axum`): an axum extractor that checks a delivery's
//!   signature and decodes its payload.
//! - [`signature`]: signing and verifying deliveries (both ends).
//! - [`store`], [`dispatcher`], [`server`] (feature `server`): the bus itself, on SQLite or
//!   PostgreSQL; the `sdk-events` binary runs them.
//!
//! Nothing acknowledged is lost: an event and its deliveries are written in one
//! transaction (the outbox) before the publish is answered, and a delivery stays pending
//! until its handler answered 2xx, whatever happens to the dispatcher in between.

mod client;
#[cfg(feature = "axum")]
mod receive;
pub mod signature;

pub use client::{EventBus, PublishBuilder, Published};
#[cfg(feature = "axum")]
pub use receive::{Rejected, VerifiedEvent, WebhookSecrets};

#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod dispatcher;
#[cfg(feature = "server")]
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
