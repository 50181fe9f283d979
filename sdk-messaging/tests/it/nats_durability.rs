//! Nothing acknowledged is lost on NATS: 10,000 events emitted while the NATS server (a
//! process of the test's own, JetStream on disk) is restarted mid-stream and the consuming
//! process is killed with `kill -9` and started again. Every event whose `emit` returned
//! `Ok` is handled at least once; duplicates are counted and removed by number.
#![cfg(feature = "nats")]

use crate::support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::support::durability;
use sdk_messaging::{Messaging, MessagingConfig, NatsSettings, TransportKind};
use tokio::process::{Child, Command};

const EVENTS: usize = 10_000;

/// A `nats-server` of the test's own, with JetStream storing in `dir`.
struct NatsProcess {
    child: Child,
}

impl NatsProcess {
    async fn start(port: u16, dir: &Path) -> NatsProcess {
        let mut command = Command::new(nats_server());
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir);
        NatsProcess {
            child: support::spawn_listening(&mut command, port).await,
        }
    }

    /// Stops it as an operator would (SIGTERM) and waits for it to exit.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn nats_server() -> PathBuf {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("nats-server"))
}

fn settings(id: &str) -> NatsSettings {
    NatsSettings::new()
        .streams(
            &format!("DUR_{id}"),
            &format!("ev{id}"),
            &format!("DUR_DEAD_{id}"),
            &format!("dead{id}"),
        )
        .ack_wait(Duration::from_secs(2))
}

/// The consuming process (run by the test below as a child; skipped otherwise).
#[tokio::test]
#[ignore = "run by zero_loss_through_a_broker_restart_and_a_killed_consumer as a child process"]
async fn consumer_process() {
    durability::consume_as_child(|url, id| {
        MessagingConfig::new(TransportKind::Nats, url).nats(settings(id))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_loss_through_a_broker_restart_and_a_killed_consumer() {
    if durability::child_spec().is_some() {
        return;
    }
    let port = support::free_port();
    let id = support::unique("d");
    let dir = std::env::temp_dir().join(format!("sdk-nats-{id}"));
    let out = dir.join("handled.txt");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("nats://127.0.0.1:{port}");
    let spec = format!("{url} {id}");
    let store = dir.join("js");
    let nats = std::sync::Arc::new(tokio::sync::Mutex::new(Some(
        NatsProcess::start(port, &store).await,
    )));

    let config = MessagingConfig::new(TransportKind::Nats, &url).nats(settings(&id));
    let messaging = Messaging::connect(
        "events",
        &durability::patient(config, 20, Duration::from_secs(30)),
    )
    .await
    .expect("connect");
    let (running, health) = (nats.clone(), messaging.clone());
    let restart = move || async move {
        let mut running = running.lock().await;
        let stopped = running.take().expect("running").stop();
        let started = durability::bounce(&health, stopped, || NatsProcess::start(port, &store));
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
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}
