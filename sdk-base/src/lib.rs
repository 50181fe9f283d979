#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! The base every crate of the platform stands on, and nothing else: the one backoff
//! schedule ([`backoff`], full jitter), Unix time ([`clock`]), durations and sizes as people write them ([`units`]: `"250ms"`,
//! `"64KiB"`), error cause chains ([`causes()`], [`describe`]),
//! URL redaction ([`redact_url`]), locks that survive a poisoning panic ([`sync`]) and the
//! latency buckets every Prometheus histogram uses ([`LATENCY_BUCKETS`]), and the one rule
//! for an answer that settles a delivery ([`accepted`]).
//!
//! Without features it does no I/O and depends on `fastrand`, `humantime` and `serde` only,
//! so the SDK, the registry, the servers and the brokers' transports can all use it without
//! linking one another. Feature `https` adds the one HTTPS connector ([`https`]: hyper-util
//! and rustls, with the address policy), feature `health` the one active health checker
//! ([`health`]: schedule, thresholds, streaks), feature `prometheus` the one Prometheus
//! install.

pub mod backoff;
pub mod causes;
pub mod clock;
#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "https")]
pub mod https;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod redact;
#[doc(hidden)]
pub mod sync;
pub mod units;

pub use self::{
    causes::{causes, describe},
    redact::{has_userinfo, redact_url},
};

/// Whether an answer confirms that its receiver took what was sent: a 2xx. The one rule for
/// every answer that settles a delivery rather than serves a call: an active health probe
/// (the SDK's and the registry server's), a webhook delivery (the event bus), a message
/// bridged to HTTP (a service queue). A redirect is not taken: nobody follows it. (A call's
/// answer is judged by the SDK's class, `sdk::outcome::StatusClass`, which also says whose
/// fault a failure is.)
///
/// ```
/// assert!(sdk_base::accepted(204));
/// assert!(!sdk_base::accepted(301));
/// assert!(!sdk_base::accepted(503));
/// ```
pub fn accepted(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Latency histogram buckets in seconds (1 ms to 30 s), for the SDK's and the servers'
/// Prometheus exposition: explicit buckets, so histograms aggregate across instances
/// (summaries do not).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
