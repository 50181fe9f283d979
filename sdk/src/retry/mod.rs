//! Retries with exponential backoff, full jitter, `Retry-After` and a retry budget.
//!
//! This is `tower::retry::Retry` with [`RetryPolicy`]: tower drives the loop; the policy
//! decides. After each attempt it:
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
mod error;
mod overrides;
mod policy;

use std::{sync::Arc, time::Duration};

use http::StatusCode;

pub use self::{
    backoff::{Backoff, ExponentialBackoff, Jitter},
    budget::RetryBudget,
    error::{RetriesExhausted, RetryStop},
    overrides::RetryOverride,
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

/// Retry settings of one service.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    /// Attempts in all, the first included (default 3; 1 disables retries).
    pub max_attempts: u32,
    /// The wait between attempts (default: 100 ms doubling to 1 s, full jitter).
    pub backoff: Arc<dyn Backoff>,
    /// Retry POST and PATCH too (default false: a retried payment is money charged twice).
    pub retry_non_idempotent: bool,
    /// Statuses worth retrying (default 502, 503, 504; 429 is retried when it has
    /// `Retry-After`).
    pub retry_statuses: Vec<StatusCode>,
    /// The longest `Retry-After` honoured; a longer one ends the call (default 30 s).
    pub max_retry_after: Duration,
    /// The budget that caps retries under an outage.
    pub budget: BudgetConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            backoff: Arc::new(ExponentialBackoff::default()),
            retry_non_idempotent: false,
            retry_statuses: vec![
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
            max_retry_after: Duration::from_secs(30),
            budget: BudgetConfig::default(),
        }
    }
}

/// A retry budget: retries may add `ratio` of the calls made over `window`, plus
/// `min_per_second`. Default: 20 % plus 10 per second over 10 s (Finagle, Linkerd).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Fraction of calls that may be retried (0.2 = 20 %).
    pub ratio: f32,
    /// Retries allowed per second regardless of traffic.
    pub min_per_second: u32,
    /// How long a call's deposit counts (1 to 60 s).
    pub window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// Checks the settings (see [`Check`](crate::config)).
    pub(crate) fn check(&self) -> crate::config::Check {
        if self.max_attempts == 0 {
            return Err((
                "max_attempts",
                "must be at least 1 (0 would never call the service)".into(),
            ));
        }
        let budget = &self.budget;
        if budget.window < Duration::from_secs(1) || budget.window > Duration::from_secs(60) {
            return Err((
                "budget_window",
                format!("{:?} must be between 1s and 60s", budget.window),
            ));
        }
        if !(0.0..=1000.0).contains(&budget.ratio) {
            return Err((
                "budget_ratio",
                format!("{} must be between 0 and 1000", budget.ratio),
            ));
        }
        Ok(())
    }
}
