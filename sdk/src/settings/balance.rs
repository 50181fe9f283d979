//! Load-balancing settings.

use std::time::Duration;

use super::de;

/// How an instance is chosen for each attempt.
///
/// In a config file: `strategy = "p2c"` (also `"peak_ewma"`) or `"round_robin"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum Strategy {
    /// Power of two choices over peak-EWMA latency × (requests in flight + 1): two random
    /// instances are compared and the cheaper one gets the attempt (Finagle, linkerd).
    #[default]
    #[serde(rename = "p2c", alias = "peak_ewma")]
    PowerOfTwoChoices,
    /// Each instance in turn.
    #[serde(rename = "round_robin")]
    RoundRobin,
}

/// Load balancing and passive ejection for one service.
///
/// An instance that fails `ejection_failures` times in a row (transport errors, timeouts,
/// 5xx) is taken out of rotation for `ejection_duration`, then tried again. When every
/// instance is ejected the balancer fails open: it keeps choosing among all of them rather
/// than refusing every call.
///
/// In a config file: `[services.NAME.load_balancer]` (or `[defaults.load_balancer]`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LoadBalancerConfig {
    /// The strategy (default: power of two choices over peak-EWMA).
    pub strategy: Strategy,
    /// The latency a new instance starts from, so it is tried at once (default 10 ms).
    #[serde(deserialize_with = "de::duration")]
    pub default_rtt: Duration,
    /// The latency charged for a 5xx or 429 answer, however fast (default 1 s): otherwise a
    /// failing instance looks fast and attracts traffic.
    #[serde(deserialize_with = "de::duration")]
    pub failure_penalty: Duration,
    /// How fast the latency estimate forgets a slow answer (default 10 s).
    #[serde(deserialize_with = "de::duration")]
    pub decay: Duration,
    /// Consecutive failures that eject an instance (default 5).
    #[serde(deserialize_with = "de::lenient")]
    pub ejection_failures: u32,
    /// How long an ejected instance stays out (default 30 s).
    #[serde(deserialize_with = "de::duration")]
    pub ejection_duration: Duration,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        LoadBalancerConfig {
            strategy: Strategy::PowerOfTwoChoices,
            default_rtt: Duration::from_millis(10),
            failure_penalty: Duration::from_secs(1),
            decay: Duration::from_secs(10),
            ejection_failures: 5,
            ejection_duration: Duration::from_secs(30),
        }
    }
}

setters!(const LoadBalancerConfig {
    /// The strategy (default: power of two choices over peak-EWMA).
    strategy: Strategy,
    /// The latency a new instance starts from (default 10 ms).
    default_rtt: Duration,
    /// The latency charged for a 5xx or 429 answer (default 1 s).
    failure_penalty: Duration,
    /// How fast the latency estimate forgets a slow answer (default 10 s).
    decay: Duration,
    /// Consecutive failures that eject an instance (default 5).
    ejection_failures: u32,
    /// How long an ejected instance stays out (default 30 s).
    ejection_duration: Duration,
});

impl LoadBalancerConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the settings (see [`Check`](crate::config)).
    pub(crate) fn check(&self) -> super::Check {
        if self.ejection_failures == 0 {
            return Err(("ejection_failures", "must be at least 1".into()));
        }
        if self.decay.is_zero() {
            return Err(("decay", "must be greater than zero".into()));
        }
        Ok(())
    }
}
