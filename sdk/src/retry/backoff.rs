//! How long to wait before a retry: the registry crate's one backoff schedule, shared with
//! the registry followers' reconnect loops.

pub use sdk_base::backoff::{Backoff, ExponentialBackoff, Jitter, ScheduledBackoff};
