//! Real axum servers on 127.0.0.1:0 for the integration tests. Each one counts and records
//! the requests it saw; replies are scripted per test.
#![allow(dead_code, unreachable_pub, missing_docs)]

#[allow(unused_imports)] // each test file uses some of them
pub use sdk_test_support::{poll, prometheus, refused_url, serve, until, Reply, Scripted, Seen};

use std::{
    cell::RefCell,
    sync::{Arc, Mutex, OnceLock},
};

use sdk::{
    circuit_breaker::BreakerConfig,
    retry::{ExponentialBackoff, Jitter, RetryConfig},
    ServiceConfig, ServiceSdk,
};

/// Retries with an exact, jitter-free schedule of 100 ms doubling.
pub fn exact_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig::new()
        .max_attempts(max_attempts)
        .backoff(ExponentialBackoff::default().jitter(Jitter::None))
}

/// A breaker that never opens, so retry tests see every attempt.
pub fn lenient_breaker() -> BreakerConfig {
    BreakerConfig::new().failure_threshold(10_000)
}

/// One attempt, no retries.
pub fn once() -> ServiceConfig {
    ServiceConfig::new().retry(RetryConfig::new().max_attempts(1))
}

/// Asserts that GET `/big` on service `svc` is refused as larger than `limit`.
pub async fn assert_body_too_large(sdk: &ServiceSdk, limit: usize) {
    let err = sdk
        .get_client("svc")
        .get("/big")
        .response()
        .await
        .expect_err("too large");
    assert!(
        matches!(err, sdk::ServiceError::BodyTooLarge { limit: l, .. } if l == limit),
        "{err:?}"
    );
}

/// An SDK with one service, `svc`, at `url`, on the transport's direct path (no layers, so
/// no decompression layer even though the tests build with the `compression` feature).
/// Tests that build their SDK otherwise run through the layered path: both stay covered.
pub fn sdk_for(url: &str, config: ServiceConfig) -> ServiceSdk {
    ServiceSdk::builder()
        .service("svc", config.instance(url))
        .decompression(false)
        .build()
        .expect("valid configuration")
}

/// Log output captured in memory (a `tracing_subscriber` writer); `text()` reads it.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's one Prometheus recorder (a global: installed once, by the first test that
/// asks). Tests read only the series of their own services' names.
pub fn recorder() -> &'static sdk::telemetry::Prometheus {
    static RECORDER: OnceLock<sdk::telemetry::Prometheus> = OnceLock::new();
    RECORDER.get_or_init(|| {
        sdk::telemetry::Prometheus::install().expect("the only recorder in this process")
    })
}

thread_local! {
    /// Where the current thread's test captures logs, if it does.
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Captures every log line (TRACE and up) written on this thread from now on, through the
/// process's one global subscriber. Global because tracing caches a callsite's interest per
/// process: a thread-local subscriber beside other tests could miss events. Lines from
/// threads that capture nothing are never formatted. For tests on a current-thread runtime
/// (everything they start runs on their thread).
pub fn capture_logs() -> Captured {
    use tracing_subscriber::{filter::filter_fn, layer::SubscriberExt as _, Layer as _};
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(|| ThisThread)
            .with_ansi(false)
            .with_filter(filter_fn(|_| CAPTURE.with(|c| c.borrow().is_some())));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
    let captured = Captured::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));
    captured
}

/// Writes to the current thread's capture (nowhere when it has none).
struct ThisThread;

impl std::io::Write for ThisThread {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(captured) = c.borrow_mut().as_mut() {
                captured.write_all(buf)?;
            }
            Ok(buf.len())
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
