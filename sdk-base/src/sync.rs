//! Locks that survive a panic elsewhere: a poisoned lock's data is still consistent here
//! (every critical section in these crates leaves its data valid at each step), so it is
//! used rather than turned into a second panic. Shared with the SDK (which re-uses it
//! through this hidden module) so both crates decide this once.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `lock()`, `read()` and `write()` that take a poisoned lock's data as it is.
pub trait Unpoisoned<T> {
    /// The guard.
    type Guard<'a>
    where
        Self: 'a;
    /// Locks (for writing).
    fn locked(&self) -> Self::Guard<'_>;
}

impl<T> Unpoisoned<T> for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;

    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read and write locks of an `RwLock`, taking a poisoned lock's data as it is.
pub trait UnpoisonedRw<T> {
    /// Shared access.
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    /// Exclusive access.
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> UnpoisonedRw<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|e| e.into_inner())
    }
}
