//! Recent answer times of one endpoint, and their percentiles.
//!
//! Log-scale buckets (each about 5 % wider than the one before, from 1 µs to about an
//! hour) in two windows: answers go into the current one, percentiles read both, and every
//! `WINDOW` the older is dropped, so the estimate follows a change within two windows.
//! Why not `hdrhistogram` (what tower's hedge uses): a fixed array of 400 counters does
//! what is needed here without a dependency, and the percentile a call reads is cached, so
//! a call pays one atomic load, not a scan.

use sdk_base::sync::Unpoisoned as _;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use tokio::time::Instant;

/// Buckets: bucket `i` holds answers up to `GROWTH^i` microseconds.
const BUCKETS: usize = 400;
const GROWTH: f64 = 1.05;
/// How long a window collects before it is rotated out.
const WINDOW: Duration = Duration::from_secs(10);
/// The cached percentile is recomputed every this many answers.
const REFRESH_EVERY: u64 = 16;

/// One endpoint's recent answer times.
#[derive(Debug)]
pub(crate) struct Latencies {
    windows: Mutex<Windows>,
    /// The percentile's value in nanoseconds, `0` while there are too few answers.
    cached: AtomicU64,
}

#[derive(Debug)]
struct Windows {
    current: Box<[u32; BUCKETS]>,
    previous: Box<[u32; BUCKETS]>,
    counts: (u64, u64),
    rotated: Instant,
    since_refresh: u64,
}

fn bucket(latency: Duration) -> usize {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= 1.0 {
        return 0;
    }
    let index = (micros.ln() / GROWTH.ln()).ceil();
    (index as usize).min(BUCKETS - 1)
}

fn upper_bound(index: usize) -> Duration {
    Duration::from_secs_f64(GROWTH.powi(index as i32) / 1e6)
}

impl Latencies {
    pub(crate) fn new() -> Self {
        Latencies {
            windows: Mutex::new(Windows {
                current: Box::new([0; BUCKETS]),
                previous: Box::new([0; BUCKETS]),
                counts: (0, 0),
                rotated: Instant::now(),
                since_refresh: 0,
            }),
            cached: AtomicU64::new(0),
        }
    }

    /// Records one answer's time; refreshes the cached `percentile` (of at least
    /// `min_samples` answers) now and then.
    pub(crate) fn record(&self, latency: Duration, percentile: f64, min_samples: u32) {
        let mut w = self.windows.locked();
        if w.rotated.elapsed() >= WINDOW {
            let w = &mut *w;
            std::mem::swap(&mut w.current, &mut w.previous);
            w.current.fill(0);
            w.counts = (0, w.counts.0);
            w.rotated = Instant::now();
        }
        let b = bucket(latency);
        w.current[b] = w.current[b].saturating_add(1);
        w.counts.0 += 1;
        w.since_refresh += 1;
        let total = w.counts.0 + w.counts.1;
        if w.since_refresh >= REFRESH_EVERY || total <= u64::from(min_samples) {
            w.since_refresh = 0;
            let value = if total < u64::from(min_samples.max(1)) {
                0
            } else {
                crate::clock::nanos(w.percentile(percentile, total)).max(1)
            };
            self.cached.store(value, Ordering::Relaxed);
        }
    }

    /// The cached percentile, `None` while too few answers have been seen.
    pub(crate) fn threshold(&self) -> Option<Duration> {
        match self.cached.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

impl Windows {
    fn percentile(&self, percentile: f64, total: u64) -> Duration {
        let rank = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for i in 0..BUCKETS {
            seen += u64::from(self.current[i]) + u64::from(self.previous[i]);
            if seen >= rank {
                return upper_bound(i);
            }
        }
        upper_bound(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_five_percent() {
        for micros in [2u64, 90, 350, 1_000, 50_000, 3_000_000] {
            let d = Duration::from_micros(micros);
            let up = upper_bound(bucket(d));
            assert!(
                up >= d && up.as_secs_f64() <= d.as_secs_f64() * GROWTH + 1e-9,
                "{d:?} {up:?}"
            );
        }
        assert_eq!(bucket(Duration::from_secs(100_000)), BUCKETS - 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_needs_enough_answers_and_follows_a_change() {
        let l = Latencies::new();
        for _ in 0..19 {
            l.record(Duration::from_millis(1), 95.0, 20);
        }
        assert_eq!(l.threshold(), None);
        for i in 0..81 {
            // 95 fast answers and 5 slow ones in all: p95 is still fast.
            let slow = i >= 76;
            l.record(Duration::from_millis(if slow { 50 } else { 1 }), 95.0, 20);
        }
        let p95 = l.threshold().expect("enough");
        assert!(
            p95 >= Duration::from_millis(1) && p95 < Duration::from_micros(1100),
            "{p95:?}"
        );
        // Everything gets slower; two windows later only slow answers are left.
        for _ in 0..3 {
            tokio::time::advance(WINDOW).await;
            for _ in 0..32 {
                l.record(Duration::from_millis(40), 95.0, 20);
            }
        }
        let p95 = l.threshold().expect("enough");
        assert!(p95 >= Duration::from_millis(40), "{p95:?}");
    }
}
