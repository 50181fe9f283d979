//! Deliveries against a real receiver: the retry schedule and `Retry-After`, `410 Gone`,
//! dead letters and redrive, secret rotation, replay order and ids.

use crate::support;

use std::time::{Duration, SystemTime};

use crate::support::{user, Answer, Bus, Database, Receiver};
use reqwest::Method;
use sdk_events::signature::{verify, Secret, DEFAULT_TOLERANCE};
use serde_json::json;

fn gaps(seen: &[support::Seen]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_on_the_schedule_with_the_same_id() {
    for db in support::databases() {
        // 200 ms, then 1 s (±20 %, looked for every 50 ms): apart enough that each wait is
        // told from the other however slowly the machine runs.
        let bus = Bus::start(&db, &["--schedule", "200ms,1s"]).await;
        let receiver = Receiver::start().await;
        let (token, _) = bus.welcome(&receiver.url).await;
        receiver.then(&[Answer(500, None), Answer(502, None)]);
        let (status, published) = bus.publish(&token, "user.created", user(1)).await;
        assert_eq!(status, 201);
        let seen = receiver.wait_for(3, Duration::from_secs(10)).await;
        assert_eq!(seen.len(), 3, "{}: two failures, then delivered", db.name);
        let ids: Vec<_> = seen.iter().map(|s| s.header("webhook-id")).collect();
        assert!(
            ids.iter()
                .all(|id| id == published["id"].as_str().unwrap_or("?")),
            "{ids:?}"
        );
        let gaps = gaps(&seen);
        assert!(
            gaps[0] >= Duration::from_millis(160) && gaps[0] < Duration::from_millis(800),
            "the first wait is about 200 ms: {gaps:?}"
        );
        assert!(
            gaps[1] >= Duration::from_millis(800) && gaps[1] < Duration::from_secs(3),
            "the second about 1 s: {gaps:?}"
        );
        let bus = &bus;
        let delivered = support::poll(Duration::from_secs(10), || async move {
            let delivered = bus.deliveries("welcome", "delivered").await;
            (delivered.len() == 1).then_some(delivered)
        })
        .await
        .expect("recorded as delivered");
        assert_eq!(delivered[0]["attempts"], 3);
        // The next attempt would have come 1 s after the last: none does.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(receiver.seen().len(), 3, "nothing after the success");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let db = support::sqlite();
    // The schedule says 100 ms; the receiver asks for 2 s.
    let bus = Bus::start(&db, &["--schedule", "100ms,5s"]).await;
    let receiver = Receiver::start().await;
    let (token, _) = bus.welcome(&receiver.url).await;
    receiver.then(&[Answer(503, Some(2))]);
    bus.publish(&token, "user.created", user(1)).await;
    let seen = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 2);
    let gap = gaps(&seen)[0];
    assert!(
        gap >= Duration::from_millis(1990) && gap < Duration::from_millis(4500),
        "the second attempt came {gap:?} later, not after the 2 s asked for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_subscription() {
    let db = support::sqlite();
    let bus = Bus::start(&db, &[]).await;
    let receiver = Receiver::start().await;
    let (token, _) = bus.welcome(&receiver.url).await;
    receiver.then(&[Answer(410, None)]);
    bus.publish(&token, "user.created", user(1)).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let bus = &bus;
    let dead = support::poll(Duration::from_secs(10), || async move {
        let dead = bus.deliveries("welcome", "dead").await;
        let subscriptions = bus.admin_get("/v1/subscriptions").await;
        let enabled = &subscriptions["subscriptions"][0]["enabled"];
        (dead.len() == 1 && enabled == false).then_some(dead)
    })
    .await
    .expect("dead-lettered, and the subscription disabled");
    assert_eq!(dead[0]["last_status"], 410);
    let (_, answer) = bus.publish(&token, "user.created", user(2)).await;
    assert_eq!(
        answer["deliveries"], 0,
        "a disabled subscription gets nothing new"
    );
    assert_eq!(receiver.seen().len(), 1);

    // Turned on again and re-driven, the dead delivery arrives.
    let (status, _) = bus
        .call(
            Method::POST,
            "/v1/subscriptions/welcome/enable",
            Some(support::ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204);
    bus.admin_post("/v1/redrive", json!({"subscription": "welcome"}), 200)
        .await;
    assert_eq!(receiver.wait_for(2, Duration::from_secs(10)).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_failure_dead_letters_and_redrive_delivers() {
    for db in support::databases() {
        let bus = Bus::start(&db, &[]).await;
        let receiver = Receiver::start().await;
        let (token, _) = bus.welcome(&receiver.url).await;
        receiver.then(&[Answer(500, None), Answer(500, None), Answer(500, None)]);
        bus.publish(&token, "user.created", user(1)).await;
        receiver.wait_for(3, Duration::from_secs(10)).await;
        let mut dead = Vec::new();
        for _ in 0..50 {
            dead = bus.deliveries("welcome", "dead").await;
            if !dead.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(dead.len(), 1, "{}: dead after the third attempt", db.name);
        assert_eq!(dead[0]["attempts"], 3);
        assert_eq!(dead[0]["last_status"], 500);
        assert!(dead[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("gave up"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(receiver.seen().len(), 3, "no attempt after the last");

        let seq = dead[0]["seq"].as_i64().expect("seq");
        let answer = bus
            .admin_post(&format!("/v1/deliveries/{seq}/redrive"), json!({}), 200)
            .await;
        assert_eq!(answer["redriven"], 1);
        let seen = receiver.wait_for(4, Duration::from_secs(10)).await;
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[3].header("webhook-id"), seen[0].header("webhook-id"));
        let (status, _) = bus
            .call(
                Method::POST,
                &format!("/v1/deliveries/{seq}/redrive"),
                Some(support::ADMIN),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 404, "only dead deliveries are re-driven");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let db: Database = support::sqlite();
    let bus = Bus::start(&db, &[]).await;
    let receiver = Receiver::start().await;
    let (token, old) = bus.welcome(&receiver.url).await;
    let rotated = bus
        .admin_post(
            "/v1/subscriptions/welcome/secret",
            json!({"keep_previous_secs": 3600}),
            200,
        )
        .await;
    let new = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);
    bus.publish(&token, "user.created", user(1)).await;
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivery = &seen[0];
    assert_eq!(
        delivery.header("webhook-signature").matches("v1,").count(),
        2
    );
    for secret in [&old, &new] {
        let secret = Secret::parse(secret).expect("secret");
        let checked = verify(
            &[secret],
            &delivery.headers,
            &delivery.body,
            SystemTime::now(),
            DEFAULT_TOLERANCE,
        );
        assert!(checked.is_ok(), "{checked:?}");
    }
    // Once the old secret's time is up, only the new one signs.
    bus.admin_post(
        "/v1/subscriptions/welcome/secret",
        json!({"secret": new, "keep_previous_secs": 0}),
        200,
    )
    .await;
    bus.publish(&token, "user.created", user(2)).await;
    let seen = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        seen[1].header("webhook-signature").matches("v1,").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_in_order_with_the_original_ids() {
    for db in support::databases() {
        let bus = Bus::start(&db, &[]).await;
        let receiver = Receiver::start().await;
        let (token, _) = bus.welcome(&receiver.url).await;
        let mut ids = Vec::new();
        for n in 0..20 {
            let (_, published) = bus.publish(&token, "user.created", user(n)).await;
            ids.push(published["id"].as_str().expect("id").to_owned());
        }
        receiver.wait_for(20, Duration::from_secs(10)).await;
        let events = bus
            .admin_get("/v1/events?action=user.created&limit=1000")
            .await;
        let from = events["events"][0]["created_at"].clone();
        let replayed = bus
            .admin_post(
                "/v1/replay",
                json!({"subscription": "welcome", "from": from, "to": "2999-01-01T00:00:00Z"}),
                200,
            )
            .await;
        assert_eq!(replayed["queued"], 20, "{}", db.name);
        let seen = receiver.wait_for(40, Duration::from_secs(20)).await;
        assert_eq!(seen.len(), 40);
        let again: Vec<_> = seen[20..].iter().map(|s| s.header("webhook-id")).collect();
        assert_eq!(
            again, ids,
            "{}: replayed in publishing order, with the original ids",
            db.name
        );
    }
}

/// Checks `deliveries` with the `standardwebhooks` package from PyPI (installed by
/// `scripts/test`), each with each of `secrets`: how many verified, per secret.
fn python_verifies(deliveries: &[support::Seen], secrets: &[&str]) -> Option<Vec<usize>> {
    let Some(path) = std::env::var_os("SDK_TEST_PYTHONPATH") else {
        sdk_test_support::skip(
            "the independent verifier: SDK_TEST_PYTHONPATH is not set (scripts/test sets it)",
        );
        return None;
    };
    let cases: Vec<_> = deliveries
        .iter()
        .map(|d| {
            let headers: serde_json::Map<_, _> =
                ["webhook-id", "webhook-timestamp", "webhook-signature"]
                    .iter()
                    .map(|h| (h.to_string(), json!(d.header(h))))
                    .collect();
            json!({"headers": headers, "body": String::from_utf8_lossy(&d.body)})
        })
        .collect();
    let input = json!({"secrets": secrets, "cases": cases}).to_string();
    let script = r#"
import json, sys
from standardwebhooks import Webhook
data = json.load(sys.stdin)
counts = []
for secret in data["secrets"]:
    ok = 0
    for case in data["cases"]:
        try:
            Webhook(secret).verify(case["body"], case["headers"])
            ok += 1
        except Exception:
            pass
    counts.append(ok)
print(json.dumps(counts))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("python3 runs");
    assert!(output.status.success(), "the verifier failed");
    Some(serde_json::from_slice(&output.stdout).expect("counts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_verifies_with_an_independent_verifier_across_a_rotation() {
    for db in support::databases() {
        let bus = Bus::start(&db, &[]).await;
        let receiver = Receiver::start().await;
        let (token, old) = bus.welcome(&receiver.url).await;
        for n in 0..5 {
            bus.publish(&token, "user.created", user(n)).await;
        }
        receiver.wait_for(5, Duration::from_secs(10)).await;
        let rotated = bus
            .admin_post("/v1/subscriptions/welcome/secret", json!({}), 200)
            .await;
        let new = rotated["secret"].as_str().expect("secret").to_owned();
        for n in 5..10 {
            bus.publish(&token, "user.created", user(n)).await;
        }
        let seen = receiver.wait_for(10, Duration::from_secs(10)).await;
        assert_eq!(seen.len(), 10);
        let Some(counts) = python_verifies(&seen, &[&old, &new, "whsec_c29tZSBvdGhlciBzZWNyZXQ="])
        else {
            return;
        };
        // The old secret signs everything (it is kept a day); the new one what came after.
        assert_eq!(counts, [10, 5, 0], "{}", db.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_back_unfinished_deliveries_at_once() {
    let db = support::sqlite();
    // A minute's lease: without giving it back, the delivery would wait that long.
    let args = [
        "--lease-secs",
        "60",
        "--shutdown-grace-secs",
        "1",
        "--attempt-timeout-ms",
        "30000",
    ];
    let mut bus = Bus::start(&db, &args).await;
    let receiver = Receiver::start().await;
    let (token, _) = bus.welcome(&receiver.url).await;
    receiver.slow(Duration::from_secs(5));
    bus.publish(&token, "user.created", user(1)).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let status = bus.terminate().await;
    assert!(status.success(), "{status:?}");
    receiver.slow(Duration::ZERO);
    let restarted_at = tokio::time::Instant::now();
    let _bus = Bus::start(&db, &args).await;
    let seen = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        seen.len(),
        2,
        "the unfinished delivery is made again by the next dispatcher"
    );
    assert!(
        seen[1].at - restarted_at < Duration::from_secs(5),
        "without waiting out the lease"
    );
    assert_eq!(seen[0].header("webhook-id"), seen[1].header("webhook-id"));
}

/// A handler's breaker is the operator's to set: with `--handler-breaker-failures 1` one
/// failure opens it, and the retry waits for it (counted as `breaker_open`) instead of
/// being sent at once; `--handler-breaker-open-ms` bounds the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_breaker_is_configurable() {
    let db = support::sqlite();
    let bus = Bus::start(
        &db,
        &[
            "--handler-breaker-failures",
            "1",
            "--handler-breaker-open-ms",
            "1500",
        ],
    )
    .await;
    let receiver = Receiver::start().await;
    let (token, _) = bus.welcome(&receiver.url).await;
    receiver.then(&[Answer(500, None)]);
    let (status, _) = bus.publish(&token, "user.created", user(1)).await;
    assert_eq!(status, 201);
    let seen = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 2, "delivered once the breaker let it through");
    // The retry was due 100 ms after the failure; the open breaker held it until it
    // admitted a probe, ~1.5 s (not the 5 s a delivery waits at most).
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(1400) && gap < Duration::from_millis(4500),
        "{gap:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", bus.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sdk_events_attempts_total{outcome=\"breaker_open\"}")),
        "{metrics}"
    );
}
