//! Bounded polls: a test waits for the condition it needs, for at most a stated time,
//! instead of sleeping a fixed time and hoping. Every crate's tests use them.

use std::{future::Future, time::Duration};

/// Calls `probe` every 20 ms until it gives `Some`, for at most `within`; `None` if it
/// never did.
pub async fn poll<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `done()` holds, looking every 10 ms, for at most `within`; whether it did.
pub async fn until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let limit = tokio::time::Instant::now() + within;
    while !done() {
        if tokio::time::Instant::now() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
