//! [`MessagingError`]: what can go wrong setting messaging up, named by every transport's
//! `connect` and by the config; a leaf the rest of the crate builds on.

use sdk::BoxError;

use crate::pattern::PatternError;

/// What can go wrong setting messaging up (a message's own failures are
/// [`sdk::ServiceError`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// The configuration is wrong.
    #[error("messaging configuration: {0}")]
    Config(String),
    /// The config file is wrong (names the file and key).
    #[error(transparent)]
    File(#[from] sdk::ConfigError),
    /// A handler's pattern is not one.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// The broker refused a connection or a subscription.
    #[error("the broker: {}", sdk::registry::describe(.0.as_ref()))]
    Broker(BoxError),
    /// The transport is not built in.
    #[error("the `{0}` transport is not built in; enable sdk-messaging's `{0}` feature")]
    NotBuiltIn(&'static str),
}
