//! A messaging connection's settings: `[messaging.NAME]` in the SDK's config file.
//!
//! ```toml
//! [messaging.events]
//! transport = "nats"                                   # nats, rabbitmq, redis or kafka
//! wire = "sdk"                                         # sdk; nestjs (redis, nats, rabbitmq); ascender (redis)
//! url = "${NATS_URL:nats://127.0.0.1:4222}"            # credentials in it are never printed
//! timeout = "10s"                                      # deadline of a send or emit, retries included
//!
//! [messaging.events.retry]                             # the SDK's retry settings and budget
//! max_attempts = 3
//!
//! [messaging.events.circuit_breaker]                   # one breaker per pattern
//! failure_threshold = 5
//!
//! [messaging.events.rabbitmq]                          # RabbitMQ only; the defaults
//! requests_exchange = "sdk.requests"                   # topic exchange, routing key = pattern
//! events_exchange = "sdk.events"                       # topic exchange, routing key = pattern
//! dead_letter_exchange = "sdk.dead"                    # direct exchange, routing key = group
//!
//! [messaging.events.redis]                             # Redis only; the defaults
//! prefix = "sdk"                                       # every key starts `sdk:`
//! ack_wait = "30s"                                     # a consumer's unsettled entries are claimed after this
//!
//! [messaging.events.nestjs]                            # wire = "nestjs" on RabbitMQ only
//! queue = ""                                           # the NestJS service's queue send/emit go to
//!
//! [messaging.events.nats]                              # NATS only; these are the defaults
//! stream = "SDK_EVENTS"                                # JetStream stream of emitted events...
//! subject_prefix = "events"                            # ...on subjects `events.<pattern>`
//! dead_letter_stream = "SDK_DEAD"                      # messages given up on...
//! dead_letter_prefix = "dead"                          # ...on `dead.<pattern>`
//! publish_dedup = false                                # true: JetStream drops republished ids too
//! ```

use std::{fmt, time::Duration};

use sdk::{circuit_breaker::BreakerConfig, config::de, retry::RetryConfig};

use crate::MessagingError;

/// Which broker a connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TransportKind {
    /// NATS: core request/reply for `send`, JetStream for `emit` (feature `nats`).
    Nats,
    /// RabbitMQ: durable queues with priorities, confirms, direct reply-to (feature
    /// `rabbitmq`).
    #[serde(rename = "rabbitmq")]
    RabbitMq,
    /// Redis: streams with consumer groups for events and requests, a reply list per
    /// connection (feature `redis`).
    Redis,
    /// Kafka: a topic per pattern, consumer groups, a reply topic per connection (feature
    /// `kafka`).
    Kafka,
}

/// Which wire format a connection speaks (see the `wire` module).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Wire {
    /// This SDK's own (durable events, groups, every header): the default.
    #[default]
    Sdk,
    /// NestJS microservices' (`@nestjs/microservices`): `{pattern, data, id}` requests and
    /// `{err, response, isDisposed, id}` replies, on Redis, NATS and RabbitMQ; on Kafka
    /// the value alone, with `kafka_correlationId` and `kafka_replyTopic` headers.
    #[serde(rename = "nestjs")]
    NestJs,
    /// The Ascender Framework's (`ascender-framework`): `{correlationId, payload}` on Redis;
    /// on Kafka the value alone, with a `correlationId` header.
    Ascender,
}

impl Wire {
    /// `sdk`, `nestjs` or `ascender`.
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Sdk => "sdk",
            Wire::NestJs => "nestjs",
            Wire::Ascender => "ascender",
        }
    }
}

/// One messaging connection's settings.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MessagingConfig {
    /// The broker.
    pub transport: TransportKind,
    /// The wire format (default this SDK's own): `nestjs` or `ascender` to talk with
    /// services written with those frameworks (see [`Wire`]).
    #[serde(default)]
    pub wire: Wire,
    /// Where it is (`nats://host:4222`); may hold credentials, which are never printed.
    pub url: String,
    /// The deadline of one `send` or `emit`, retries included (default 10 s).
    #[serde(default = "default_timeout", deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Retries and their budget (the SDK's settings; default 3 attempts).
    #[serde(default)]
    pub retry: RetryConfig,
    /// The breaker of each pattern (the SDK's settings, open 5 s rather than 60: a broker
    /// that restarts is back in seconds).
    #[serde(default = "default_breaker")]
    pub circuit_breaker: BreakerConfig,
    /// NATS settings.
    #[serde(default)]
    pub nats: NatsSettings,
    /// RabbitMQ settings.
    #[serde(default)]
    pub rabbitmq: RabbitSettings,
    /// Redis settings.
    #[serde(default)]
    pub redis: RedisSettings,
    /// Kafka settings.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// NestJS wire settings (`wire = "nestjs"`).
    #[serde(default)]
    pub nestjs: NestJsSettings,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_breaker() -> BreakerConfig {
    BreakerConfig::new().open_duration(Duration::from_secs(5))
}

impl MessagingConfig {
    /// A connection to `transport` at `url`, with the defaults.
    pub fn new(transport: TransportKind, url: impl Into<String>) -> Self {
        MessagingConfig {
            transport,
            wire: Wire::Sdk,
            url: url.into(),
            timeout: default_timeout(),
            retry: RetryConfig::default(),
            circuit_breaker: default_breaker(),
            nats: NatsSettings::default(),
            rabbitmq: RabbitSettings::default(),
            redis: RedisSettings::default(),
            kafka: KafkaSettings::default(),
            nestjs: NestJsSettings::default(),
        }
    }

    /// Sets the wire format (default this SDK's own).
    #[must_use]
    pub fn wire(mut self, wire: Wire) -> Self {
        self.wire = wire;
        self
    }

    /// Sets the deadline of one `send` or `emit` (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry settings (default: the SDK's).
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the breaker of each pattern (default: the SDK's, open 5 s).
    #[must_use]
    pub fn circuit_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.circuit_breaker = breaker;
        self
    }

    /// Sets the NATS settings.
    #[must_use]
    pub fn nats(mut self, nats: NatsSettings) -> Self {
        self.nats = nats;
        self
    }

    /// Sets the RabbitMQ settings.
    #[must_use]
    pub fn rabbitmq(mut self, rabbitmq: RabbitSettings) -> Self {
        self.rabbitmq = rabbitmq;
        self
    }

    /// Sets the Kafka settings.
    #[must_use]
    pub fn kafka(mut self, kafka: KafkaSettings) -> Self {
        self.kafka = kafka;
        self
    }

    /// Sets the NestJS wire's settings.
    #[must_use]
    pub fn nestjs(mut self, nestjs: NestJsSettings) -> Self {
        self.nestjs = nestjs;
        self
    }

    /// Sets the Redis settings.
    #[must_use]
    pub fn redis(mut self, redis: RedisSettings) -> Self {
        self.redis = redis;
        self
    }
}

impl fmt::Debug for MessagingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagingConfig")
            .field("transport", &self.transport)
            .field("wire", &self.wire)
            .field("url", &sdk_base::redact_url(&self.url))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("nats", &self.nats)
            .field("rabbitmq", &self.rabbitmq)
            .field("redis", &self.redis)
            .field("kafka", &self.kafka)
            .field("nestjs", &self.nestjs)
            .finish()
    }
}

/// Where NATS keeps events and dead letters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct NatsSettings {
    /// The JetStream stream of emitted events (default `SDK_EVENTS`).
    pub stream: String,
    /// Events go to `<subject_prefix>.<pattern>` (default `events`).
    pub subject_prefix: String,
    /// The stream of dead letters (default `SDK_DEAD`).
    pub dead_letter_stream: String,
    /// Dead letters go to `<dead_letter_prefix>.<pattern>` (default `dead`).
    pub dead_letter_prefix: String,
    /// How long a delivered event may stay unsettled before it is delivered again
    /// (default 30 s): longer than a handler runs.
    #[serde(deserialize_with = "de::duration")]
    pub ack_wait: Duration,
    /// Send the message id as JetStream's `Nats-Msg-Id`, so the stream itself stores a
    /// republished event once (default off). Consumers drop duplicates by message id
    /// either way; this adds a check in the broker for a publish retried after a lost
    /// confirmation, at a cost: on nats-server 2.9 it takes about a third off the
    /// publish rate (see docs/benchmarks.md).
    pub publish_dedup: bool,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            stream: "SDK_EVENTS".into(),
            subject_prefix: "events".into(),
            dead_letter_stream: "SDK_DEAD".into(),
            dead_letter_prefix: "dead".into(),
            ack_wait: Duration::from_secs(30),
            publish_dedup: false,
        }
    }
}

impl NatsSettings {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events in `stream`, on subjects `<prefix>.<pattern>`; dead letters in `dead_stream`
    /// on `<dead_prefix>.<pattern>` (tests give each run its own).
    #[must_use]
    pub fn streams(
        mut self,
        stream: &str,
        prefix: &str,
        dead_stream: &str,
        dead_prefix: &str,
    ) -> Self {
        self.stream = stream.into();
        self.subject_prefix = prefix.into();
        self.dead_letter_stream = dead_stream.into();
        self.dead_letter_prefix = dead_prefix.into();
        self
    }

    /// How long a delivered event may stay unsettled (default 30 s).
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Whether JetStream drops a republished event by its message id (`Nats-Msg-Id`;
    /// default off: consumers drop duplicates by id in any case).
    #[must_use]
    pub fn publish_dedup(mut self, on: bool) -> Self {
        self.publish_dedup = on;
        self
    }
}

/// Where RabbitMQ routes requests, events and dead letters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RabbitSettings {
    /// The topic exchange requests are published to (default `sdk.requests`).
    pub requests_exchange: String,
    /// The topic exchange events are published to (default `sdk.events`).
    pub events_exchange: String,
    /// The direct exchange of dead letters, routed by group (default `sdk.dead`).
    pub dead_letter_exchange: String,
    /// Delete a handler's queue this long after its last consumer left (`x-expires`;
    /// default: never). For groups that come and go; a deleted queue's messages are gone.
    #[serde(deserialize_with = "de::duration_or_off")]
    pub queue_expires: Option<Duration>,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        RabbitSettings {
            requests_exchange: "sdk.requests".into(),
            events_exchange: "sdk.events".into(),
            dead_letter_exchange: "sdk.dead".into(),
            queue_expires: None,
        }
    }
}

impl RabbitSettings {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exchanges of their own (tests give each run its own).
    #[must_use]
    pub fn exchanges(mut self, requests: &str, events: &str, dead: &str) -> Self {
        self.requests_exchange = requests.into();
        self.events_exchange = events.into();
        self.dead_letter_exchange = dead.into();
        self
    }

    /// Deletes a handler's queue `after` its last consumer left (default: never).
    #[must_use]
    pub fn queue_expires(mut self, after: Duration) -> Self {
        self.queue_expires = Some(after);
        self
    }
}

/// The NestJS wire's settings (`[messaging.NAME.nestjs]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct NestJsSettings {
    /// On RabbitMQ: the queue `send` and `emit` go to, the one the NestJS service consumes
    /// (its `options.queue`). A connection calls one NestJS service, as a NestJS
    /// `ClientProxy` does; a server consumes the queue named after its group.
    pub queue: String,
}

impl NestJsSettings {
    /// The defaults (no queue).
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue `send` and `emit` go to on RabbitMQ.
    #[must_use]
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = queue.into();
        self
    }
}

/// Where Redis keeps the streams, and when a dead consumer's entries are taken over.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisSettings {
    /// Every key the transport uses starts with `<prefix>:` (default `sdk`).
    pub prefix: String,
    /// How long a delivered entry may stay unsettled before another consumer of its group
    /// claims it (default 30 s): longer than a handler runs.
    #[serde(deserialize_with = "de::duration")]
    pub ack_wait: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            prefix: "sdk".into(),
            ack_wait: Duration::from_secs(30),
        }
    }
}

impl RedisSettings {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys under `<prefix>:` (tests give each run its own).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a delivered entry may stay unsettled (default 30 s).
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }
}

/// Kafka settings.
///
/// ```toml
/// [messaging.events]
/// transport = "kafka"
/// url = "kafka://127.0.0.1:9092"      # or brokers = "h1:9092,h2:9092" below
///
/// [messaging.events.kafka]           # the defaults
/// client_id = "sdk-messaging"
/// topic_prefix = "sdk"               # topics sdk.ev.<pattern>, sdk.req.<pattern>, ...
/// partitions = 3                     # of the topics the SDK creates
/// replication_factor = 1
/// session_timeout = "10s"            # a consumer silent this long leaves its group
/// # group_id = "billing"             # the consumer group of every handler (default: one per service and pattern)
/// ```
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port` separated by commas (default: from the URL).
    pub brokers: Option<String>,
    /// The consumer group every handler joins (default: one group per service and
    /// pattern, `<prefix>.<service>.<pattern>`, so one handler's rebalance never stalls
    /// another's).
    pub group_id: Option<String>,
    /// The client id the brokers see (default `sdk-messaging`).
    pub client_id: String,
    /// The first part of every topic's name (default `sdk`).
    pub topic_prefix: String,
    /// Partitions of the topics the SDK creates (default 3): how many instances of a
    /// service can share one pattern's messages.
    pub partitions: i32,
    /// Replicas of the topics the SDK creates (default 1).
    pub replication_factor: i32,
    /// How long a consumer may be silent before its group moves its partitions to the
    /// others (default 10 s).
    #[serde(deserialize_with = "de::duration")]
    pub session_timeout: Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: None,
            group_id: None,
            client_id: "sdk-messaging".into(),
            topic_prefix: "sdk".into(),
            partitions: 3,
            replication_factor: 1,
            session_timeout: Duration::from_secs(10),
        }
    }
}

impl KafkaSettings {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the topic prefix (default `sdk`).
    #[must_use]
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Sets the consumer group of every handler.
    #[must_use]
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// Sets the partitions of the topics the SDK creates (default 3).
    #[must_use]
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Sets how long a silent consumer keeps its partitions (default 10 s).
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// The bootstrap list: `brokers`, else the URL's (`kafka://h1:9092,h2:9092`).
    pub fn brokers_for(&self, url: &str) -> Result<String, MessagingError> {
        let list = match &self.brokers {
            Some(brokers) => brokers.clone(),
            None => url
                .strip_prefix("kafka://")
                .ok_or_else(|| {
                    MessagingError::Config(format!(
                        "a Kafka url starts with kafka:// (got {})",
                        sdk_base::redact_url(url)
                    ))
                })?
                .trim_end_matches('/')
                .to_owned(),
        };
        // Kafka takes credentials through SASL settings, not in the address: any
        // `user:password@` is dropped, never sent or printed.
        let list = list
            .split(',')
            .map(|b| b.rsplit_once('@').map_or(b, |(_, host)| host).trim())
            .collect::<Vec<_>>()
            .join(",");
        if list.is_empty() || list.split(',').any(|b| !b.contains(':')) {
            return Err(MessagingError::Config(format!(
                "Kafka brokers are host:port, separated by commas (got {list:?})"
            )));
        }
        Ok(list)
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field(
                "brokers",
                &self.brokers.as_deref().map(sdk_base::redact_url),
            )
            .field("group_id", &self.group_id)
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("session_timeout", &self.session_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_brokers_come_from_the_url_or_the_settings_and_never_carry_credentials() {
        let settings = KafkaSettings::new();
        assert_eq!(
            settings.brokers_for("kafka://h1:9092,h2:9093/").ok(),
            Some("h1:9092,h2:9093".to_owned())
        );
        assert_eq!(
            settings.brokers_for("kafka://user:hunter2@h1:9092").ok(),
            Some("h1:9092".to_owned())
        );
        assert!(settings.brokers_for("nats://h1:4222").is_err());
        assert!(settings.brokers_for("kafka://h1").is_err());
        let listed = KafkaSettings {
            brokers: Some("a:1,b:2".into()),
            ..KafkaSettings::default()
        };
        assert_eq!(
            listed.brokers_for("ignored").ok(),
            Some("a:1,b:2".to_owned())
        );
    }

    #[test]
    fn a_kafka_connection_reads_from_the_config_file() {
        let config = sdk::SdkConfig::from_toml_str(
            "[messaging.events]\ntransport = \"kafka\"\nurl = \"kafka://127.0.0.1:9092\"\n\n\
             [messaging.events.kafka]\ngroup_id = \"billing\"\npartitions = 6\nsession_timeout = \"6s\"\n",
        )
        .expect("valid");
        let connections = config
            .extension::<MessagingConfig>("messaging")
            .expect("messaging");
        let (_, events) = connections.into_iter().next().expect("one");
        assert_eq!(events.transport, TransportKind::Kafka);
        assert_eq!(events.kafka.group_id.as_deref(), Some("billing"));
        assert_eq!(events.kafka.partitions, 6);
        assert_eq!(events.kafka.session_timeout, Duration::from_secs(6));
    }
}
