//! The Redis transport against the machine's Redis (127.0.0.1:6379), through the checks
//! every transport passes (`support/suite.rs`), plus what only Redis needs: bindings that
//! survive Redis coming back empty.
#![cfg(feature = "redis")]

use crate::support;

use std::time::Duration;

use crate::support::suite::{self, DeadLetter};
use redis::{streams::StreamRangeReply, AsyncCommands, Value};
use sdk_messaging::{Messaging, MessagingConfig, RedisSettings, TransportKind};

const REDIS: &str = "127.0.0.1:6379";

/// A connection whose keys are under a prefix of its own, so tests never meet.
struct Setup {
    messaging: Messaging,
    ns: String,
    group: String,
    prefix: String,
}

async fn setup(timeout: Duration) -> Option<Setup> {
    support::broker_at("Redis", REDIS).await?;
    let id = support::unique("t");
    let prefix = format!("sdktest{id}");
    let config = MessagingConfig::new(TransportKind::Redis, format!("redis://{REDIS}"))
        .timeout(timeout)
        .redis(RedisSettings::new().prefix(&prefix));
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    Some(Setup {
        messaging,
        ns: format!("u{id}"),
        group: format!("g{id}"),
        prefix,
    })
}

async fn connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{REDIS}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

impl Setup {
    /// Where this test's dead letters are (what `dead_letters` reads).
    fn dead_key(&self) -> String {
        self.prefix.clone()
    }

    /// Deletes this test's keys.
    async fn cleanup(self) {
        let mut redis = connection().await;
        let keys: Vec<String> = redis
            .keys(format!("{}:*", self.prefix))
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis.del(keys).await;
        }
    }
}

/// A frame's headers and payload, as the transport stores them (4-byte length, headers as
/// JSON pairs, payload).
pub(crate) fn decode(frame: &[u8]) -> (Vec<(String, String)>, String) {
    let length = u32::from_be_bytes(frame[..4].try_into().expect("length")) as usize;
    let headers = serde_json::from_slice(&frame[4..4 + length]).expect("headers");
    (
        headers,
        String::from_utf8_lossy(&frame[4 + length..]).into_owned(),
    )
}

/// The dead letters in `<prefix>:dead`.
async fn dead_letters(prefix: String) -> Vec<DeadLetter> {
    let mut redis = connection().await;
    let entries: StreamRangeReply = redis
        .xrange_all(format!("{prefix}:dead"))
        .await
        .expect("xrange");
    let _: redis::RedisResult<()> = redis.del(format!("{prefix}:dead")).await;
    entries
        .ids
        .iter()
        .filter_map(|entry| match entry.map.get("m") {
            Some(Value::BulkString(frame)) => Some(decode(frame)),
            _ => None,
        })
        .map(|(headers, payload)| {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (
                header(sdk_messaging::headers::DEAD_PATTERN),
                header(sdk_messaging::headers::DEAD_REASON),
                payload,
            )
        })
        .collect()
}

suite::transport_suite!(test: tokio::test, timeout: Duration::from_secs(5), kind: TransportKind::Redis, scheme: "redis");

#[tokio::test]
async fn an_event_nobody_subscribed_to_is_refused_not_dropped() {
    let Some(setup) = setup(Duration::from_secs(2)).await else {
        return;
    };
    let err = setup
        .messaging
        .client()
        .emit(
            &format!("{}.nobody.cares", setup.ns),
            &serde_json::json!({}),
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            sdk::ServiceError::NoHealthyInstance {
                reason: sdk::balance::NoInstanceReason::NoResponder,
                ..
            }
        ),
        "{err:?}"
    );
    setup.cleanup().await;
}

#[tokio::test]
async fn poison_is_dead_lettered_and_the_next_event_handled() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let prefix = setup.prefix.clone();
    let group = setup.group.clone();
    suite::poison_is_dead_lettered(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        |pattern| {
            // An entry another program appended to the group's stream: no SDK frame.
            let stream = format!("{prefix}:ev:{group}:{pattern}");
            async move {
                let mut redis = connection().await;
                let _: String = redis
                    .xadd(stream, "*", &[("x", suite::POISON)])
                    .await
                    .expect("xadd");
            }
        },
        || dead_letters(prefix.clone()),
    )
    .await;
    setup.cleanup().await;
}

/// An event's appends read the bindings' version after them: a group bound after the
/// connection cached its routes still gets the next event, and a group that already had it
/// does not get it twice.
#[tokio::test]
async fn a_group_bound_since_the_routes_were_read_gets_the_next_event_once() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let pattern = format!("{}.order.placed", setup.ns);
    // Bound, then stopped: what is appended stays in the stream, to be counted.
    let bind = |messaging: Messaging, group: String| {
        let pattern = pattern.clone();
        async move {
            messaging
                .server(&group)
                .event_pattern(&pattern, |_: serde_json::Value, _| async { Ok(()) })
                .start()
                .await
                .expect("started")
                .shutdown()
                .await;
        }
    };
    let (first, second) = (format!("{}a", setup.group), format!("{}b", setup.group));
    bind(setup.messaging.clone(), first.clone()).await;
    let client = setup.messaging.client();
    let event = serde_json::json!({ "n": 1 });
    client.emit(&pattern, &event).await.expect("stored");
    // Bound by another connection: this one's cached routes do not know it.
    let other = Messaging::connect(
        "events",
        &MessagingConfig::new(TransportKind::Redis, format!("redis://{REDIS}"))
            .redis(RedisSettings::new().prefix(&setup.prefix)),
    )
    .await
    .expect("connect");
    bind(other, second.clone()).await;
    client.emit(&pattern, &event).await.expect("stored");
    let mut redis = connection().await;
    let stream = |group: &str| format!("{}:ev:{group}:{pattern}", setup.prefix);
    let first_len: usize = redis.xlen(stream(&first)).await.expect("xlen");
    let second_len: usize = redis.xlen(stream(&second)).await.expect("xlen");
    assert_eq!((first_len, second_len), (2, 1));
    setup.cleanup().await;
}
