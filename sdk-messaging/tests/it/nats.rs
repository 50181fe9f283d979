//! The NATS transport against the machine's NATS server (127.0.0.1:4222, JetStream on),
//! through the checks every transport passes (`support/suite.rs`).
#![cfg(feature = "nats")]

use crate::support;

use std::time::Duration;

use crate::support::suite::{self, DeadLetter};
use futures_util::StreamExt;
use sdk_messaging::{Messaging, MessagingConfig, NatsSettings, TransportKind};

const NATS: &str = "127.0.0.1:4222";

/// A connection with streams and subjects of its own, so tests never meet.
struct Setup {
    messaging: Messaging,
    /// Prefix of this test's patterns.
    ns: String,
    group: String,
    settings: NatsSettings,
}

async fn setup(timeout: Duration) -> Option<Setup> {
    setup_with(timeout, NatsSettings::new()).await
}

async fn setup_with(timeout: Duration, settings: NatsSettings) -> Option<Setup> {
    support::broker_at("NATS", NATS).await?;
    let id = support::unique("t");
    let settings = settings.streams(
        &format!("SDKTEST_{id}"),
        &format!("ev{id}"),
        &format!("SDKTEST_DEAD_{id}"),
        &format!("dead{id}"),
    );
    let config = MessagingConfig::new(TransportKind::Nats, format!("nats://{NATS}"))
        .timeout(timeout)
        .nats(settings.clone());
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    Some(Setup {
        messaging,
        ns: format!("u{id}"),
        group: format!("g{id}"),
        settings,
    })
}

impl Setup {
    /// Where this test's dead letters are (what `dead_letters` reads).
    fn dead_key(&self) -> String {
        self.settings.dead_letter_stream.clone()
    }

    /// Deletes this test's streams.
    async fn cleanup(self) {
        let client = async_nats::connect(NATS).await.expect("nats");
        let jetstream = async_nats::jetstream::new(client);
        let _ = jetstream.delete_stream(&self.settings.stream).await;
        let _ = jetstream
            .delete_stream(&self.settings.dead_letter_stream)
            .await;
    }
}

/// The messages stored in `stream` that no earlier call read.
async fn stored(stream: &str) -> Vec<async_nats::jetstream::Message> {
    let client = async_nats::connect(NATS).await.expect("nats");
    let jetstream = async_nats::jetstream::new(client);
    let Ok(stream) = jetstream.get_stream(stream).await else {
        return Vec::new();
    };
    let consumer = stream
        .get_or_create_consumer(
            "reader",
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("reader".into()),
                ..Default::default()
            },
        )
        .await
        .expect("a consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .expect("fetch");
    let mut found = Vec::new();
    while let Some(Ok(message)) = batch.next().await {
        let _ = message.ack().await;
        found.push(message);
    }
    found
}

fn header(message: &async_nats::Message, name: &str) -> Option<String> {
    let headers = message.headers.as_ref()?;
    headers.get(name).map(|v| v.as_str().to_owned())
}

/// The dead letters stored in `stream` that no earlier call read.
async fn dead_letters(stream: String) -> Vec<DeadLetter> {
    let header = |message: &async_nats::Message, name| header(message, name).unwrap_or_default();
    stored(&stream)
        .await
        .iter()
        .map(|message| {
            (
                header(message, sdk_messaging::headers::DEAD_PATTERN),
                header(message, sdk_messaging::headers::DEAD_REASON),
                String::from_utf8_lossy(&message.payload).into_owned(),
            )
        })
        .collect()
}

suite::transport_suite!(test: tokio::test, timeout: Duration::from_secs(5), kind: TransportKind::Nats, scheme: "nats");

/// An event published twice with one id, as a publish retried after a lost confirmation
/// is: handled once either way; with `publish_dedup` JetStream stores it once, too.
#[tokio::test]
async fn a_republished_event_is_handled_once_and_with_publish_dedup_stored_once() {
    for dedup in [false, true] {
        let settings = NatsSettings::new().publish_dedup(dedup);
        let Some(setup) = setup_with(Duration::from_secs(5), settings).await else {
            return;
        };
        let pattern = format!("{}.order.placed", setup.ns);
        let client = setup.messaging.client();
        client
            .emit(&pattern, &serde_json::json!({ "n": 1 }))
            .await
            .expect("stored");
        let first = stored(&setup.settings.stream).await;
        assert_eq!(first.len(), 1, "dedup {dedup}");
        let (id_header, other) = if dedup {
            ("Nats-Msg-Id", sdk_messaging::headers::MESSAGE_ID)
        } else {
            (sdk_messaging::headers::MESSAGE_ID, "Nats-Msg-Id")
        };
        let id = header(&first[0], id_header).expect("the message id");
        assert_eq!(header(&first[0], other), None, "the id is sent once");

        // The publish again, as the SDK's retry sends it.
        let raw = async_nats::jetstream::new(async_nats::connect(NATS).await.expect("nats"));
        let headers = first[0].headers.clone().expect("headers");
        let ack = raw
            .publish_with_headers(first[0].subject.clone(), headers, first[0].payload.clone())
            .await
            .expect("published")
            .await
            .expect("confirmed");
        assert_eq!(
            ack.duplicate, dedup,
            "JetStream drops it only with publish_dedup"
        );
        let again = stored(&setup.settings.stream).await;
        assert_eq!(again.len(), usize::from(!dedup), "dedup {dedup}");

        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = setup
            .messaging
            .server(&setup.group)
            .event_pattern(
                &pattern,
                move |_: serde_json::Value, context: sdk_messaging::MessageContext| {
                    record
                        .lock()
                        .expect("lock")
                        .push(context.message_id.clone());
                    async { Ok(()) }
                },
            )
            .start()
            .await
            .expect("started");
        suite::wait_for(|| !seen.lock().expect("lock").is_empty())
            .await
            .expect("handled");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*seen.lock().expect("lock"), [id], "handled once");
        server.shutdown().await;
        setup.cleanup().await;
    }
}

#[tokio::test]
async fn poison_is_dead_lettered_and_the_next_event_handled() {
    let Some(setup) = setup(Duration::from_secs(5)).await else {
        return;
    };
    let stream = setup.settings.dead_letter_stream.clone();
    let prefix = setup.settings.subject_prefix.clone();
    suite::poison_is_dead_lettered(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        |pattern| {
            let subject = format!("{prefix}.{pattern}");
            async move {
                let client = async_nats::connect(NATS).await.expect("nats");
                let jetstream = async_nats::jetstream::new(client);
                jetstream
                    .publish(subject, suite::POISON.into())
                    .await
                    .expect("publish")
                    .await
                    .expect("stored");
            }
        },
        || dead_letters(stream.clone()),
    )
    .await;
    setup.cleanup().await;
}
