//! The zero-loss harness every transport's durability test runs: a consuming process (the
//! test binary run again as a child) that writes each handled event's number to a file
//! before its handler returns, an emitter counting what was acknowledged, and the final
//! count of acknowledged against handled.

use std::{
    collections::BTreeSet,
    io::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::StreamExt;
use sdk::ServiceResult;
use sdk_messaging::{MessageContext, Messaging};
use tokio::process::{Child, Command};

use super::poll::until;

/// The environment variable that makes a child test the consuming process: `<spec> <file>`.
pub const CHILD: &str = "SDK_TEST_CONSUMER";

/// What the child was asked: the transport-specific spec and the output file.
pub fn child_spec() -> Option<(String, PathBuf)> {
    let spec = std::env::var(CHILD).ok()?;
    let (spec, file) = spec.rsplit_once(' ')?;
    Some((spec.to_owned(), PathBuf::from(file)))
}

/// Every transport's `consumer_process`: when this process is the child (see
/// [`child_spec`]: `<url> <id>` and the output file), connects with `config(url, id)` and
/// handles `o<id>.order.placed` for group `fulfilment<id>` until killed; otherwise returns.
pub async fn consume_as_child(config: impl FnOnce(&str, &str) -> sdk_messaging::MessagingConfig) {
    let Some((spec, out)) = child_spec() else {
        return;
    };
    let (url, id) = spec.split_once(' ').expect("url and id");
    let messaging = Messaging::connect("events", &config(url, id))
        .await
        .expect("connect");
    let (group, pattern) = (format!("fulfilment{id}"), format!("o{id}.order.placed"));
    consume_forever(messaging, &group, &pattern, &out).await;
}

/// The consuming process's body: handles `pattern` for `group`, writing each event's `n`
/// to `out` before the handler returns (so before the ack), until killed.
pub async fn consume_forever(messaging: Messaging, group: &str, pattern: &str, out: &Path) {
    let file = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .expect("output file"),
    ));
    let _server = messaging
        .server(group)
        .event_pattern(
            pattern,
            move |event: serde_json::Value, _: MessageContext| {
                let file = file.clone();
                async move {
                    let n = event["n"].as_u64().unwrap_or(u64::MAX);
                    // One write per line: `writeln!` may split it in two, and a
                    // `kill -9` between them would glue this number to the next one.
                    file.lock()
                        .expect("lock")
                        .write_all(format!("{n}\n").as_bytes())
                        .expect("recorded");
                    Ok(())
                }
            },
        )
        .start()
        .await
        .expect("started");
    println!("consuming");
    std::future::pending::<()>().await;
}

/// The consuming process a durability test starts: the ignored test that runs it and what
/// it is told.
#[derive(Clone, Copy, Debug)]
pub struct Consumer<'a> {
    /// The ignored test calling [`consume_forever`], as `module_path!()` names its module
    /// (`it::nats_durability`); its function is `consumer_process`.
    pub module: &'a str,
    /// The transport-specific spec it reads with [`child_spec`].
    pub spec: &'a str,
}

/// Starts the test binary's `consumer` (an ignored test calling [`consume_forever`]) as a
/// child process, and waits until it consumes.
pub async fn start_consumer(consumer: &Consumer<'_>, out: &Path) -> Child {
    // libtest names a test by its path below the crate: the crate's name goes.
    let module = consumer
        .module
        .split_once("::")
        .map_or(consumer.module, |(_, below)| below);
    let test = format!("{module}::consumer_process");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", &test, "--ignored", "--nocapture"])
        .env(CHILD, format!("{} {}", consumer.spec, out.display()))
        .stdout(Stdio::piped())
        .stderr(consumer_log(out))
        .kill_on_drop(true)
        .spawn()
        .expect("start the consumer process");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("consuming") {
                return;
            }
        }
    })
    .await
    .expect("the consumer starts");
    child
}

/// Where a consuming process's stderr goes: `consumer.log` beside `out` (appended to by
/// each), printed when the test fails.
fn consumer_log(out: &Path) -> Stdio {
    let file = out.parent().and_then(|dir| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("consumer.log"))
            .ok()
    });
    file.map_or_else(Stdio::null, Stdio::from)
}

/// The last lines of each `.log` file beside `out`: what the broker and the consumers said.
fn logs_beside(out: &Path) -> String {
    let Some(Ok(entries)) = out.parent().map(std::fs::read_dir) else {
        return String::new();
    };
    let mut text = String::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            text.push_str(&format!("--- {}:\n{tail}\n", path.display()));
        }
    }
    text
}

/// Emits events `0..count` to `pattern`, 32 at a time, counting acknowledged ones in
/// `acked`; resolves to each number with its result.
pub fn emit_all(
    messaging: &Messaging,
    pattern: &str,
    count: usize,
    acked: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<(u64, ServiceResult<()>)>> {
    let client = messaging.client();
    let pattern = pattern.to_owned();
    tokio::spawn(async move {
        futures_util::stream::iter(0..count)
            .map(|n| {
                let (client, pattern, acked) = (client.clone(), pattern.clone(), acked.clone());
                async move {
                    let result = client.emit(&pattern, &serde_json::json!({ "n": n })).await;
                    if result.is_ok() {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    (n as u64, result)
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
    })
}

/// The numbers whose `emit` was acknowledged.
fn acknowledged(results: &[(u64, ServiceResult<()>)]) -> BTreeSet<u64> {
    results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| *n)
        .collect()
}

/// The numbers the consuming processes wrote.
pub fn handled(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits until every acknowledged event is handled (at most `limit`), then asserts none
/// was lost and most were acknowledged, and prints the counts.
pub async fn assert_nothing_lost(
    results: &[(u64, ServiceResult<()>)],
    out: &Path,
    limit: Duration,
) {
    let acknowledged = acknowledged(results);
    let refused: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
        .collect();
    let seen = || handled(out).into_iter().collect::<BTreeSet<u64>>();
    let _ = until(limit, || acknowledged.is_subset(&seen())).await;
    let all = handled(out);
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    let lost: Vec<&u64> = acknowledged.difference(&unique).collect();
    eprintln!(
        "acknowledged {}, refused with a typed error {}, handled {} ({} unique, {} duplicates removed), lost {}",
        acknowledged.len(),
        refused.len(),
        all.len(),
        unique.len(),
        all.len() - unique.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "lost {} acknowledged events, the first {:?}\n{}",
        lost.len(),
        &lost[..lost.len().min(20)],
        logs_beside(out)
    );
    assert!(
        acknowledged.len() >= results.len() * 9 / 10,
        "most emits should outlast a restart: {} acknowledged; refusals: {:?}",
        acknowledged.len(),
        refused.iter().take(3).collect::<Vec<_>>()
    );
}

/// The scenario, over a connection to a broker the caller can restart: starts the
/// consuming process, emits `count` events to `pattern`, restarts the broker (`restart`)
/// once 30 % are acknowledged, kills the consuming process with `kill -9` at 60 % and starts
/// another (as `replace` says), and asserts that every acknowledged event was handled.
pub async fn survive<F, Fut>(
    messaging: &Messaging,
    pattern: &str,
    consumer: &Consumer<'_>,
    out: &Path,
    count: usize,
    restart: F,
    replace: Replace,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let spec = consumer;
    let mut consumer = start_consumer(spec, out).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let emitting = emit_all(messaging, pattern, count, acked.clone());
    let at = |n: usize| {
        let acked = acked.clone();
        move || acked.load(Ordering::Relaxed) >= n
    };
    assert!(until(Duration::from_secs(120), at(count * 3 / 10)).await);
    restart().await;
    assert!(until(Duration::from_secs(120), at(count * 6 / 10)).await);
    consumer.start_kill().expect("kill -9 the consumer");
    let _ = consumer.wait().await;
    tokio::time::sleep(replace.killed_after).await;
    let mut consumer = start_consumer(spec, out).await;
    let results = emitting.await.expect("the emitter");
    if let Some(stalled_after) = replace.stalled_after {
        consumer = drain(&results, out, spec, consumer, stalled_after).await;
    }
    assert_nothing_lost(&results, out, Duration::from_secs(120)).await;
    consumer.start_kill().expect("stop the consumer");
}

/// When the consuming process is replaced.
#[derive(Clone, Copy, Debug)]
pub struct Replace {
    /// How long after the `kill -9` its replacement starts.
    pub killed_after: Duration,
    /// Replace a consumer that handled nothing new for this long while acknowledged events
    /// were still unhandled (`None`: never).
    pub stalled_after: Option<Duration>,
}

impl Replace {
    /// At once, and never for a stall.
    pub const AT_ONCE: Replace = Replace {
        killed_after: Duration::ZERO,
        stalled_after: None,
    };
}

/// Waits (up to 4 minutes) until every acknowledged event was handled, replacing the
/// consuming process whenever it handled nothing for `stalled_after`; prints how often.
async fn drain(
    results: &[(u64, ServiceResult<()>)],
    out: &Path,
    spec: &Consumer<'_>,
    mut consumer: Child,
    stalled_after: Duration,
) -> Child {
    let acknowledged = acknowledged(results);
    let (limit, mut replaced) = (tokio::time::Instant::now() + Duration::from_secs(240), 0);
    let (mut count, mut progressed) = (0, tokio::time::Instant::now());
    while tokio::time::Instant::now() < limit {
        let lines = handled(out);
        let written = lines.len();
        if acknowledged.is_subset(&lines.into_iter().collect()) {
            break;
        }
        if written != count {
            (count, progressed) = (written, tokio::time::Instant::now());
        } else if progressed.elapsed() >= stalled_after {
            consumer.start_kill().expect("kill -9 the stalled consumer");
            let _ = consumer.wait().await;
            consumer = start_consumer(spec, out).await;
            (replaced, progressed) = (replaced + 1, tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("stalled consumers replaced: {replaced}");
    consumer
}

/// `config` made to outlast a restart: up to `attempts` attempts within `timeout`, a retry
/// budget that allows them, and no breaker (these tests count losses, not refusals).
pub fn patient(
    config: sdk_messaging::MessagingConfig,
    attempts: u32,
    timeout: Duration,
) -> sdk_messaging::MessagingConfig {
    let retry = sdk::retry::RetryConfig::new()
        .max_attempts(attempts)
        .budget(sdk::retry::BudgetConfig::new().min_per_second(10_000));
    config
        .timeout(timeout)
        .retry(retry)
        .circuit_breaker(sdk::circuit_breaker::BreakerConfig::new().enabled(false))
}

/// Stops a broker (`stop`), checks that `messaging`'s health says down, starts it again
/// (`start`) and checks that the health says up; returns what `start` gave.
pub async fn bounce<S, F, Fut, T>(messaging: &Messaging, stop: S, start: F) -> T
where
    S: std::future::Future<Output = ()>,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    stop.await;
    let down = || !messaging.health().connected;
    assert!(
        until(Duration::from_secs(10), down).await,
        "health says down"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = start().await;
    let up = || messaging.health().connected;
    assert!(until(Duration::from_secs(30), up).await, "and up again");
    started
}
