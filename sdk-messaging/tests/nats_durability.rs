//! Nothing acknowledged is lost on NATS: 10,000 events emitted while the NATS server (a
//! process of the test's own, JetStream on disk) is restarted mid-stream and the consuming
//! process is killed with `kill -9` and started again. Every event whose `emit` returned
//! `Ok` is handled at least once; duplicates are counted and removed by number.
#![cfg(feature = "nats")]

mod support;

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
use sdk::{
    circuit_breaker::BreakerConfig,
    retry::{BudgetConfig, RetryConfig},
};
use sdk_messaging::{MessageContext, Messaging, MessagingConfig, NatsSettings, TransportKind};
use tokio::process::{Child, Command};

const EVENTS: usize = 10_000;
const CHILD: &str = "SDK_TEST_NATS_CONSUMER";

/// A `nats-server` of the test's own, with JetStream storing in `dir`.
struct NatsProcess {
    child: Child,
}

impl NatsProcess {
    async fn start(port: u16, dir: &Path) -> NatsProcess {
        let child = Command::new(nats_server())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nats-server");
        for _ in 0..100 {
            if support::reachable(&format!("127.0.0.1:{port}")).await {
                return NatsProcess { child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on {port}");
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

/// The consuming process: handles `order.placed` events, writing each one's number to the
/// file before the handler returns (so before the ack).
#[tokio::test]
#[ignore = "run by zero_loss_through_a_broker_restart_and_a_killed_consumer as a child process"]
async fn consumer_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.splitn(3, ' ');
    let (url, id, out) = (
        parts.next().expect("url"),
        parts.next().expect("id"),
        parts.next().expect("file"),
    );
    let config = MessagingConfig::new(TransportKind::Nats, url).nats(settings(id));
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    let file = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .expect("output file"),
    ));
    let _server = messaging
        .server("fulfilment")
        .event_pattern(
            &format!("o{id}.order.placed"),
            move |event: serde_json::Value, _: MessageContext| {
                let file = file.clone();
                async move {
                    let n = event["n"].as_u64().unwrap_or(u64::MAX);
                    let mut file = file.lock().expect("lock");
                    writeln!(file, "{n}").expect("recorded");
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

async fn start_consumer(url: &str, id: &str, out: &Path) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "consumer_process", "--ignored", "--nocapture"])
        .env(CHILD, format!("{url} {id} {}", out.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the consumer process");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    tokio::time::timeout(Duration::from_secs(20), async {
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

fn handled(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_loss_through_a_broker_restart_and_a_killed_consumer() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let port = support::free_port();
    let id = support::unique("d");
    let dir = std::env::temp_dir().join(format!("sdk-nats-{id}"));
    let out = dir.join("handled.txt");
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("nats://127.0.0.1:{port}");
    let mut nats = Some(NatsProcess::start(port, &dir.join("js")).await);

    // Retries that outlast a restart: up to 20 attempts within 30 s, a budget that allows
    // them, and a breaker that stays closed (this test counts losses, not refusals).
    let retry = RetryConfig::new()
        .max_attempts(20)
        .budget(BudgetConfig::new().min_per_second(10_000));
    let config = MessagingConfig::new(TransportKind::Nats, &url)
        .timeout(Duration::from_secs(30))
        .retry(retry)
        .circuit_breaker(BreakerConfig::new().enabled(false))
        .nats(settings(&id));
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    let mut consumer = start_consumer(&url, &id, &out).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    let client = messaging.client();
    let pattern = format!("o{id}.order.placed");
    let emitting = tokio::spawn(async move {
        futures_util::stream::iter(0..EVENTS)
            .map(|n| {
                let (client, pattern, counter) = (client.clone(), pattern.clone(), counter.clone());
                async move {
                    let result = client.emit(&pattern, &serde_json::json!({ "n": n })).await;
                    match &result {
                        Ok(()) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if n % 500 == 0 => eprintln!("emit {n}: {e}"),
                        Err(_) => {}
                    }
                    (n as u64, result)
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
    });

    wait_until(
        || acked.load(Ordering::Relaxed) >= 3_000,
        Duration::from_secs(60),
    )
    .await;
    nats.take().expect("running").stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats = Some(NatsProcess::start(port, &dir.join("js")).await);
    wait_until(
        || acked.load(Ordering::Relaxed) >= 6_000,
        Duration::from_secs(60),
    )
    .await;
    consumer.start_kill().expect("kill -9 the consumer");
    let _ = consumer.wait().await;
    let mut consumer = start_consumer(&url, &id, &out).await;

    let results = emitting.await.expect("the emitter");
    let acknowledged: BTreeSet<u64> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| *n)
        .collect();
    let refused: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
        .collect();
    let seen = || handled(&out).into_iter().collect::<BTreeSet<u64>>();
    wait_until(|| acknowledged.is_subset(&seen()), Duration::from_secs(90)).await;
    let all = handled(&out);
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
    assert!(lost.is_empty(), "lost acknowledged events: {lost:?}");
    assert!(
        acknowledged.len() >= EVENTS * 9 / 10,
        "most emits should outlast a restart: {} acknowledged; refusals: {:?}",
        acknowledged.len(),
        refused.iter().take(3).collect::<Vec<_>>()
    );
    consumer.start_kill().expect("stop the consumer");
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn wait_until(done: impl Fn() -> bool, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not done within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
