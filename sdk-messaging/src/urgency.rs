//! How urgent a message is: its broker priority.
//!
//! The reference's four levels, as RabbitMQ priorities (queues declared with
//! `x-max-priority = 10`): `low` 1, `medium` 5, `high` 8, `critical` 10. Transports without
//! priorities (NATS, Redis) carry the level in the `sdk-urgency` header, so a handler can
//! still read it.

use std::{fmt, str::FromStr};

/// A message's urgency (default [`Medium`](Urgency::Medium)).
///
/// ```
/// use sdk_messaging::Urgency;
///
/// assert_eq!(Urgency::High.priority(), 8);
/// assert_eq!("critical".parse::<Urgency>(), Ok(Urgency::Critical));
/// assert_eq!(Urgency::Low.to_string(), "low");
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// Priority 1.
    Low,
    /// Priority 5.
    #[default]
    Medium,
    /// Priority 8.
    High,
    /// Priority 10.
    Critical,
}

impl Urgency {
    /// The broker priority: 1, 5, 8 or 10.
    pub const fn priority(self) -> u8 {
        match self {
            Urgency::Low => 1,
            Urgency::Medium => 5,
            Urgency::High => 8,
            Urgency::Critical => 10,
        }
    }

    /// The level's name: `low`, `medium`, `high` or `critical`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Medium => "medium",
            Urgency::High => "high",
            Urgency::Critical => "critical",
        }
    }

    /// The level a broker priority stands for (the nearest one at or below it).
    pub const fn from_priority(priority: u8) -> Urgency {
        match priority {
            0..=4 => Urgency::Low,
            5..=7 => Urgency::Medium,
            8 | 9 => Urgency::High,
            _ => Urgency::Critical,
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An urgency name that is not one of the four.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an urgency; use low, medium, high or critical")]
pub struct UrgencyError(pub String);

impl FromStr for Urgency {
    type Err = UrgencyError;

    fn from_str(s: &str) -> Result<Self, UrgencyError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Urgency::Low),
            "medium" => Ok(Urgency::Medium),
            "high" => Ok(Urgency::High),
            "critical" => Ok(Urgency::Critical),
            _ => Err(UrgencyError(s.to_owned())),
        }
    }
}
