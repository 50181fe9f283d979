//! The Redis transport against the machine's Redis (127.0.0.1:6379), through the checks
//! every transport passes (`support/suite.rs`), plus what only Redis needs: bindings that
//! survive Redis coming back empty.
#![cfg(feature = "redis")]

mod support;

use std::time::Duration;

use redis::{streams::StreamRangeReply, AsyncCommands, Value};
use sdk_messaging::{Messaging, MessagingConfig, RedisSettings, TransportKind};
use support::suite::{self, DeadLetter};

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
pub fn decode(frame: &[u8]) -> (Vec<(String, String)>, String) {
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

#[tokio::test]
async fn a_send_is_answered_with_the_correlation_id_and_headers_passed() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    suite::sends_carry_headers_and_correlation_ids(&setup.messaging, &setup.ns, &setup.group).await;
    setup.cleanup().await;
}

#[tokio::test]
async fn no_responder_a_slow_one_and_a_failing_one_end_in_typed_errors() {
    let Some(setup) = setup(Duration::from_secs(4)).await else {
        return;
    };
    suite::failures_are_typed_and_bounded(&setup.messaging, &setup.ns, &setup.group).await;
    setup.cleanup().await;
}

#[tokio::test]
async fn events_reach_the_most_specific_handler_once_each() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    suite::events_reach_the_most_specific_handler(&setup.messaging, &setup.ns, &setup.group).await;
    setup.cleanup().await;
}

#[tokio::test]
async fn failed_events_come_back_and_bad_ones_go_to_the_dead_letters() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let prefix = setup.prefix.clone();
    suite::failed_events_come_back_and_bad_ones_die(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        || dead_letters(prefix.clone()),
    )
    .await;
    setup.cleanup().await;
}

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
async fn a_broker_that_is_not_there_is_a_typed_error() {
    suite::an_absent_broker_is_a_typed_error(TransportKind::Redis, "redis").await;
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_settled_at_once() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let prefix = setup.prefix.clone();
    suite::panicking_handlers_are_failed_attempts(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        || dead_letters(prefix.clone()),
    )
    .await;
    setup.cleanup().await;
}

#[tokio::test]
async fn a_retry_reaches_only_the_group_that_failed() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    suite::a_retry_reaches_only_the_group_that_failed(&setup.messaging, &setup.ns, &setup.group)
        .await;
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

#[tokio::test]
async fn a_target_down_defers_without_spending_attempts() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let prefix = setup.prefix.clone();
    suite::a_target_down_defers_without_spending_attempts(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        || dead_letters(prefix.clone()),
    )
    .await;
    setup.cleanup().await;
}

#[tokio::test]
async fn a_stopped_server_means_no_responder_at_once() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    suite::a_stopped_server_means_no_responder_at_once(&setup.messaging, &setup.ns, &setup.group)
        .await;
    setup.cleanup().await;
}
