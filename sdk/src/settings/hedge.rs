//! When and how often a call is hedged: [`HedgeConfig`].

use std::{fmt, str::FromStr, time::Duration};

/// When a hedge is sent: once the call has gone unanswered for the endpoint's observed
/// latency percentile (`"p95"`), or for a fixed time (`"20ms"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HedgeAfter {
    /// This percentile (0–100, exclusive) of the endpoint's recent answer times.
    Percentile(f64),
    /// A fixed delay.
    Fixed(Duration),
}

impl FromStr for HedgeAfter {
    type Err = String;

    /// `p50`…`p99.9` (a percentile) or a duration (`"20ms"`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sdk::hedge::HedgeAfter;
    ///
    /// assert_eq!("p95".parse(), Ok(HedgeAfter::Percentile(95.0)));
    /// assert_eq!("20ms".parse(), Ok(HedgeAfter::Fixed(Duration::from_millis(20))));
    /// assert!("p100".parse::<HedgeAfter>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix('p').or_else(|| s.strip_prefix('P')) {
            return match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => Ok(HedgeAfter::Percentile(p)),
                _ => Err(format!(
                    "`{s}` is not a percentile: expected p1 to p99.9 (such as \"p95\")"
                )),
            };
        }
        match super::units::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(HedgeAfter::Fixed(d)),
            Ok(_) => Err("a hedge delay must be longer than zero".into()),
            Err(_) => Err(format!(
                "`{s}` is neither a percentile (\"p95\") nor a duration (\"20ms\")"
            )),
        }
    }
}

impl fmt::Display for HedgeAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HedgeAfter::Percentile(p) => write!(f, "p{p}"),
            HedgeAfter::Fixed(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for HedgeAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hedged requests for a service or one method: when an idempotent call has not been
/// answered by `after`, one more attempt goes to a *different* instance; the first good
/// answer wins and the others are cancelled. See [`hedge`](mod@crate::hedge).
///
/// ```toml
/// [services.user-service.hedge]
/// after = "p95"        # or a duration: "20ms"
/// max = 1              # hedges per call, 1 to 3
/// min_samples = 20     # answers seen before a percentile is trusted
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HedgeConfig {
    /// When to hedge (default `p95`).
    pub after: HedgeAfter,
    /// How many hedges one call may send, 1 to 3 (default 1); the k-th goes out after k
    /// times `after`.
    pub max: u32,
    /// How many answers the endpoint must have had before its percentile is trusted
    /// (default 20); until then nothing is hedged.
    pub min_samples: u32,
}

impl HedgeConfig {
    /// The defaults: one hedge after the endpoint's p95.
    pub const DEFAULT: HedgeConfig = HedgeConfig {
        after: HedgeAfter::Percentile(95.0),
        max: 1,
        min_samples: 20,
    };

    /// The defaults: one hedge after the endpoint's p95.
    pub fn new() -> Self {
        Self::DEFAULT
    }

    /// Hedges after `after` (a percentile or a fixed delay).
    #[must_use]
    pub const fn after(mut self, after: HedgeAfter) -> Self {
        self.after = after;
        self
    }

    /// Sends up to `max` hedges per call (clamped to 1–3).
    #[must_use]
    pub const fn max(mut self, max: u32) -> Self {
        self.max = if max < 1 {
            1
        } else if max > 3 {
            3
        } else {
            max
        };
        self
    }

    /// Trusts a percentile after this many answers.
    #[must_use]
    pub const fn min_samples(mut self, min_samples: u32) -> Self {
        self.min_samples = min_samples;
        self
    }

    /// Why these settings are wrong, if they are.
    pub(crate) fn check(&self) -> super::Check {
        if !(1..=3).contains(&self.max) {
            return Err(("max", format!("must be 1 to 3, not {}", self.max)));
        }
        Ok(())
    }
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}
