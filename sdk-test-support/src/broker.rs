//! A test's hold on a broker the machine shares (its RabbitMQ, NATS, Redis). Many tests use
//! such a broker at once, in one test binary or in several (`scripts/test` runs binaries
//! side by side); a test that restarts it holds it alone, so that no other test, in this
//! process or another, sees the restart. The hold is a file lock in the temporary directory,
//! shared or exclusive, released when the [`Hold`] is dropped (or the process dies).

use std::{fs::OpenOptions, path::PathBuf};

/// A hold on the broker at one address: shared ([`shared`]) or alone ([`alone`]).
#[derive(Debug)]
pub struct Hold {
    _file: std::fs::File,
}

/// Holds the broker at `addr` beside other tests that use it, until no test restarting it
/// holds it alone.
pub async fn shared(addr: &str) -> Hold {
    lock(addr, false).await
}

/// Holds the broker at `addr` alone, for restarting it: waits until no other test holds it.
pub async fn alone(addr: &str) -> Hold {
    lock(addr, true).await
}

fn path(addr: &str) -> PathBuf {
    let name: String = addr
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join(format!("sdk-test-broker-{name}.lock"))
}

async fn lock(addr: &str, exclusive: bool) -> Hold {
    let path = path(addr);
    // Taking the lock blocks until it is free: on a thread of its own.
    tokio::task::spawn_blocking(move || {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("the broker lock {}: {e}", path.display()));
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
        Hold { _file: file }
    })
    .await
    .expect("the lock's thread")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A hold alone waits for every shared hold, across file handles (as across processes),
    /// and shared holds do not wait for one another.
    #[tokio::test]
    async fn alone_waits_for_the_shared_holds() {
        let addr = format!("test-{}:1", std::process::id());
        let first = shared(&addr).await;
        let second = tokio::time::timeout(Duration::from_secs(5), shared(&addr)).await;
        assert!(second.is_ok(), "two shared holds at once");
        let waiting = tokio::spawn({
            let addr = addr.clone();
            async move { alone(&addr).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "alone while shared holds remain");
        drop((first, second));
        let held = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(held.is_ok(), "alone once the shared holds are gone");
    }
}
