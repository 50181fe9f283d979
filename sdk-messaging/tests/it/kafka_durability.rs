//! Nothing acknowledged is lost on Kafka: 10,000 events emitted while a tansu broker of the
//! test's own (SQLite storage in a directory of the test's) is killed with `kill -9`
//! mid-stream and started again, and the consuming process is killed with `kill -9` and
//! started again (its partitions go to the next one after the session timeout, from the
//! last committed offset). Every event whose `emit` returned `Ok` is handled at least
//! once; duplicates are removed by number.
//!
//! The broker is the tansu binary `scripts/test` builds with its `libsql` engine, named by
//! `SDK_TEST_TANSU_SQLITE`.
#![cfg(feature = "kafka")]

use crate::support;

use std::{path::Path, sync::Arc, time::Duration};

use crate::support::durability;
use sdk_messaging::{KafkaSettings, Messaging, MessagingConfig, TransportKind};
use tokio::process::{Child, Command};

const EVENTS: usize = 10_000;
/// The consumers' session timeout: long, because tansu on SQLite, loaded by 10,000 writes and
/// a restart, has been seen answering a heartbeat (or a metadata request) only after more
/// than 6 s, and then drops members that are alive.
const SESSION: Duration = Duration::from_secs(30);
/// Long enough for tansu to count a member silent since a kill as gone.
const STALE: Duration = Duration::from_secs(31);

/// A tansu broker of the test's own on `port`, keeping its data in `dir/tansu.db`.
struct Tansu {
    child: Child,
}

impl Tansu {
    async fn start(binary: &Path, port: u16, dir: &Path) -> Tansu {
        let listener = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://tansu.db"])
            // Its group coordinator's decisions, in broker.log (printed if the test fails);
            // SDK_TEST_TANSU_LOG sets another filter.
            .env(
                "RUST_LOG",
                std::env::var("SDK_TEST_TANSU_LOG")
                    .unwrap_or_else(|_| "warn,tansu_broker::coordinator=info".into()),
            );
        Tansu {
            child: support::spawn_listening(&mut command, port).await,
        }
    }

    /// Kills it with `kill -9` and waits for it to be gone.
    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The tansu binary with a storage engine that keeps data, or `None` (after saying why;
/// with `CI` set, a failure).
fn tansu_binary() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("SDK_TEST_TANSU_SQLITE").map(std::path::PathBuf::from);
    match found {
        Some(path) if path.exists() => Some(path),
        _ => {
            sdk_test_support::skip(
                "SDK_TEST_TANSU_SQLITE names no tansu binary (scripts/test builds one)",
            );
            None
        }
    }
}

fn config(url: &str, id: &str) -> MessagingConfig {
    MessagingConfig::new(TransportKind::Kafka, url).kafka(
        KafkaSettings::new()
            .topic_prefix(format!("dur{id}"))
            .session_timeout(SESSION),
    )
}

/// The consuming process (run by the test below as a child; skipped otherwise).
#[tokio::test]
#[ignore = "run by zero_loss_through_a_broker_restart_and_a_killed_consumer as a child process"]
async fn consumer_process() {
    durability::consume_as_child(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_loss_through_a_broker_restart_and_a_killed_consumer() {
    if durability::child_spec().is_some() {
        return;
    }
    let Some(binary) = tansu_binary() else {
        return;
    };
    let port = support::free_port();
    let id = support::unique("d");
    let dir = std::env::temp_dir().join(format!("sdk-kafka-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("handled.txt");
    let url = format!("kafka://127.0.0.1:{port}");
    let spec = format!("{url} {id}");
    let broker = Arc::new(tokio::sync::Mutex::new(Some(
        Tansu::start(&binary, port, &dir).await,
    )));

    let config = durability::patient(config(&url, &id), 20, Duration::from_secs(30));
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    let (running, health, store) = (broker.clone(), messaging.clone(), dir.clone());
    let restart = move || async move {
        let mut running = running.lock().await;
        let killed = running.take().expect("running").kill();
        let started = durability::bounce(&health, killed, || Tansu::start(&binary, port, &store));
        *running = Some(started.await);
    };
    let pattern = format!("o{id}.order.placed");
    // The killed consumer's replacement starts once its session ran out, and a consumer
    // that makes no progress for 60 s is replaced: tansu 0.6's group coordinator can leave a
    // group with no partition assigned, or its members unable to stay in it, after a broker
    // restart or a member's death (see the guide's "The tests' broker", docs/guide/messaging.md). Replacements are
    // counted and printed; what is asserted is that nothing acknowledged is lost.
    let after = durability::Replace {
        killed_after: STALE,
        stalled_after: Some(Duration::from_secs(60)),
    };
    let consumer = durability::Consumer {
        module: module_path!(),
        spec: &spec,
    };
    durability::survive(
        &messaging, &pattern, &consumer, &out, EVENTS, restart, after,
    )
    .await;
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `health().connected` follows the broker: down within 3 s of a `kill -9` (about 2 s: a
/// quiet second, then a probe of up to 900 ms), up again once it is back on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_down_while_the_broker_is_gone() {
    let Some(binary) = tansu_binary() else {
        return;
    };
    let port = support::free_port();
    let id = support::unique("h");
    let dir = std::env::temp_dir().join(format!("sdk-kafka-{id}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let tansu = Tansu::start(&binary, port, &dir).await;
    let url = format!("kafka://127.0.0.1:{port}");
    let messaging = Messaging::connect("health", &config(&url, &id))
        .await
        .expect("connect");
    let connected = |want: bool, within: Duration| {
        let messaging = messaging.clone();
        async move {
            let until = tokio::time::Instant::now() + within;
            while tokio::time::Instant::now() < until {
                if messaging.health().connected == want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(
        connected(true, Duration::from_secs(10)).await,
        "up at first"
    );
    tansu.kill().await;
    // The outage lasted 3 s, and health never said so.
    assert!(
        connected(false, Duration::from_secs(3)).await,
        "down within 3 s of the broker's death"
    );
    let tansu = Tansu::start(&binary, port, &dir).await;
    assert!(
        connected(true, Duration::from_secs(15)).await,
        "up again once the broker is back"
    );
    tansu.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
