//! The retry budget: tower's `Budget` with the accounting of tower's `TpsBudget` (Finagle's
//! design), kept with atomics.
//!
//! Why not `TpsBudget` itself: it takes a mutex on every deposit and withdrawal, and every
//! call deposits, so with many concurrent callers that mutex sits on every call's path. Here
//! the window is ten slots, each an atomic word holding the slot's generation and its sum; a
//! deposit is one compare-and-swap on the current slot, and a slot from an older generation
//! is reset by the first writer of the new one.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;
use tower::retry::budget::Budget;

const SLOTS: u64 = 10;

/// A lock-free retry budget: retries may add `ratio` of the calls made over `ttl`, plus
/// `min_per_second`.
#[derive(Debug)]
pub struct RetryBudget {
    slots: Box<[AtomicU64]>,
    epoch: Instant,
    slot_nanos: u64,
    reserve: i64,
    deposit_amount: i32,
    withdraw_amount: i32,
}

fn pack(generation: u64, value: i32) -> u64 {
    ((generation & 0xffff_ffff) << 32) | u64::from(value as u32)
}

fn unpack(word: u64) -> (u64, i32) {
    (word >> 32, word as u32 as i32)
}

impl RetryBudget {
    /// `ttl` is clamped to 1–60 s and `ratio` to 0–1000, as tower's budget requires.
    pub fn new(ttl: Duration, min_per_second: u32, ratio: f32) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let (deposit_amount, withdraw_amount) = if ratio == 0.0 {
            (0, 1)
        } else if ratio <= 1.0 {
            (1, (1.0 / ratio) as i32)
        } else {
            (1000, (1000.0 / ratio) as i32)
        };
        let reserve = i64::from(min_per_second) * ttl.as_secs() as i64 * i64::from(withdraw_amount);
        RetryBudget {
            slots: (0..SLOTS).map(|_| AtomicU64::new(pack(0, 0))).collect(),
            epoch: Instant::now(),
            slot_nanos: crate::clock::nanos(ttl / SLOTS as u32).max(1),
            reserve,
            deposit_amount,
            withdraw_amount,
        }
    }

    fn generation(&self) -> u64 {
        self.generation_at(Instant::now())
    }

    fn generation_at(&self, now: Instant) -> u64 {
        let elapsed = crate::clock::nanos(now.saturating_duration_since(self.epoch));
        elapsed / self.slot_nanos + SLOTS
    }

    /// Deposits for a call that started at `now` (the client's own reading of the clock,
    /// so a call reads it once for its deadline, its latency and its deposit).
    pub(crate) fn deposit_at(&self, now: Instant) {
        if self.deposit_amount != 0 {
            self.add(self.generation_at(now), self.deposit_amount);
        }
    }

    fn add(&self, generation: u64, amount: i32) {
        let slot = &self.slots[(generation % SLOTS) as usize];
        let tag = generation & 0xffff_ffff;
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (slot_gen, value) = unpack(current);
            let next = if slot_gen == tag {
                pack(tag, value.saturating_add(amount))
            } else {
                pack(tag, amount)
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Tokens available now (deposits of the last `ttl` plus the reserve, less withdrawals).
    fn balance(&self, generation: u64) -> i64 {
        let oldest = generation.saturating_sub(SLOTS - 1) & 0xffff_ffff;
        let tag = generation & 0xffff_ffff;
        let live = |slot_gen: u64| {
            if oldest <= tag {
                (oldest..=tag).contains(&slot_gen)
            } else {
                slot_gen >= oldest || slot_gen <= tag // the 32-bit generation wrapped
            }
        };
        self.slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Acquire)))
            .filter(|(slot_gen, _)| live(*slot_gen))
            .map(|(_, value)| i64::from(value))
            .sum::<i64>()
            + self.reserve
    }
}

impl Budget for RetryBudget {
    fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    fn withdraw(&self) -> bool {
        let generation = self.generation();
        if self.balance(generation) >= i64::from(self.withdraw_amount) {
            self.add(generation, -self.withdraw_amount);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_budget_refuses() {
        assert!(!RetryBudget::new(Duration::from_secs(1), 0, 1.0).withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_ttl() {
        let budget = RetryBudget::new(Duration::from_secs(1), 0, 1.0);
        budget.deposit();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!budget.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn slots_slide_with_time() {
        let budget = RetryBudget::new(Duration::from_secs(1), 0, 0.5);
        budget.deposit();
        budget.deposit();
        tokio::time::advance(Duration::from_millis(901)).await;
        assert!(budget.withdraw(), "deposits 900 ms old still count");
        tokio::time::advance(Duration::from_millis(2001)).await;
        budget.deposit();
        tokio::time::advance(Duration::from_millis(301)).await;
        budget.deposit();
        tokio::time::advance(Duration::from_millis(801)).await;
        budget.deposit();
        assert!(
            budget.withdraw(),
            "the first deposit expired; the second and third remain"
        );
    }

    #[test]
    fn reserve_allows_min_per_second() {
        let budget = RetryBudget::new(Duration::from_secs(1), 5, 1.0);
        for _ in 0..5 {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw());
    }

    #[test]
    fn twenty_percent_means_one_retry_per_five_calls() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
        for _ in 0..50 {
            budget.deposit();
        }
        let retries = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(retries, 10);
    }
}
