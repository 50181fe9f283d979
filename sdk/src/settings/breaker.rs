//! A breaker's settings, and how a config file writes them.

use std::time::Duration;

use super::de;

/// Settings of one breaker. Defaults: open after 5 failures, stay open 60 s, one probe at a
/// time while half-open, close after 2 successes, no failure-rate window.
///
/// In a config file: `[services.NAME.circuit_breaker]` (or `[defaults.circuit_breaker]`),
/// the failure-rate rule written flat as `failure_rate_threshold` (which turns it on),
/// `failure_rate_window` (default 20) and `failure_rate_min_calls` (default 10).
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(try_from = "BreakerFile")]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Whether the breaker is on (default true); off, every call goes through and nothing
    /// is counted.
    pub enabled: bool,
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// Successful probes that close a half-open breaker.
    pub success_threshold: u32,
    /// How long the breaker stays open before admitting probes.
    pub open_duration: Duration,
    /// Probes admitted at once while half-open.
    pub half_open_max_probes: u32,
    /// Optionally, also open when the failure rate over a window of calls is too high.
    pub failure_rate: Option<FailureRate>,
}

impl BreakerConfig {
    /// The defaults, usable in `const` and `static` items.
    pub const DEFAULT: BreakerConfig = BreakerConfig {
        enabled: true,
        failure_threshold: 5,
        success_threshold: 2,
        open_duration: Duration::from_secs(60),
        half_open_max_probes: 1,
        failure_rate: None,
    };
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A failure-rate rule over the last `window` calls.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct FailureRate {
    /// How many recent calls the rate is computed over.
    pub window: u32,
    /// The failure ratio (0.0 to 1.0) at which the breaker opens.
    pub threshold: f64,
    /// Calls needed in the window before the rate is judged.
    pub min_calls: u32,
}

impl BreakerConfig {
    /// Checks the settings (see [`Check`](crate::config)).
    pub(crate) fn check(&self) -> super::Check {
        if self.failure_threshold == 0 {
            return Err(("failure_threshold", "must be at least 1".into()));
        }
        if self.success_threshold == 0 {
            return Err(("success_threshold", "must be at least 1".into()));
        }
        if self.half_open_max_probes == 0 || self.half_open_max_probes > 0xffff {
            return Err(("half_open_max_probes", "must be between 1 and 65535".into()));
        }
        if self.open_duration.is_zero() {
            return Err(("open_duration", "must be greater than zero".into()));
        }
        if let Some(rate) = &self.failure_rate {
            if !(rate.threshold > 0.0 && rate.threshold <= 1.0) {
                return Err((
                    "failure_rate_threshold",
                    format!("{} must be in (0, 1]", rate.threshold),
                ));
            }
            if rate.window == 0 {
                return Err(("failure_rate_window", "must be at least 1".into()));
            }
        }
        Ok(())
    }
}

impl BreakerConfig {
    /// The defaults (see [`DEFAULT`](Self::DEFAULT)).
    pub const fn new() -> Self {
        Self::DEFAULT
    }

    /// Also opens when the failure rate over a window of calls reaches `rule`'s threshold.
    #[must_use]
    pub const fn failure_rate(mut self, rule: FailureRate) -> Self {
        self.failure_rate = Some(rule);
        self
    }
}

setters!(const BreakerConfig {
    /// Whether the breaker is on (default true).
    enabled: bool,
    /// Consecutive failures that open the breaker (default 5).
    failure_threshold: u32,
    /// Successful probes that close a half-open breaker (default 2).
    success_threshold: u32,
    /// How long the breaker stays open before admitting probes (default 60 s).
    open_duration: Duration,
    /// Probes admitted at once while half-open (default 1).
    half_open_max_probes: u32,
});

setters!(const FailureRate {
    /// How many recent calls the rate is computed over (default 20).
    window: u32,
    /// Calls needed in the window before the rate is judged (default 10).
    min_calls: u32,
});

impl FailureRate {
    /// A rule opening at `threshold` (0.0 to 1.0) over the last 20 calls, judged from 10.
    pub const fn new(threshold: f64) -> Self {
        FailureRate {
            window: 20,
            threshold,
            min_calls: 10,
        }
    }
}

/// The breaker's section as a file writes it: the failure-rate rule is flat.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BreakerFile {
    #[serde(deserialize_with = "de::lenient")]
    enabled: bool,
    #[serde(deserialize_with = "de::lenient")]
    failure_threshold: u32,
    #[serde(deserialize_with = "de::lenient")]
    success_threshold: u32,
    #[serde(deserialize_with = "de::duration")]
    open_duration: Duration,
    #[serde(deserialize_with = "de::lenient")]
    half_open_max_probes: u32,
    #[serde(deserialize_with = "some_lenient")]
    failure_rate_threshold: Option<f64>,
    #[serde(deserialize_with = "some_lenient")]
    failure_rate_window: Option<u32>,
    #[serde(deserialize_with = "some_lenient")]
    failure_rate_min_calls: Option<u32>,
}

fn some_lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    de::lenient(deserializer).map(Some)
}

impl Default for BreakerFile {
    fn default() -> Self {
        let d = BreakerConfig::DEFAULT;
        BreakerFile {
            enabled: d.enabled,
            failure_threshold: d.failure_threshold,
            success_threshold: d.success_threshold,
            open_duration: d.open_duration,
            half_open_max_probes: d.half_open_max_probes,
            failure_rate_threshold: None,
            failure_rate_window: None,
            failure_rate_min_calls: None,
        }
    }
}

impl TryFrom<BreakerFile> for BreakerConfig {
    type Error = &'static str;

    fn try_from(file: BreakerFile) -> Result<Self, Self::Error> {
        let failure_rate = match file.failure_rate_threshold {
            Some(threshold) => {
                let default = FailureRate::new(threshold);
                Some(FailureRate {
                    window: file.failure_rate_window.unwrap_or(default.window),
                    threshold,
                    min_calls: file.failure_rate_min_calls.unwrap_or(default.min_calls),
                })
            }
            None if file.failure_rate_window.is_some() || file.failure_rate_min_calls.is_some() => {
                return Err("set failure_rate_threshold to use a failure-rate window")
            }
            None => None,
        };
        Ok(BreakerConfig {
            enabled: file.enabled,
            failure_threshold: file.failure_threshold,
            success_threshold: file.success_threshold,
            open_duration: file.open_duration,
            half_open_max_probes: file.half_open_max_probes,
            failure_rate,
        })
    }
}
