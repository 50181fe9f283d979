//! Health-probe streaks: the one rule for when consecutive probe results change an
//! instance's health, used by the registry server's probes and the SDK's own checks.

/// Consecutive passes or failures of one instance's probes.
///
/// ```
/// use sdk_registry::HealthStreak;
///
/// let mut streak = HealthStreak::default();
/// assert_eq!(streak.record(false, 2, 3), None);
/// assert_eq!(streak.record(false, 2, 3), None);
/// assert_eq!(streak.record(false, 2, 3), Some(false), "three failures: unhealthy");
/// assert_eq!(streak.record(true, 2, 3), None);
/// assert_eq!(streak.record(true, 2, 3), Some(true), "two passes: healthy");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthStreak {
    passes: u32,
    failures: u32,
}

impl HealthStreak {
    /// Counts one probe; returns the health the thresholds now call for: `Some(true)` once
    /// `healthy_threshold` probes in a row passed, `Some(false)` once `unhealthy_threshold`
    /// in a row failed (a threshold of 0 counts as 1), `None` while the run is shorter.
    pub fn record(
        &mut self,
        passed: bool,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<bool> {
        if passed {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            (self.passes >= healthy_threshold.max(1)).then_some(true)
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures >= unhealthy_threshold.max(1)).then_some(false)
        }
    }
}
