//! How long to wait before trying again: one schedule for the SDK's retries and for every
//! reconnect loop (registry followers, etcd watches), so none of them waits in lockstep with
//! its peers after an outage. The SDK re-exports it as `sdk::retry::{Backoff,
//! ExponentialBackoff, Jitter}`.

use std::time::Duration;

/// A backoff schedule: the delay before retry number `retry` (1 for the first retry).
///
/// ```
/// use std::time::Duration;
/// use sdk_base::backoff::Backoff;
///
/// /// The same pause every time.
/// #[derive(Debug)]
/// struct Constant(Duration);
///
/// impl Backoff for Constant {
///     fn delay(&self, _retry: u32) -> Duration {
///         self.0
///     }
/// }
/// ```
pub trait Backoff: std::fmt::Debug + Send + Sync + 'static {
    /// The delay before retry number `retry` (starting at 1).
    fn delay(&self, retry: u32) -> Duration;

    /// Checks the schedule's settings when the configuration holding it is validated:
    /// `Err((setting, what is wrong))`. Default: nothing to check.
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}

/// How much randomness to add to a delay (`"full"` or `"none"` in a config file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// "Full jitter": a uniform delay between zero and the exponential step, which spreads a
    /// crowd of clients best (AWS Architecture Blog, "Exponential Backoff and Jitter").
    #[default]
    Full,
    /// The exact exponential step; for tests and for single clients.
    None,
}

/// Exponential backoff: `initial * multiplier^(retry-1)`, capped at `max`, with jitter.
/// Default: 100 ms doubling to a 1 s cap with full jitter (gRPC's A6 retry design).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ExponentialBackoff {
    /// The first step.
    pub initial: Duration,
    /// The cap on any step.
    pub max: Duration,
    /// Growth factor per retry.
    pub multiplier: f64,
    /// Randomness.
    pub jitter: Jitter,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl ExponentialBackoff {
    /// `initial` doubling to `max`, with full jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sdk_base::backoff::{ExponentialBackoff, Jitter};
    ///
    /// let backoff = ExponentialBackoff::new(Duration::from_millis(50), Duration::from_secs(2))
    ///     .multiplier(3.0)
    ///     .jitter(Jitter::None);
    /// assert_eq!(backoff.step(2), Duration::from_millis(150));
    /// ```
    pub const fn new(initial: Duration, max: Duration) -> Self {
        ExponentialBackoff {
            initial,
            max,
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }

    /// The growth factor per retry (default 2).
    #[must_use]
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The randomness (default [`Jitter::Full`]).
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The step before jitter.
    pub fn step(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        if secs.is_finite() && secs < self.max.as_secs_f64() {
            Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(self.max)
        } else {
            self.max
        }
    }
}

impl Backoff for ExponentialBackoff {
    fn delay(&self, retry: u32) -> Duration {
        let step = self.step(retry);
        match self.jitter {
            Jitter::None => step,
            Jitter::Full => step.mul_f64(fastrand::f64()),
        }
    }

    /// The settings as a retry section names them: `multiplier` between 1 and 100, and
    /// `initial_backoff` no longer than `max_backoff`.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1.0..=100.0).contains(&self.multiplier) {
            return Err((
                "multiplier",
                format!("{} must be between 1.0 and 100.0", self.multiplier),
            ));
        }
        if self.initial > self.max {
            return Err((
                "initial_backoff",
                format!(
                    "{:?} is longer than max_backoff {:?}",
                    self.initial, self.max
                ),
            ));
        }
        Ok(())
    }
}

impl ExponentialBackoff {
    /// The schedule of reconnect loops: 100 ms doubling to 5 s, full jitter, so followers
    /// of a registry that restarts come back spread out over the restart's length instead
    /// of all in the same second, and a short restart costs them well under a second.
    pub fn reconnect() -> Self {
        ExponentialBackoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

/// One reconnect loop's state: its failures in a row and the wait before its next try, on
/// the [`reconnect`](ExponentialBackoff::reconnect) schedule (100 ms doubling to 5 s, full
/// jitter). Every loop that follows a broker, a registry or a stream waits through this one
/// type, so none waits a fixed time and comes back in step with its peers.
///
/// ```
/// use std::time::Duration;
/// use sdk_base::backoff::Reconnect;
///
/// let mut reconnect = Reconnect::new();
/// assert!(reconnect.failed() <= Duration::from_millis(100));
/// assert!(reconnect.failed() <= Duration::from_millis(200));
/// assert_eq!(reconnect.failures(), 2);
/// reconnect.succeeded();
/// assert_eq!(reconnect.failures(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: ExponentialBackoff,
    failures: u32,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::new()
    }
}

impl Reconnect {
    /// A loop that has not failed yet.
    pub fn new() -> Self {
        Reconnect {
            backoff: ExponentialBackoff::reconnect(),
            failures: 0,
        }
    }

    /// Records a failure and says how long to wait before trying again.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.delay(self.failures)
    }

    /// Records a success: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// The failures in a row so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A fixed list of delays, each spread by `±spread` (a fraction), the last one repeated:
/// webhook retries on the schedule users of Svix and Stripe know (5 s, 5 min, 30 min, 2 h,
/// 5 h, 10 h, 10 h). How many retries there are is the caller's decision
/// ([`steps`](ScheduledBackoff::steps) tells the schedule's own length).
///
/// ```
/// use std::time::Duration;
/// use sdk_base::backoff::{Backoff, ScheduledBackoff};
///
/// let schedule = ScheduledBackoff::new(vec![Duration::from_secs(5), Duration::from_secs(300)])
///     .spread(0.2);
/// let first = schedule.delay(1);
/// assert!(first >= Duration::from_secs(4) && first <= Duration::from_secs(6));
/// assert!(schedule.delay(9) >= Duration::from_secs(240));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledBackoff {
    /// The delay before retry 1, 2, ...
    pub steps: Vec<Duration>,
    /// The randomness, as a fraction of the step: 0.2 draws from 80 % to 120 %.
    pub spread: f64,
}

impl ScheduledBackoff {
    /// `steps` without randomness.
    pub fn new(steps: Vec<Duration>) -> Self {
        ScheduledBackoff { steps, spread: 0.0 }
    }

    /// The randomness as a fraction of each step (clamped to 0..=1).
    #[must_use]
    pub fn spread(mut self, spread: f64) -> Self {
        self.spread = if spread.is_finite() {
            spread.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The step before randomness (the last step for retries past the list; zero for an
    /// empty list).
    pub fn step(&self, retry: u32) -> Duration {
        let index = usize::try_from(retry.saturating_sub(1)).unwrap_or(usize::MAX);
        self.steps
            .get(index)
            .or(self.steps.last())
            .copied()
            .unwrap_or_default()
    }
}

impl Backoff for ScheduledBackoff {
    fn delay(&self, retry: u32) -> Duration {
        let factor = 1.0 + self.spread * (2.0 * fastrand::f64() - 1.0);
        self.step(retry).mul_f64(factor.max(0.0))
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.steps.is_empty() {
            return Err(("schedule", "needs at least one delay".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap() {
        let b = ExponentialBackoff {
            jitter: Jitter::None,
            ..Default::default()
        };
        let steps: Vec<_> = (1..=6).map(|r| b.delay(r).as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_under_the_step() {
        let b = ExponentialBackoff::default();
        for retry in 1..5 {
            for _ in 0..100 {
                assert!(b.delay(retry) <= b.step(retry));
            }
        }
    }

    #[test]
    fn a_schedule_spreads_each_step_and_repeats_the_last() {
        let steps = vec![Duration::from_secs(5), Duration::from_secs(300)];
        let schedule = ScheduledBackoff::new(steps).spread(0.2);
        for _ in 0..200 {
            let first = schedule.delay(1);
            assert!((4.0..=6.0).contains(&first.as_secs_f64()), "{first:?}");
            let late = schedule.delay(7);
            assert!((240.0..=360.0).contains(&late.as_secs_f64()), "{late:?}");
        }
        assert_eq!(ScheduledBackoff::new(Vec::new()).delay(1), Duration::ZERO);
    }
}
