//! What every crate's integration tests share, in one place: the binary spawner
//! ([`Running`]), the one scripted upstream ([`Scripted`]), bounded polls, temp dirs, TLS
//! for tests, the Prometheus text parser, the documentation's `curl` lines, and the one rule
//! for a test whose server is missing ([`skip()`]). Dev-only: no
//! library crate depends on it but through `[dev-dependencies]`.
//!
//! The helpers panic on what a test cannot go on without (a port that does not bind, a
//! binary that does not start): a panic is a test's failure, with the reason in its message.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod broker;
pub mod poll;
pub mod process;
pub mod prometheus;
pub mod readme_curl;
pub mod scripted;
pub mod skip;
pub mod temp;
pub mod tls;

pub use poll::{poll, until};
pub use process::{run_to_exit, Running};
pub use scripted::{refused_url, serve, Reply, Scripted, Seen};
pub use skip::{reachable, required, skip};
pub use temp::TempDir;
