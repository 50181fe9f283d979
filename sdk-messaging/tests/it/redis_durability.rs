//! Nothing acknowledged is lost on Redis: 10,000 events emitted while a Redis of the test's
//! own (append-only file, fsync on every write) is killed with `kill -9` mid-stream and
//! started again, and the consuming process is killed with `kill -9` and started again
//! (its unsettled entries are claimed by the next one after `ack_wait`). Every event whose
//! `emit` returned `Ok` is handled at least once; duplicates are removed by number.
//!
//! And a Redis that comes back empty (no persistence) gets its streams, groups and
//! bindings again from the consumers, without a restart of theirs.
#![cfg(feature = "redis")]

use crate::support;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::support::durability;
use sdk_messaging::{MessageContext, Messaging, MessagingConfig, RedisSettings, TransportKind};
use tokio::process::{Child, Command};

const EVENTS: usize = 10_000;

/// A `redis-server` of the test's own on `port`, keeping its data in `dir` (or nothing).
pub(crate) struct RedisProcess {
    child: Child,
}

impl RedisProcess {
    pub(crate) async fn start(port: u16, dir: Option<&Path>) -> RedisProcess {
        let mut command = Command::new(redis_server());
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        RedisProcess {
            child: support::spawn_listening(&mut command, port).await,
        }
    }

    /// Kills it with `kill -9` and waits for it to be gone.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn redis_server() -> PathBuf {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// Whether the test can run: CI must have `redis-server`; elsewhere it may be missing.
pub(crate) fn have_redis_server() -> bool {
    let found = std::process::Command::new(redis_server())
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        sdk_test_support::skip("redis-server is not installed");
    }
    found
}

fn config(url: &str, id: &str) -> MessagingConfig {
    MessagingConfig::new(TransportKind::Redis, url).redis(
        RedisSettings::new()
            .prefix(&format!("dur{id}"))
            .ack_wait(Duration::from_secs(2)),
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
    if durability::child_spec().is_some() || !have_redis_server() {
        return;
    }
    let port = support::free_port();
    let id = support::unique("d");
    let dir = std::env::temp_dir().join(format!("sdk-redis-{id}"));
    let out = dir.join("handled.txt");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("redis://127.0.0.1:{port}");
    let spec = format!("{url} {id}");
    let store = dir.join("data");
    std::fs::create_dir_all(&store).expect("dir");
    let redis = Arc::new(tokio::sync::Mutex::new(Some(
        RedisProcess::start(port, Some(&store)).await,
    )));

    let config = durability::patient(config(&url, &id), 20, Duration::from_secs(30));
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    let (running, health) = (redis.clone(), messaging.clone());
    let restart = move || async move {
        let mut running = running.lock().await;
        let killed = running.take().expect("running").kill();
        let started =
            durability::bounce(&health, killed, || RedisProcess::start(port, Some(&store)));
        *running = Some(started.await);
    };
    let pattern = format!("o{id}.order.placed");
    durability::survive(
        &messaging,
        &pattern,
        &durability::Consumer {
            module: module_path!(),
            spec: &spec,
        },
        &out,
        EVENTS,
        restart,
        durability::Replace::AT_ONCE,
    )
    .await;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_back_empty_gets_its_groups_and_bindings_again() {
    if !have_redis_server() {
        return;
    }
    let port = support::free_port();
    let id = support::unique("e");
    let url = format!("redis://127.0.0.1:{port}");
    let redis = RedisProcess::start(port, None).await;
    let messaging =
        Messaging::connect("events", &config(&url, &id).timeout(Duration::from_secs(2)))
            .await
            .expect("connect");
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let _server = messaging
        .server("inventory")
        .event_pattern("order.*", move |_: serde_json::Value, _: MessageContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .message_pattern("stock.check", |sku: String, _: MessageContext| async move {
            Ok(format!("{sku}: 3 left"))
        })
        .start()
        .await
        .expect("started");
    let client = messaging.client();
    client
        .emit("order.placed", &serde_json::json!({ "n": 1 }))
        .await
        .expect("stored");
    assert!(
        support::poll::until(Duration::from_secs(10), || handled.load(Ordering::SeqCst)
            == 1)
        .await
    );

    redis.kill().await;
    let _redis = RedisProcess::start(port, None).await;
    // The consumers find their groups gone and bind again; until then, sends are refused
    // with a typed error, never accepted and dropped.
    let mut emitted = false;
    for _ in 0..100 {
        if client
            .emit("order.placed", &serde_json::json!({ "n": 2 }))
            .await
            .is_ok()
        {
            emitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emitted, "bound again within 10 s");
    assert!(
        support::poll::until(Duration::from_secs(10), || handled.load(Ordering::SeqCst)
            == 2)
        .await,
        "and the event handled"
    );
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(reply) = client.send::<_, String>("stock.check", &"sku-1").await {
            answer = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.as_deref(), Some("sku-1: 3 left"));
}
