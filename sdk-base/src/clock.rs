//! Wall-clock time as Unix seconds and milliseconds: the one conversion every crate uses
//! (heartbeats, deadlines carried in messages, token expiry, webhook timestamps, rate-limit
//! windows). A time before the epoch reads 0; one too far after saturates.

use std::time::{Duration, SystemTime};

/// `time` in milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    u64::try_from(since_epoch(time).as_millis()).unwrap_or(u64::MAX)
}

/// `time` in whole seconds since the Unix epoch.
pub fn unix_secs(time: SystemTime) -> u64 {
    since_epoch(time).as_secs()
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// Now, in whole seconds since the Unix epoch.
pub fn now_unix_secs() -> u64 {
    unix_secs(SystemTime::now())
}

fn since_epoch(time: SystemTime) -> Duration {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_the_epoch_is_zero_and_after_counts() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!((unix_ms(before), unix_secs(before)), (0, 0));
        let after = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!((unix_ms(after), unix_secs(after)), (1_500, 1));
        assert!(now_unix_ms() / 1000 >= now_unix_secs().saturating_sub(1));
    }
}
