//! The one rule for a test whose server, broker or tool is missing: plain `cargo test` runs
//! on a machine with nothing but Rust, so such a test skips and says why; `CI` set means the
//! run must be complete (`scripts/test` starts and installs everything), so there it fails.

use std::fmt::Display;

/// Skips the rest of a test for `reason` (printed as `skipping: {reason}`), or fails it when
/// `CI` is set. The caller returns right after.
pub fn skip(reason: impl Display) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, but the test cannot run: {reason}"
    );
    // Written to stderr itself, not through `eprintln!`, which the test harness captures
    // and shows only for a failing test: a skip is news when the test passes.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipping: {reason}");
}

/// Whether something accepts TCP connections at `addr` within two seconds.
pub async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

/// Whether the server `name` is reachable at `addr`; when it is not, the test is skipped
/// ([`skip`]) and this is `false`.
pub async fn required(name: &str, addr: &str) -> bool {
    let up = reachable(addr).await;
    if !up {
        skip(format_args!("{name} is not reachable at {addr}"));
    }
    up
}
