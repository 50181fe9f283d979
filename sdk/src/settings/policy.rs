//! [`Policy`]: a per-call setting, static (what generated clients pass) or shared.

use super::{BreakerConfig, HedgeConfig, RetryOverride};

/// A per-call policy ([`RetryOverride`], [`BreakerConfig`]): a `&'static` one (what
/// generated clients pass: nothing is allocated) or a shared one (built at run time).
///
/// ```
/// use sdk::{circuit_breaker::BreakerConfig, Policy};
///
/// static STRICT: BreakerConfig = BreakerConfig::DEFAULT.failure_threshold(2);
/// let fixed: Policy<BreakerConfig> = (&STRICT).into();
/// let built: Policy<BreakerConfig> = BreakerConfig::new().failure_threshold(3).into();
/// assert_eq!((fixed.failure_threshold, built.failure_threshold), (2, 3));
/// ```
#[derive(Debug)]
pub enum Policy<T: 'static> {
    /// A policy that lives for the whole program.
    Static(&'static T),
    /// A policy built at run time.
    Shared(std::sync::Arc<T>),
}

impl<T> Clone for Policy<T> {
    fn clone(&self) -> Self {
        match self {
            Policy::Static(p) => Policy::Static(p),
            Policy::Shared(p) => Policy::Shared(p.clone()),
        }
    }
}

impl<T> std::ops::Deref for Policy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Policy::Static(p) => p,
            Policy::Shared(p) => p,
        }
    }
}

impl<T> From<&'static T> for Policy<T> {
    fn from(policy: &'static T) -> Self {
        Policy::Static(policy)
    }
}

impl<T> From<std::sync::Arc<T>> for Policy<T> {
    fn from(policy: std::sync::Arc<T>) -> Self {
        Policy::Shared(policy)
    }
}

impl From<RetryOverride> for Policy<RetryOverride> {
    fn from(policy: RetryOverride) -> Self {
        Policy::Shared(std::sync::Arc::new(policy))
    }
}

impl From<HedgeConfig> for Policy<HedgeConfig> {
    fn from(policy: HedgeConfig) -> Self {
        Policy::Shared(std::sync::Arc::new(policy))
    }
}

impl From<BreakerConfig> for Policy<BreakerConfig> {
    fn from(policy: BreakerConfig) -> Self {
        Policy::Shared(std::sync::Arc::new(policy))
    }
}
