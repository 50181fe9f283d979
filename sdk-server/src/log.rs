//! [`init_logging`]: how every server binary logs, in one place.

use tracing_subscriber::{
    filter::{filter_fn, EnvFilter, FilterExt as _},
    layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
    Layer as _,
};

/// Logs events to stderr, filtered by `RUST_LOG` (tracing's `EnvFilter` syntax, e.g.
/// `RUST_LOG=warn` or `RUST_LOG=info,sdk_registry=debug`; `info` when unset or invalid).
///
/// Events only: the SDK's per-call spans (which an OpenTelemetry layer turns into traces)
/// are not recorded by a plain log, so they are turned off here rather than built and
/// dropped on every request. Does nothing when a subscriber is already set.
pub fn init_logging() {
    let level = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let events_only = filter_fn(|meta| meta.is_event());
    let log = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_filter(level.and(events_only));
    let _ = tracing_subscriber::registry().with(log).try_init();
}
