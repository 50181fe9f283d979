//! The Kafka transport against a Kafka-protocol broker (tansu, which `scripts/test` installs
//! and starts, at `SDK_TEST_KAFKA`), through the checks every transport passes
//! (`support/suite.rs`), plus what only Kafka needs: replies that survive instances joining
//! and leaving their group while requests are in flight.
#![cfg(feature = "kafka")]

use crate::support;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::support::suite::{self, DeadLetter};
use rdkafka::{
    consumer::{Consumer as _, StreamConsumer},
    message::Headers as _,
    ClientConfig, Message as _,
};
use sdk_messaging::{KafkaSettings, MessageContext, Messaging, MessagingConfig, TransportKind};

pub(crate) fn kafka_addr() -> String {
    std::env::var("SDK_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A connection whose topics are under a prefix of its own, so tests never meet.
struct Setup {
    messaging: Messaging,
    ns: String,
    group: String,
    prefix: String,
    config: MessagingConfig,
}

async fn setup(timeout: Duration) -> Option<Setup> {
    let addr = kafka_addr();
    support::broker_at("Kafka (tansu)", &addr).await?;
    let id = support::unique("t");
    let prefix = format!("sdktest{id}");
    let config = MessagingConfig::new(TransportKind::Kafka, format!("kafka://{addr}"))
        .timeout(timeout)
        .kafka(KafkaSettings::new().topic_prefix(&prefix));
    let messaging = Messaging::connect("events", &config)
        .await
        .expect("connect");
    Some(Setup {
        messaging,
        ns: format!("u{id}"),
        group: format!("g{id}"),
        prefix,
        config,
    })
}

impl Setup {
    /// Where this test's dead letters are (what `dead_letters` reads).
    fn dead_key(&self) -> String {
        self.prefix.clone()
    }

    /// Nothing to delete: the broker removes this test's queues or topics itself.
    async fn cleanup(self) {}
}

/// The dead letters in `<prefix>.dead`, read from the start.
pub(crate) async fn dead_letters(prefix: String) -> Vec<DeadLetter> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_addr())
        .set(
            "group.id",
            format!("{prefix}.reader.{}", support::unique("r")),
        )
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&[&format!("{prefix}.dead")])
        .expect("subscribe");
    let mut letters = Vec::new();
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await
    {
        let header = |name: &str| {
            message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        letters.push((
            header(sdk_messaging::headers::DEAD_PATTERN),
            header(sdk_messaging::headers::DEAD_REASON),
            String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
        ));
    }
    letters
}

suite::transport_suite!(test: tokio::test(flavor = "multi_thread", worker_threads = 2), timeout: Duration::from_secs(10), kind: TransportKind::Kafka, scheme: "kafka");

/// Servers of one service join and leave their group (each a connection of its own, so
/// each a group member) while clients, each with its own reply topic, have requests in
/// flight: every request is answered, none lost to a partition moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reply_is_lost_while_instances_join_and_leave() {
    let Some(setup) = setup(Duration::from_secs(20)).await else {
        return;
    };
    let pattern = format!("{}.echo", setup.ns);
    let handled = Arc::new(AtomicUsize::new(0));
    let instance = || start_instance(&setup.config, &pattern, &setup.group, &handled);
    let mut servers = vec![instance().await];
    // Three client instances, 400 requests each over 16 s, at most 8 at a time; `answers`
    // counts the replies and `in_flight` the requests sent and not yet answered.
    let (answers, in_flight) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for c in 0..3u64 {
        let messaging = Messaging::connect("client", &setup.config)
            .await
            .expect("connect");
        let counters = (answers.clone(), in_flight.clone());
        clients.push(spawn_client(messaging, c, pattern.clone(), counters));
    }
    // Meanwhile, at milestones of the 1,200 replies: two more instances join, then the first
    // and the second leave, each with requests in flight and after it handled some (each
    // stops in the background, so the next milestone is not passed while it drains).
    reached(&answers, 100).await;
    servers.push(instance().await);
    reached(&answers, 250).await;
    servers.push(instance().await);
    let mut stopping = Vec::new();
    for milestone in [450, 700] {
        reached(&answers, milestone).await;
        let (_, leaving, handled_there) = servers.remove(0);
        assert!(
            handled_there.load(Ordering::SeqCst) > 0,
            "the leaving instance served"
        );
        assert!(
            in_flight.load(Ordering::SeqCst) > 0,
            "requests in flight as it leaves: {} answered, {} in flight",
            answers.load(Ordering::SeqCst),
            in_flight.load(Ordering::SeqCst)
        );
        stopping.push(tokio::spawn(leaving.shutdown()));
    }
    for stopped in stopping {
        stopped.await.expect("stopped");
    }
    let mut answered = HashSet::new();
    let mut lost = Vec::new();
    for client in clients {
        for answer in client.await.expect("client task") {
            match answer {
                Ok(n) => {
                    answered.insert(n);
                }
                Err(e) => lost.push(e.to_string()),
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} replies lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(answered.len(), 3 * REQUESTS as usize);
    eprintln!(
        "{} requests answered; {} handled (a request whose partition moved mid-flight is handled again)",
        answered.len(),
        handled.load(Ordering::SeqCst)
    );
    for (_, server, _) in servers {
        server.shutdown().await;
    }
}

/// Requests each client sends in the join-and-leave test.
const REQUESTS: u64 = 400;

/// One server instance of the echo service: its connection, its server, and how many
/// requests it handled (also counted in `handled`, for all of them).
async fn start_instance(
    config: &MessagingConfig,
    pattern: &str,
    group: &str,
    handled: &Arc<AtomicUsize>,
) -> (Messaging, sdk_messaging::RunningServer, Arc<AtomicUsize>) {
    let (handled, mine) = (handled.clone(), Arc::new(AtomicUsize::new(0)));
    let messaging = Messaging::connect("server", config).await.expect("connect");
    let counted = mine.clone();
    let server = messaging
        .server(group)
        .message_pattern(pattern, move |n: u64, _: MessageContext| {
            handled.fetch_add(1, Ordering::SeqCst);
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, sdk::ServiceError>(n * 2)
            }
        })
        .start()
        .await
        .expect("started");
    (messaging, server, mine)
}

/// Client `c`: [`REQUESTS`] requests, paced one every 40 ms so requests keep coming while
/// instances join and leave (a join takes seconds; unpaced, every request is answered
/// before), at most 8 at a time, counted in `(answers, in_flight)`.
fn spawn_client(
    messaging: Messaging,
    c: u64,
    pattern: String,
    (answers, in_flight): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) -> tokio::task::JoinHandle<Vec<Result<u64, sdk::ServiceError>>> {
    tokio::spawn(async move {
        let client = messaging.client();
        let start = tokio::time::Instant::now();
        let requests = futures_util::stream::iter((0..REQUESTS).map(|i| {
            let (client, pattern) = (client.clone(), pattern.clone());
            let (answers, in_flight) = (answers.clone(), in_flight.clone());
            async move {
                let n = c * 1000 + i;
                tokio::time::sleep_until(start + Duration::from_millis(40 * i)).await;
                in_flight.fetch_add(1, Ordering::SeqCst);
                let result = client.send::<_, u64>(&pattern, &n).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                answers.fetch_add(1, Ordering::SeqCst);
                result.map(|r| {
                    assert_eq!(r, n * 2, "the reply to this request");
                    n
                })
            }
        }));
        let results = futures_util::StreamExt::buffer_unordered(requests, 8);
        futures_util::StreamExt::collect(results).await
    })
}

/// Waits until `answers` reaches `n` (60 s at most).
async fn reached(answers: &AtomicUsize, n: usize) {
    let limit = tokio::time::Instant::now() + Duration::from_secs(60);
    while answers.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < limit,
            "{n} replies within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_and_the_next_event_handled() {
    let Some(setup) = setup(Duration::from_secs(10)).await else {
        return;
    };
    let prefix = setup.prefix.clone();
    suite::poison_is_dead_lettered(
        &setup.messaging,
        &setup.ns,
        &setup.group,
        |pattern| {
            // A record another producer wrote: no SDK headers, not JSON.
            let topic = format!("{prefix}.ev.{pattern}");
            async move {
                let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
                    .set("bootstrap.servers", kafka_addr())
                    .create()
                    .expect("producer");
                producer
                    .send(
                        rdkafka::producer::FutureRecord::<str, str>::to(&topic)
                            .payload(suite::POISON),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("produced");
            }
        },
        || dead_letters(prefix.clone()),
    )
    .await;
}
