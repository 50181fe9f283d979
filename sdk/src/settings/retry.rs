//! Retry settings, and how a config file writes them.

use std::{sync::Arc, time::Duration};

use http::StatusCode;

use super::de;
use crate::outcome::StatusClass;
use sdk_base::backoff::{Backoff, ExponentialBackoff, Jitter};

/// Retry settings of one service.
///
/// In a config file: `[services.NAME.retry]` (or `[defaults.retry]`), the exponential
/// backoff written flat (`initial_backoff`, `max_backoff`, `multiplier`, `jitter`) and so is
/// the budget (`budget_ratio`, `budget_min_per_second`, `budget_window`).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(from = "RetryFile")]
#[non_exhaustive]
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
            retry_statuses: StatusClass::RETRY_NOW.to_vec(),
            max_retry_after: Duration::from_secs(30),
            budget: BudgetConfig::default(),
        }
    }
}

/// A retry budget: retries may add `ratio` of the calls made over `window`, plus
/// `min_per_second`. Default: 20 % plus 10 per second over 10 s (Finagle, Linkerd).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
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
    pub(crate) fn check(&self) -> super::Check {
        if self.max_attempts == 0 {
            return Err((
                "max_attempts",
                "must be at least 1 (0 would never call the service)".into(),
            ));
        }
        self.backoff.check()?;
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

/// The retry section as a file writes it: backoff and budget flat.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RetryFile {
    #[serde(deserialize_with = "de::lenient")]
    max_attempts: u32,
    #[serde(deserialize_with = "de::duration")]
    initial_backoff: Duration,
    #[serde(deserialize_with = "de::duration")]
    max_backoff: Duration,
    #[serde(deserialize_with = "de::lenient")]
    multiplier: f64,
    jitter: Jitter,
    #[serde(deserialize_with = "de::lenient")]
    retry_non_idempotent: bool,
    #[serde(deserialize_with = "de::statuses")]
    retry_statuses: Vec<StatusCode>,
    #[serde(deserialize_with = "de::duration")]
    max_retry_after: Duration,
    #[serde(deserialize_with = "de::lenient")]
    budget_ratio: f32,
    #[serde(deserialize_with = "de::lenient")]
    budget_min_per_second: u32,
    #[serde(deserialize_with = "de::duration")]
    budget_window: Duration,
}

impl Default for RetryFile {
    fn default() -> Self {
        let config = RetryConfig::default();
        let backoff = ExponentialBackoff::default();
        RetryFile {
            max_attempts: config.max_attempts,
            initial_backoff: backoff.initial,
            max_backoff: backoff.max,
            multiplier: backoff.multiplier,
            jitter: backoff.jitter,
            retry_non_idempotent: config.retry_non_idempotent,
            retry_statuses: config.retry_statuses,
            max_retry_after: config.max_retry_after,
            budget_ratio: config.budget.ratio,
            budget_min_per_second: config.budget.min_per_second,
            budget_window: config.budget.window,
        }
    }
}

impl From<RetryFile> for RetryConfig {
    fn from(file: RetryFile) -> Self {
        RetryConfig {
            max_attempts: file.max_attempts,
            backoff: Arc::new(
                ExponentialBackoff::new(file.initial_backoff, file.max_backoff)
                    .multiplier(file.multiplier)
                    .jitter(file.jitter),
            ),
            retry_non_idempotent: file.retry_non_idempotent,
            retry_statuses: file.retry_statuses,
            max_retry_after: file.max_retry_after,
            budget: BudgetConfig {
                ratio: file.budget_ratio,
                min_per_second: file.budget_min_per_second,
                window: file.budget_window,
            },
        }
    }
}

impl RetryConfig {
    /// The defaults: 3 attempts, 100 ms doubling to 1 s with full jitter, 502/503/504.
    pub fn new() -> Self {
        Self::default()
    }

    /// No retries: one attempt.
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// The wait between attempts (default: [`ExponentialBackoff::default`]).
    #[must_use]
    pub fn backoff(mut self, backoff: impl Backoff) -> Self {
        self.backoff = Arc::new(backoff);
        self
    }

    /// The statuses worth retrying (default 502, 503, 504).
    #[must_use]
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.retry_statuses = statuses.into_iter().collect();
        self
    }
}

setters!(RetryConfig {
    /// Attempts in all, the first included (default 3; 1 disables retries).
    max_attempts: u32,
    /// Retry POST and PATCH too (default false).
    retry_non_idempotent: bool,
    /// The longest `Retry-After` honoured (default 30 s).
    max_retry_after: Duration,
    /// The budget that caps retries under an outage.
    budget: BudgetConfig,
});

impl BudgetConfig {
    /// The defaults: 20 % plus 10 per second over 10 s.
    pub fn new() -> Self {
        Self::default()
    }
}

setters!(const BudgetConfig {
    /// Fraction of calls that may be retried (default 0.2).
    ratio: f32,
    /// Retries allowed per second regardless of traffic (default 10).
    min_per_second: u32,
    /// How long a call's deposit counts, 1 to 60 s (default 10 s).
    window: Duration,
});
