//! Who serves which request pattern, so a `send` can say `NoResponder` at once. Kafka keeps
//! a request topic after its last server stopped, and its consumer groups say nothing
//! reliable of their members on every broker (tansu lists every group as empty), so the
//! servers say it themselves: each server of requests writes a heartbeat to the topic
//! `<prefix>.presence` (one partition) every [`HEARTBEAT`], keyed by its handler pattern,
//! with its instance id and how long it stays alive ([`ALIVE_FOR`]); a clean stop writes one
//! with no time left. A connection that sends requests reads the topic from its tail
//! (assigned, no group) once it sends its first.
//!
//! Only evidence counts: a pattern with no heartbeat read is taken as served (the deadline
//! still bounds the call); one whose every heartbeat ran out or left is not. So a server
//! that stops cleanly means `NoResponder` at once, one that dies within [`ALIVE_FOR`] of its
//! last heartbeat (plus a second for the clocks of two hosts).

use std::{
    collections::HashMap,
    sync::{Mutex, Weak},
    time::Duration,
};

use rdkafka::{
    consumer::{Consumer as _, StreamConsumer},
    message::OwnedHeaders,
    Message as _, Offset, TopicPartitionList,
};
use sdk::BoxError;
use sdk_base::sync::Unpoisoned as _;
use tokio::sync::mpsc;

use super::{header, KafkaBroker, Shared};
use crate::{envelope::now_ms, Pattern};

/// How often a server of requests says it is there.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long one heartbeat counts.
pub(super) const ALIVE_FOR: Duration = Duration::from_secs(6);
/// Clocks of two hosts may disagree this much.
const CLOCK_SLACK_MS: u64 = 1_000;
/// How far back a new reader starts: enough for every server's last heartbeats.
const TAIL: i64 = 10_000;

const INSTANCE: &str = "sdk-instance";
const ALIVE_MS: &str = "sdk-alive-ms";

/// One pattern's instances: instance → the time (ms since the epoch) it counts until.
type Heartbeats = HashMap<String, u64>;

/// What the heartbeats read so far say.
#[derive(Debug, Default)]
pub(super) struct Presence {
    /// Handler pattern (parsed once, when first heard of) → its instances' heartbeats:
    /// instance → the time (ms since the epoch) it counts until. A pattern whose instances
    /// all left or ran out stays, empty: the evidence that nobody serves it.
    live: Mutex<HashMap<String, (Pattern, Heartbeats)>>,
    /// Whether the reader was started.
    started: std::sync::atomic::AtomicBool,
    /// This connection's servers' heartbeat tasks, so a server's shutdown can wait for its
    /// "left" to be written (see [`Presence::leaving`]).
    beating: Mutex<Vec<Beating>>,
}

/// One server's heartbeat task, and whether that server stopped.
struct Beating {
    stopped: Box<dyn Fn() -> bool + Send + Sync>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Beating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beating").finish_non_exhaustive()
    }
}

impl Presence {
    /// Whether `subject` may be served: a heartbeat of a matching pattern still counts, or
    /// none was read at all.
    pub(super) fn served(&self, subject: &str) -> bool {
        let now = now_ms();
        let live = self.live.locked();
        let mut seen = false;
        for (pattern, instances) in live.values() {
            if pattern.matches(subject) {
                if instances.values().any(|until| *until > now) {
                    return true;
                }
                seen = true;
            }
        }
        !seen
    }

    /// Whether this is the first call (the reader is to be started).
    pub(super) fn first(&self) -> bool {
        !self.started.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Heartbeats `pattern` in a task until the server's deliveries (`closed`) are
    /// dropped, then says it left.
    pub(super) fn keep_beating<T: Send + 'static>(
        &self,
        broker: KafkaBroker,
        pattern: String,
        instance: String,
        closed: mpsc::Sender<T>,
    ) {
        let watched = closed.clone();
        let task = tokio::spawn(keep_beating(broker, pattern, instance, closed));
        let mut beating = self.beating.locked();
        beating.retain(|beating| !beating.task.is_finished());
        beating.push(Beating {
            stopped: Box::new(move || watched.is_closed()),
            task,
        });
    }

    /// Waits until every server that stopped has written that it left, so a `send` right
    /// after a clean shutdown is `NoResponder`, not a wait until the deadline. A server
    /// stops by dropping its deliveries; its task notices only once scheduled, which is why
    /// this looks at the channel, not at the task.
    pub(super) async fn leaving(&self) {
        let stopped: Vec<_> = {
            let mut beating = self.beating.locked();
            let (stopped, running) = std::mem::take(&mut *beating)
                .into_iter()
                .partition(|beating| (beating.stopped)());
            *beating = running;
            stopped
        };
        for beating in stopped {
            let _ = beating.task.await;
        }
    }

    fn record(&self, pattern: String, instance: String, until: u64) {
        let now = now_ms();
        let mut live = self.live.locked();
        let instances = match live.entry(pattern) {
            std::collections::hash_map::Entry::Occupied(known) => &mut known.into_mut().1,
            std::collections::hash_map::Entry::Vacant(new) => {
                let Ok(parsed) = Pattern::handler(new.key()) else {
                    return; // not a pattern: not the SDK's heartbeat
                };
                &mut new.insert((parsed, HashMap::new())).1
            }
        };
        instances.insert(instance, until);
        // Instances that left or ran out are forgotten; their pattern stays.
        instances.retain(|_, until| *until > now);
    }
}

/// The presence topic's name.
pub(super) fn topic(broker: &KafkaBroker) -> String {
    format!("{}.presence", broker.0.settings.topic_prefix)
}

/// Writes one heartbeat of `instance` serving `pattern`, counting for `alive`.
pub(super) async fn beat(
    broker: &KafkaBroker,
    pattern: &str,
    instance: &str,
    alive: Duration,
) -> Result<(), BoxError> {
    let topic = topic(broker);
    broker.create_topic(&topic, 1).await?;
    let millis = alive.as_millis().to_string();
    let headers = OwnedHeaders::new()
        .insert(header(INSTANCE, instance))
        .insert(header(ALIVE_MS, &millis));
    broker
        .produce(&topic, Some(pattern), headers, Some(&[]), Some(0))
        .await
}

/// Heartbeats `pattern` until `closed` (the server stopped), then says it left.
async fn keep_beating<T: Send>(
    broker: KafkaBroker,
    pattern: String,
    instance: String,
    closed: mpsc::Sender<T>,
) {
    loop {
        tokio::select! {
            () = closed.closed() => break,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
        if let Err(e) = beat(&broker, &pattern, &instance, ALIVE_FOR).await {
            tracing::debug!(%pattern, error = %e, "kafka presence heartbeat");
        }
    }
    if let Err(e) = beat(&broker, &pattern, &instance, Duration::ZERO).await {
        tracing::debug!(%pattern, error = %e, "kafka presence: could not say it left");
    }
    // This connection's own sends know at once, without waiting for its reader to read the
    // record back (which a loaded machine can delay past the next send). Only once the
    // reader runs: it reads the topic in order, so other instances' heartbeats are not
    // missed for long.
    let presence = &broker.0.presence;
    if presence.started.load(std::sync::atomic::Ordering::Acquire) {
        presence.record(pattern, instance, 0);
    }
}

/// Starts reading the presence topic into the broker's [`Presence`].
pub(super) fn start_reader(broker: &KafkaBroker) {
    let broker = broker.clone();
    tokio::spawn(async move {
        let topic = topic(&broker);
        if let Err(e) = broker.create_topic(&topic, 1).await {
            tracing::debug!(error = %e, "kafka presence topic");
        }
        let consumer: Result<StreamConsumer, _> =
            super::client_config(&broker.0.settings, &broker.0.brokers)
                .set("group.id", format!("{}.presence", broker.0.reply_topic))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create();
        let consumer = match consumer {
            Ok(consumer) => consumer,
            Err(e) => return tracing::warn!(error = %e, "kafka presence reader"),
        };
        let mut assignment = TopicPartitionList::new();
        let assigned = assignment
            .add_partition_offset(&topic, 0, Offset::OffsetTail(TAIL))
            .and_then(|()| consumer.assign(&assignment));
        if let Err(e) = assigned {
            return tracing::warn!(error = %e, "kafka presence reader");
        }
        read(std::sync::Arc::downgrade(&broker.0), consumer).await;
    });
}

async fn read(shared: Weak<Shared>, consumer: StreamConsumer) {
    // The consumer repeats its error while the brokers are gone (it reconnects by itself):
    // read again after the one backoff, growing while it lasts.
    let mut reconnect = sdk_base::backoff::Reconnect::new();
    loop {
        let record = match tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            Ok(Ok(record)) => {
                reconnect.succeeded();
                record
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "kafka presence reader");
                tokio::time::sleep(reconnect.failed()).await;
                continue;
            }
            Err(_) => {
                if shared.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let text = |name: &str| super::header_text(record.headers(), name).map(str::to_owned);
        let (Some(pattern), Some(instance), Some(alive)) = (
            record
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            text(INSTANCE),
            text(ALIVE_MS).and_then(|ms| ms.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let written = record
            .timestamp()
            .to_millis()
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or_else(now_ms);
        let until = match alive {
            0 => 0,
            alive => written + alive + CLOCK_SLACK_MS,
        };
        shared.presence.record(pattern, instance, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_evidence_says_nobody_serves() {
        let presence = Presence::default();
        assert!(
            presence.served("user.create"),
            "nothing read: taken as served"
        );
        let now = now_ms();
        presence.record("user.*".into(), "a".into(), now + 5_000);
        presence.record("user.*".into(), "b".into(), now + 5_000);
        assert!(presence.served("user.create"));
        presence.record("user.*".into(), "a".into(), 0); // a stopped
        assert!(presence.served("user.create"), "b still serves");
        presence.record("user.*".into(), "b".into(), now.saturating_sub(1)); // b's time ran out
        assert!(!presence.served("user.create"), "everyone left or ran out");
        assert!(
            presence.served("order.create"),
            "another pattern: nothing known"
        );
        presence.record("user.create".into(), "c".into(), now + 5_000);
        assert!(
            presence.served("user.create"),
            "a more specific server came"
        );
    }
}
