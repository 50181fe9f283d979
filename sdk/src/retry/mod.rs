//! Retries with exponential backoff, full jitter, `Retry-After` and a retry budget.
//!
//! [`RetryPolicy`] decides; the client's call drives the loop as tower's `Retry` would (and
//! [`RetryLayer`] is tower's `Retry` with this policy, for stacks of one's own). After each
//! attempt the policy:
//!
//! 1. classifies the outcome: connect errors are always retried (nothing was sent); timeouts,
//!    other transport errors and 502/503/504 only for idempotent requests (GET, HEAD, PUT,
//!    DELETE, or a request that says so); 429 only with `Retry-After`; never an open breaker
//!    or another 4xx;
//! 2. stops after `max_attempts`;
//! 3. waits `Retry-After` when the server sent one, else the [`Backoff`] delay;
//! 4. stops if that wait would pass the call's deadline;
//! 5. takes a token from the service's [`RetryBudget`] (tower's `Budget` trait with
//!    `TpsBudget`'s accounting, Finagle's design, kept lock-free): every call deposits, each
//!    retry withdraws, so retries add at most `ratio` of the call rate plus `min_per_second`.
//!    When the service is down, the budget runs dry and an outage is not multiplied by the
//!    attempt count.
//!
//! When it gives up, an error becomes [`RetriesExhausted`] carrying the attempt count and
//! the reason; a response keeps its status and records the attempt count.

mod backoff;
mod budget;
mod classify;
mod policy;

pub(crate) use self::policy::retried;
pub use crate::{
    error::{RetriesExhausted, RetryStop},
    settings::{BudgetConfig, RetryConfig, RetryOverride},
};

pub use self::{
    backoff::{Backoff, ExponentialBackoff, Jitter, ScheduledBackoff},
    budget::RetryBudget,
    classify::retry_after,
    policy::RetryPolicy,
};

/// `tower::retry::Retry` with the SDK's policy.
pub type Retry<S> = tower::retry::Retry<RetryPolicy, S>;

/// `tower::retry::RetryLayer` with the SDK's policy.
pub type RetryLayer = tower::retry::RetryLayer<RetryPolicy>;

/// Builds the retry layer for one service.
pub fn layer(config: &RetryConfig) -> RetryLayer {
    tower::retry::RetryLayer::new(RetryPolicy::new(config))
}
