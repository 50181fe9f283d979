//! Every pipeline stage's settings as plain data, below the stages that act on them: the
//! types a config file, a per-call option and a generated client all name, with the check
//! each runs on itself. Nothing here calls a service; the stages (`retry`,
//! `circuit_breaker`, `hedge`, `balance`, `cache`, `health`, `fallback`) re-export their
//! types from here, and [`config`](crate::config) assembles them into a service's settings.

mod balance;
mod breaker;
mod cache;
pub(crate) mod de;
mod fallback;
mod health;
mod hedge;
mod policy;
mod retry;
mod retry_override;
pub use sdk_base::units;

use std::time::Duration;

pub use self::{
    balance::{LoadBalancerConfig, Strategy},
    breaker::{BreakerConfig, FailureRate},
    cache::CacheConfig,
    fallback::FallbackOn,
    health::HealthCheckConfig,
    hedge::{HedgeAfter, HedgeConfig},
    policy::Policy,
    retry::{BudgetConfig, RetryConfig},
    retry_override::RetryOverride,
};

/// A setting's check, next to the type it protects: `Err((key, what is wrong))`, the key
/// relative to the type's section (`[services.orders.retry]`).
pub(crate) type Check = Result<(), (&'static str, String)>;

/// The shortest period of anything that repeats (health checks, heartbeats): shorter ones
/// are a busy loop, not a schedule.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
