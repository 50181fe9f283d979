//! A foreign wire (NestJS's) on Kafka with Rust on this side, for what the interop tests
//! cannot show through the peers: a failed event is delivered again from this process, not
//! written to the topic its peers read a second time, and one given up on still goes to
//! the dead letters; a request older than a minute (a new consumer group reading a topic's
//! past) is not acted on, and a fresh one is answered in NestJS's record format.
#![cfg(feature = "kafka")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer as _, StreamConsumer},
    message::{Header, Headers as _, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message as _,
};
use sdk_messaging::{
    KafkaSettings, MessageContext, Messaging, MessagingConfig, TransportKind, Wire,
};

use crate::{
    kafka::kafka_addr,
    support::{self, suite},
};

/// A NestJS-wire connection whose own topics (replies, dead letters) are under `prefix`.
async fn connect(prefix: &str) -> Option<Messaging> {
    let addr = kafka_addr();
    support::broker_at("Kafka (tansu)", &addr).await?;
    let config = MessagingConfig::new(TransportKind::Kafka, format!("kafka://{addr}"))
        .wire(Wire::NestJs)
        .timeout(Duration::from_secs(10))
        .kafka(KafkaSettings::new().topic_prefix(prefix));
    Some(
        Messaging::connect("foreign", &config)
            .await
            .expect("connect"),
    )
}

/// Every record of `topic`, read from its start: (headers, value).
async fn records(topic: &str) -> Vec<(Vec<(String, String)>, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_addr())
        .set("group.id", support::unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut read = Vec::new();
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await
    {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        read.push((headers, value));
    }
    read
}

/// The suite's check of failed events (delivered again until handled, bad ones to the
/// dead letters) on NestJS's wire; and the retried event is on its topic once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_is_retried_here_not_written_again() {
    let prefix = support::unique("fk");
    let Some(messaging) = connect(&prefix).await else {
        return;
    };
    let ns = support::unique("fe");
    let dead = || crate::kafka::dead_letters(prefix.clone());
    suite::failed_events_come_back_and_bad_ones_die(&messaging, &ns, "orders", dead).await;
    let flaky = records(&format!("{ns}.flaky")).await;
    assert_eq!(flaky.len(), 1, "written once, retried here: {flaky:?}");
}

/// Creates `topics` (one partition each).
async fn create(topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_addr())
        .create()
        .expect("admin");
    let new: Vec<_> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("created");
}

/// A request as NestJS's Kafka client writes it, written `age` ago.
async fn nest_request(producer: &FutureProducer, topic: &str, id: &str, reply: &str, age: u64) {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits");
    let header = |key, value| Header {
        key,
        value: Some(value),
    };
    let headers = OwnedHeaders::new()
        .insert(header("kafka_correlationId", id))
        .insert(header("kafka_replyTopic", reply))
        .insert(header("kafka_replyPartition", "0"));
    let record = FutureRecord::<str, str>::to(topic)
        .payload("{\"n\":2}")
        .headers(headers)
        .timestamp(now - i64::try_from(age).expect("fits"));
    producer
        .send(record, Duration::from_secs(5))
        .await
        .expect("produced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_request_is_skipped_and_a_fresh_one_answered_as_nestjs_reads_it() {
    let prefix = support::unique("fk");
    let Some(messaging) = connect(&prefix).await else {
        return;
    };
    let ns = support::unique("fr");
    let (topic, reply) = (format!("{ns}.work"), format!("{ns}.work.reply"));
    create(&[&topic, &reply]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_addr())
        .create()
        .expect("producer");
    nest_request(&producer, &topic, "old", &reply, 120_000).await;
    nest_request(&producer, &topic, "new", &reply, 0).await;
    // The server's group is new: it reads the topic from its start, the old request too.
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = handled.clone();
    let server = messaging
        .server("worker")
        .message_pattern(
            &topic,
            move |work: serde_json::Value, context: MessageContext| {
                sink.lock().expect("lock").push(context.message_id.clone());
                async move { Ok(work["n"].as_i64().unwrap_or(0) * 10) }
            },
        )
        .start()
        .await
        .expect("started");
    let seen = || !handled.lock().expect("lock").is_empty();
    let wait = Duration::from_secs(15);
    support::poll(wait, || async { seen().then_some(()) }).await;
    let answered = records(&reply).await;
    assert_eq!(
        *handled.lock().expect("lock"),
        ["new"],
        "the old one is skipped"
    );
    assert_eq!(answered.len(), 1, "{answered:?}");
    let (headers, value) = &answered[0];
    assert_eq!(value, "20");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("kafka_correlationId"), Some("new"));
    assert!(header("kafka_nest-is-disposed").is_some(), "{headers:?}");
    assert_eq!(header("kafka_nest-err"), None);
    server.shutdown().await;
}
