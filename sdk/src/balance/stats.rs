//! What the balancer knows of each instance: a peak-EWMA latency estimate, requests in
//! flight, and its failure streak and ejection. Updated with atomics from every attempt.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::LoadBalancerConfig;

#[derive(Debug)]
pub(crate) struct InstanceStats {
    rtt_ns: AtomicU64,
    updated_ns: AtomicU64,
    in_flight: AtomicU32,
    failures: AtomicU32,
    ejected_until_ns: AtomicU64,
}

impl InstanceStats {
    pub(crate) fn new(default_rtt_ns: u64, now_ns: u64) -> Self {
        InstanceStats {
            rtt_ns: AtomicU64::new(default_rtt_ns),
            updated_ns: AtomicU64::new(now_ns),
            in_flight: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ns: AtomicU64::new(0),
        }
    }

    /// Expected cost of one more request: latency estimate × (in flight + 1). The estimate
    /// decays with the time since it was last updated (as tower's `PeakEwma` does), so an
    /// instance that was slow, and has been avoided since, is eventually tried again.
    pub(crate) fn cost(&self, now_ns: u64, decay_ns: u64) -> f64 {
        self.estimate(now_ns, decay_ns) * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// The latency estimate now, decayed with the time since it was last updated.
    pub(crate) fn estimate(&self, now_ns: u64, decay_ns: u64) -> f64 {
        let idle = now_ns.saturating_sub(self.updated_ns.load(Ordering::Relaxed)) as f64;
        self.rtt_ns.load(Ordering::Relaxed) as f64 * (-idle / decay_ns.max(1) as f64).exp()
    }

    pub(crate) fn is_ejected(&self, now_ns: u64) -> bool {
        now_ns < self.ejected_until_ns.load(Ordering::Relaxed)
    }

    pub(crate) fn ejected_until(&self) -> u64 {
        self.ejected_until_ns.load(Ordering::Relaxed)
    }

    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Peak-EWMA: a slower answer is taken at once; faster ones pull the estimate down
    /// with weight `1 - exp(-elapsed / decay)`.
    pub(crate) fn observe(&self, rtt_ns: u64, now_ns: u64, decay_ns: u64) {
        let previous = self.rtt_ns.load(Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(self.updated_ns.swap(now_ns, Ordering::Relaxed));
        let next = if rtt_ns >= previous {
            rtt_ns
        } else {
            let keep = (-(elapsed as f64) / decay_ns.max(1) as f64).exp();
            (previous as f64 * keep + rtt_ns as f64 * (1.0 - keep)) as u64
        };
        self.rtt_ns.store(next.max(1), Ordering::Relaxed);
    }

    /// Counts a failure or a success; returns true when this failure ejected the instance.
    pub(crate) fn record(&self, failed: bool, now_ns: u64, config: &LoadBalancerConfig) -> bool {
        if !failed {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let streak = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= config.ejection_failures.max(1) {
            self.failures.store(0, Ordering::Relaxed);
            let duration = crate::clock::nanos(config.ejection_duration);
            self.ejected_until_ns
                .store(now_ns.saturating_add(duration), Ordering::Relaxed);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn peak_ewma_takes_peaks_at_once_and_decays_slowly() {
        let decay = 10_000 * MS;
        let stats = InstanceStats::new(10 * MS, 0);
        stats.observe(100 * MS, 1, decay);
        assert!(
            (stats.cost(1, decay) as u64).abs_diff(100 * MS) < MS,
            "a slow answer counts at once"
        );
        stats.observe(10 * MS, 1_000 * MS, decay);
        let after_one_second = stats.cost(1_000 * MS, decay) as u64;
        assert!(
            after_one_second > 80 * MS && after_one_second < 100 * MS,
            "{after_one_second}"
        );
        stats.start();
        assert!(
            stats.cost(1_000 * MS, decay) as u64 >= 2 * after_one_second - 1,
            "in-flight requests add cost"
        );
        stats.finish();
        let idle = stats.cost(61_000 * MS, decay) as u64;
        assert!(
            idle < MS,
            "an avoided instance's estimate decays, so it is tried again: {idle}"
        );
    }

    #[test]
    fn a_failure_streak_ejects_and_a_success_resets_it() {
        let config = LoadBalancerConfig {
            ejection_failures: 3,
            ..Default::default()
        };
        let stats = InstanceStats::new(MS, 0);
        assert!(!stats.record(true, 0, &config));
        assert!(!stats.record(true, 0, &config));
        assert!(
            !stats.record(false, 0, &config),
            "a success resets the streak"
        );
        assert!(!stats.record(true, 0, &config));
        assert!(!stats.record(true, 0, &config));
        assert!(
            stats.record(true, 0, &config),
            "third failure in a row ejects"
        );
        assert!(stats.is_ejected(1));
        assert!(
            !stats.is_ejected(30_000 * MS),
            "readmitted after the ejection period"
        );
    }
}
