//! Active health checks' settings: [`HealthCheckConfig`].

use std::time::Duration;

use sdk_base::health::HealthChecks;

/// The client side's default interval: see [`HealthCheckConfig`].
const CLIENT_INTERVAL: Duration = Duration::from_secs(30);

use super::de;

/// Health-check settings of one service. Off by default; when on: every 30 s, 5 s timeout,
/// 3 failures to mark an instance unhealthy, 1 success to mark it healthy again. The
/// timeout and thresholds are the one checker's defaults
/// ([`sdk_base::health::HealthChecks`], the registry server's too); the interval is three
/// times longer, because every client probes every instance: a hundred clients at 30 s
/// cost an instance more probes than the registry's one checker at 10 s.
///
/// In a config file: `[services.NAME.health_check]` (or `[defaults.health_check]`).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HealthCheckConfig {
    /// Probe the instances in the background.
    #[serde(deserialize_with = "de::lenient")]
    pub enabled: bool,
    /// The path probed on each instance; any 2xx answer passes.
    pub path: String,
    /// Time between two probes of one instance.
    #[serde(deserialize_with = "de::duration")]
    pub interval: Duration,
    /// Time allowed for one probe.
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Failed probes in a row that mark an instance unhealthy.
    #[serde(deserialize_with = "de::lenient")]
    pub unhealthy_threshold: u32,
    /// Passing probes in a row that mark it healthy again.
    #[serde(deserialize_with = "de::lenient")]
    pub healthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        let checks = HealthChecks::default();
        HealthCheckConfig {
            enabled: false,
            path: "/health".into(),
            interval: CLIENT_INTERVAL,
            timeout: checks.timeout,
            unhealthy_threshold: checks.unhealthy_threshold,
            healthy_threshold: checks.healthy_threshold,
        }
    }
}

setters!(HealthCheckConfig {
    /// Probe the instances in the background (default false).
    enabled: bool,
    /// Time between two probes of one instance (default 30 s).
    interval: Duration,
    /// Time allowed for one probe (default 5 s).
    timeout: Duration,
    /// Failed probes in a row that mark an instance unhealthy (default 3).
    unhealthy_threshold: u32,
    /// Passing probes in a row that mark it healthy again (default 1).
    healthy_threshold: u32,
});

impl HealthCheckConfig {
    /// The defaults (off).
    pub fn new() -> Self {
        Self::default()
    }

    /// The schedule and thresholds, as the one checker takes them.
    pub(crate) fn checks(&self) -> HealthChecks {
        HealthChecks {
            interval: self.interval,
            timeout: self.timeout,
            unhealthy_threshold: self.unhealthy_threshold,
            healthy_threshold: self.healthy_threshold,
        }
    }

    /// Background checks on, probing `path` (any 2xx passes).
    pub fn enabled_at(path: impl Into<String>) -> Self {
        Self::default().enabled(true).path(path)
    }

    /// The path probed on each instance (default `/health`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Checks the settings (see [`Check`](crate::config)).
    pub(crate) fn check(&self) -> super::Check {
        let min = super::MIN_INTERVAL;
        if self.interval < min {
            return Err((
                "interval",
                format!("must be at least {min:?} (a shorter one is a busy loop)"),
            ));
        }
        if self.timeout.is_zero() {
            return Err(("timeout", "must be greater than zero".into()));
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return Err((
                "unhealthy_threshold",
                "thresholds must be at least 1".into(),
            ));
        }
        if !self.path.starts_with('/') || crate::path::check_path(&self.path).is_err() {
            return Err((
                "path",
                format!("`{}` is not a path starting with `/`", self.path),
            ));
        }
        Ok(())
    }
}
