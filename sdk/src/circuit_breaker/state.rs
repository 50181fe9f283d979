//! One breaker's state machine, lock-free.
//!
//! The state and a generation number share one atomic word. Every transition bumps the
//! generation, and a permit remembers the generation it was issued in, so an outcome that
//! arrives after the breaker has moved on (a slow call admitted while closed that fails after
//! the breaker opened) cannot disturb the new state. The closed path is one atomic load to
//! admit and one load (plus a store only when a failure streak ends) to record a success.
//!
//! Half-open probes are counted in a second word tagged with the generation, so resetting the
//! counters and admitting probes never race.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::{BreakerConfig, CircuitOpen, FailureClassifier, ServerFailures};
use crate::{box_error::BoxError, response::ServiceResponse};

/// The three states of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow; failures are counted.
    Closed,
    /// Calls are refused without touching the network until the open duration passes.
    Open,
    /// A limited number of probe calls are let through; enough successes close the breaker,
    /// one failure opens it again.
    HalfOpen,
}

impl CircuitState {
    /// The state's name in metrics and health answers: `closed`, `half_open` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }

    /// The `sdk_circuit_state` gauge's value (0 closed, 1 half-open, 2 open) and the name.
    fn gauge(self) -> (f64, &'static str) {
        let value = match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        };
        (value, self.as_str())
    }
}

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

fn pack(generation: u64, state: u64) -> u64 {
    (generation << 2) | state
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> 2, word & 3)
}

/// Half-open bookkeeping word: generation (32 bits) | probes in flight (16) | successes (16).
fn pack_probe(generation: u64, in_flight: u64, successes: u64) -> u64 {
    ((generation & 0xffff_ffff) << 32) | ((in_flight & 0xffff) << 16) | (successes & 0xffff)
}

fn unpack_probe(word: u64) -> (u64, u64, u64) {
    (word >> 32, (word >> 16) & 0xffff, word & 0xffff)
}

/// Admission to call through a breaker; report the outcome with
/// [`CircuitBreaker::record`] or [`CircuitBreaker::release`].
#[derive(Debug)]
pub struct Permit {
    generation: u64,
    probe: bool,
}

/// A single circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    word: AtomicU64,
    probes: AtomicU64,
    consecutive_failures: AtomicU32,
    opened_at_nanos: AtomicU64,
    total_failures: AtomicU64,
    rejected: AtomicU64,
    window: Option<RateWindow>,
    epoch: Instant,
    classifier: Arc<dyn FailureClassifier>,
    /// `(service, method, endpoint)`, for the transition metrics.
    name: Option<(Arc<str>, http::Method, Box<str>)>,
}

impl CircuitBreaker {
    /// A closed breaker with the given settings, counting failures as [`ServerFailures`] does.
    pub fn new(config: BreakerConfig) -> Self {
        Self::with_classifier(config, Arc::new(ServerFailures))
    }

    /// A closed breaker with the given settings and failure classifier.
    pub fn with_classifier(config: BreakerConfig, classifier: Arc<dyn FailureClassifier>) -> Self {
        let window = config
            .failure_rate
            .map(|rate| RateWindow::new(rate.window, rate.threshold, rate.min_calls));
        CircuitBreaker {
            config,
            word: AtomicU64::new(pack(0, CLOSED)),
            probes: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            opened_at_nanos: AtomicU64::new(0),
            total_failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            window,
            epoch: Instant::now(),
            classifier,
            name: None,
        }
    }

    /// Names the breaker for its metrics (`sdk_circuit_state`, `sdk_circuit_transitions_total`).
    #[must_use]
    pub(crate) fn named(
        mut self,
        service: Arc<str>,
        method: &http::Method,
        endpoint: &str,
    ) -> Self {
        self.name = Some((service, method.clone(), endpoint.into()));
        self
    }

    fn moved_to(&self, to: CircuitState) {
        if let Some((service, method, endpoint)) = &self.name {
            crate::telemetry::circuit_transition(service, method, endpoint, to.gauge());
        }
    }

    /// Whether `outcome` counts as a failure for this breaker.
    pub fn is_failure(&self, outcome: &Result<ServiceResponse, BoxError>) -> bool {
        self.classifier.is_failure(outcome)
    }

    fn now_nanos(&self) -> u64 {
        crate::clock::nanos_since(self.epoch)
    }

    /// The current state (an open breaker whose open duration has passed reports `HalfOpen`).
    pub fn state(&self) -> CircuitState {
        let (_, state) = unpack(self.word.load(Ordering::Acquire));
        match state {
            CLOSED => CircuitState::Closed,
            OPEN if self.remaining_open().is_none() => CircuitState::HalfOpen,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Failures in a row since the last success (while closed).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Failures recorded over the breaker's lifetime.
    pub fn total_failures(&self) -> u64 {
        self.total_failures.load(Ordering::Relaxed)
    }

    /// Calls refused while open over the breaker's lifetime.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn remaining_open(&self) -> Option<Duration> {
        let opened = self.opened_at_nanos.load(Ordering::Acquire);
        let open_for = crate::clock::nanos(self.config.open_duration);
        let until = opened.saturating_add(open_for);
        let now = self.now_nanos();
        (now < until).then(|| Duration::from_nanos(until - now))
    }

    /// Asks to make a call. Refuses with [`CircuitOpen`] while the breaker is open or while
    /// every half-open probe slot is taken.
    pub fn try_acquire(&self) -> Result<Permit, CircuitOpen> {
        if !self.config.enabled {
            return Ok(Permit {
                generation: 0,
                probe: false,
            });
        }
        let word = self.word.load(Ordering::Acquire);
        let (generation, state) = unpack(word);
        match state {
            CLOSED => Ok(Permit {
                generation,
                probe: false,
            }),
            OPEN => match self.remaining_open() {
                Some(retry_after) => Err(self.reject(retry_after)),
                None => {
                    let next = pack(generation + 1, HALF_OPEN);
                    // Losing this race is fine: someone else moved the breaker on.
                    if self
                        .word
                        .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        self.moved_to(CircuitState::HalfOpen);
                    }
                    self.try_acquire()
                }
            },
            _ => self.admit_probe(generation),
        }
    }

    fn reject(&self, retry_after: Duration) -> CircuitOpen {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        CircuitOpen { retry_after }
    }

    fn admit_probe(&self, generation: u64) -> Result<Permit, CircuitOpen> {
        let tag = generation & 0xffff_ffff;
        let mut current = self.probes.load(Ordering::Acquire);
        loop {
            let (probe_gen, in_flight, successes) = unpack_probe(current);
            let next = if probe_gen != tag {
                pack_probe(tag, 1, 0)
            } else if in_flight >= u64::from(self.config.half_open_max_probes) {
                return Err(self.reject(Duration::ZERO));
            } else {
                pack_probe(tag, in_flight + 1, successes)
            };
            match self.probes.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Permit {
                        generation,
                        probe: true,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Records the outcome of a permitted call.
    pub fn record(&self, permit: Permit, failed: bool) {
        if !self.config.enabled {
            return;
        }
        let word = self.word.load(Ordering::Acquire);
        let (generation, state) = unpack(word);
        if failed {
            self.total_failures.fetch_add(1, Ordering::Relaxed);
        }
        if generation != permit.generation {
            return; // the breaker moved on while this call was in flight
        }
        match (state, failed) {
            (CLOSED, false) => {
                if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                    self.consecutive_failures.store(0, Ordering::Relaxed);
                }
                if let Some(window) = &self.window {
                    window.record(false);
                }
            }
            (CLOSED, true) => {
                let streak = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let rate_trip = self.window.as_ref().is_some_and(|w| w.record(true));
                if streak >= self.config.failure_threshold || rate_trip {
                    self.trip(word);
                }
            }
            (HALF_OPEN, false) if permit.probe => {
                let successes = self.finish_probe(generation, true);
                if successes >= u64::from(self.config.success_threshold) {
                    let closed = pack(generation + 1, CLOSED);
                    if self
                        .word
                        .compare_exchange(word, closed, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        self.consecutive_failures.store(0, Ordering::Relaxed);
                        if let Some(window) = &self.window {
                            window.reset();
                        }
                        self.moved_to(CircuitState::Closed);
                    }
                }
            }
            (HALF_OPEN, true) => self.trip(word),
            _ => {}
        }
    }

    /// Gives a permit back without an outcome (the call was cancelled).
    pub fn release(&self, permit: Permit) {
        if permit.probe {
            let (generation, _) = unpack(self.word.load(Ordering::Acquire));
            if generation == permit.generation {
                self.finish_probe(generation, false);
            }
        }
    }

    /// Frees a probe slot; returns the half-open success count afterwards.
    fn finish_probe(&self, generation: u64, success: bool) -> u64 {
        let tag = generation & 0xffff_ffff;
        let mut current = self.probes.load(Ordering::Acquire);
        loop {
            let (probe_gen, in_flight, successes) = unpack_probe(current);
            if probe_gen != tag {
                return 0;
            }
            let successes = successes + u64::from(success);
            let next = pack_probe(tag, in_flight.saturating_sub(1), successes);
            match self.probes.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return successes,
                Err(actual) => current = actual,
            }
        }
    }

    fn trip(&self, observed: u64) {
        let (generation, _) = unpack(observed);
        self.opened_at_nanos
            .store(self.now_nanos(), Ordering::Release);
        let open = pack(generation + 1, OPEN);
        if self
            .word
            .compare_exchange(observed, open, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                failures = self.consecutive_failures.load(Ordering::Relaxed),
                open_for = ?self.config.open_duration,
                "circuit breaker opened"
            );
            self.moved_to(CircuitState::Open);
        }
    }
}

/// A count-based sliding window of the last `len` outcomes, kept with atomics: a slot per
/// call (bit 0: failed, bit 1: filled), a cursor, and running totals.
#[derive(Debug)]
struct RateWindow {
    slots: Box<[AtomicU8]>,
    cursor: AtomicU64,
    failures: AtomicU32,
    filled: AtomicU32,
    threshold: f64,
    min_calls: u32,
}

impl RateWindow {
    fn new(len: u32, threshold: f64, min_calls: u32) -> Self {
        RateWindow {
            slots: (0..len.max(1)).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            filled: AtomicU32::new(0),
            threshold,
            min_calls,
        }
    }

    /// Records one outcome; returns whether the failure rate now trips the breaker.
    fn record(&self, failed: bool) -> bool {
        let len = self.slots.len() as u64;
        let index = (self.cursor.fetch_add(1, Ordering::Relaxed) % len) as usize;
        let old = self.slots[index].swap(2 | u8::from(failed), Ordering::AcqRel);
        if old & 2 == 0 {
            self.filled.fetch_add(1, Ordering::Relaxed);
        }
        match (old & 1 == 1, failed) {
            (false, true) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.failures.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let calls = self.filled.load(Ordering::Relaxed);
        calls >= self.min_calls
            && calls > 0
            && f64::from(self.failures.load(Ordering::Relaxed)) / f64::from(calls) >= self.threshold
    }

    fn reset(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Relaxed);
        }
        self.failures.store(0, Ordering::Relaxed);
        self.filled.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FailureRate;

    fn config() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            failure_threshold: 3,
            success_threshold: 2,
            open_duration: Duration::from_secs(10),
            half_open_max_probes: 1,
            failure_rate: None,
        }
    }

    fn fail(b: &CircuitBreaker) {
        let permit = b.try_acquire().expect("admitted");
        b.record(permit, true);
    }

    #[test]
    fn a_disabled_breaker_admits_everything_and_counts_nothing() {
        let b = CircuitBreaker::new(config().enabled(false));
        for _ in 0..100 {
            fail(&b);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.total_failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_open_half_open_closed() {
        let b = CircuitBreaker::new(config());
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 2);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Open);
        let refused = b.try_acquire().expect_err("open refuses");
        assert_eq!(refused.retry_after, Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.try_acquire().expect("one probe");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        b.record(probe, false);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let probe = b.try_acquire().expect("second probe");
        b.record(probe, false);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_and_stale_outcomes_are_ignored() {
        let b = CircuitBreaker::new(config());
        let slow = b.try_acquire().expect("closed");
        for _ in 0..3 {
            fail(&b);
        }
        // A call admitted while closed finishes after the breaker opened: ignored.
        b.record(slow, false);
        assert_eq!(b.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.try_acquire().expect("probe");
        b.record(probe, true);
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_probe_frees_its_slot() {
        let b = CircuitBreaker::new(config());
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.try_acquire().expect("probe");
        b.release(probe);
        assert!(b.try_acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_window_trips_without_a_streak() {
        let mut cfg = config();
        cfg.failure_threshold = 100;
        cfg.failure_rate = Some(FailureRate {
            window: 10,
            threshold: 0.5,
            min_calls: 10,
        });
        let b = CircuitBreaker::new(cfg);
        for i in 0..10 {
            let permit = b.try_acquire().expect("closed");
            b.record(permit, i % 2 == 1);
        }
        assert_eq!(b.state(), CircuitState::Open);
    }
}
