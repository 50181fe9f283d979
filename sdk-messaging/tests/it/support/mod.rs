//! Helpers for the messaging tests: the machine's brokers, unique names per test, and
//! brokers of the tests' own (started as processes on free loopback ports).
#![allow(dead_code, unreachable_pub, missing_docs)]

pub use sdk_test_support::poll;

use std::time::Duration;

pub mod durability;
pub mod suite;

/// A name no other test (or earlier run) uses: `prefix` plus the process id and a counter.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub use sdk_test_support::reachable;

/// A test's hold on a broker the machine shares: many tests use it at once, but a test that
/// restarts it holds it alone ([`broker_alone`]), so no other test, in this binary or
/// another, sees the restart (`sdk_test_support::broker`). Dropped when the test ends.
pub type Broker = sdk_test_support::broker::Hold;

/// A test's sole hold on a broker the machine shares, for restarting it.
pub type BrokerAlone = sdk_test_support::broker::Hold;

/// The broker at `addr` (`name` for messages), held shared for as long as the answer is
/// kept, or `None` after saying why the test is skipped; with `CI` set a missing broker
/// fails the test.
pub async fn broker_at(name: &str, addr: &str) -> Option<Broker> {
    let shared = sdk_test_support::broker::shared(addr).await;
    reachable_or_skip(name, addr).await?;
    Some(shared)
}

/// [`broker_at`] for a test that restarts the broker: it waits until no other test holds
/// it, and holds it alone for as long as the answer is kept.
pub async fn broker_alone(name: &str, addr: &str) -> Option<BrokerAlone> {
    let alone = sdk_test_support::broker::alone(addr).await;
    reachable_or_skip(name, addr).await?;
    Some(alone)
}

async fn reachable_or_skip(name: &str, addr: &str) -> Option<()> {
    sdk_test_support::required(name, addr).await.then_some(())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `command` (a broker of the test's own, quiet, killed when dropped) and waits up
/// to 5 s for it to listen on `port`.
pub async fn spawn_listening(
    command: &mut tokio::process::Command,
    port: u16,
) -> tokio::process::Child {
    let what = format!("{:?}", command.as_std().get_program());
    // Its output goes to `broker.log` in its working directory when it has one of the
    // test's own (printed when the test fails), and nowhere otherwise.
    let log = command.as_std().get_current_dir().and_then(|dir| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("broker.log"))
            .ok()
    });
    let (stdout, stderr) = match log.and_then(|f| Some((f.try_clone().ok()?, f))) {
        Some((out, err)) => (out.into(), err.into()),
        None => (std::process::Stdio::null(), std::process::Stdio::null()),
    };
    let child = command
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    for _ in 0..100 {
        if reachable(&format!("127.0.0.1:{port}")).await {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start on {port}");
}
