//! The bus's notion of now: wall-clock time read once at start and advanced by tokio's
//! clock, so schedules run on paused time in tests exactly as on real time.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Wall-clock time that moves with tokio's clock. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: SystemTime,
    at: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// Now, as the system says.
    pub fn new() -> Clock {
        Clock {
            wall: SystemTime::now(),
            at: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        self.wall + self.at.elapsed()
    }

    /// Milliseconds since the Unix epoch (what the store keeps).
    pub fn now_ms(&self) -> i64 {
        to_ms(self.now())
    }
}

/// `time` in milliseconds since the Unix epoch (0 before it, saturating far after).
pub fn to_ms(time: SystemTime) -> i64 {
    i64::try_from(sdk_base::clock::unix_ms(time)).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch as a time.
pub fn from_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `duration` in milliseconds, saturating.
pub fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 with milliseconds, UTC (`2024-01-15T10:30:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(from_ms(ms)).to_string()
}
