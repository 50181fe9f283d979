#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! What every server binary of the platform needs, and only that: [`serve`] (the accept
//! loop for HTTP and HTTPS with a connection limit, header, idle and handshake timeouts, and
//! a graceful shutdown), its [`Limits`], [`tls::load`] (rustls settings from PEM files),
//! [`ApiError`] and [`json_errors`] (every error answer JSON), [`shutdown_signal`] and
//! [`metrics_recorder`] (the one Prometheus install, with the platform's latency buckets),
//! [`init_logging`] (events to stderr, filtered by `RUST_LOG`), `parse_args` (a binary's
//! flags, from `--config` too; feature `clap`), [`group_commit`] (the one writer that
//! group-commits a durable store's writes) and [`sqlite`] (the pragmas every durable SQLite
//! store opens with).
//!
//! The registry server, the event bus and the gateway run on it; none of them links what
//! another's storage needs (the gateway links no SQLite).

mod api_error;
mod drain;
pub mod group_commit;
mod process;
mod serve;
pub mod sqlite;
pub mod tls;

pub use self::{
    api_error::{json_errors, ApiError},
    process::{metrics_recorder, shutdown_signal},
    serve::{serve, App, Limits, WithPeer},
};

#[cfg(feature = "clap")]
mod args;
#[cfg(feature = "clap")]
pub use self::args::ServeArgs;
#[cfg(feature = "clap")]
mod config_file;
#[cfg(feature = "clap")]
pub use self::config_file::{parse_args, try_parse_args};

mod log;
pub use self::log::init_logging;
