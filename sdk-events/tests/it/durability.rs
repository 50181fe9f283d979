//! Nothing acknowledged is lost: 10,000 events published while the dispatcher process is
//! killed with `kill -9` ten times and restarted; every acknowledged event reaches the
//! subscriber at least once, and repeats share their `webhook-id`. On SQLite with one
//! dispatcher, and on PostgreSQL with two.

use crate::support;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::{user, Bus, Database, Receiver};
use tokio::time::Instant;

const EVENTS: usize = 10_000;
const KILLS: usize = 10;
const PUBLISHERS: usize = 16;

type Acknowledged = Arc<Mutex<Vec<String>>>;

/// Publishes `EVENTS` events from `PUBLISHERS` tasks into `acknowledged` (the ids the bus
/// answered 201 for).
async fn publish_all(api: Arc<Bus>, token: String, acknowledged: Acknowledged) -> Vec<String> {
    let next = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let (api, token, next, acknowledged) = (
            api.clone(),
            token.clone(),
            next.clone(),
            acknowledged.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = {
                    let mut next = next.lock().expect("counter");
                    *next += 1;
                    *next
                };
                if n > EVENTS {
                    return;
                }
                let (status, answer) = api.publish(&token, "user.created", user(n)).await;
                assert_eq!(status, 201, "the API process is never killed: {answer}");
                let id = answer["id"].as_str().expect("id").to_owned();
                acknowledged.lock().expect("ids").push(id);
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    let ids = acknowledged.lock().expect("ids").clone();
    ids
}

async fn nothing_lost(db: &Database, dispatchers: usize) {
    let started = Instant::now();
    let api = Arc::new(Bus::start(db, &["--no-dispatcher"]).await);
    let receiver = Receiver::start().await;
    let (token, _) = api.welcome(&receiver.url).await;
    let mut running = Vec::new();
    for _ in 0..dispatchers {
        running.push(Bus::start(db, &[]).await);
    }
    let acknowledged: Acknowledged = Arc::default();
    let publishing = tokio::spawn(publish_all(api.clone(), token, acknowledged.clone()));
    // The kills are spread over the publishing: one each time another eleventh is in.
    for kill in 0..KILLS {
        let due = (kill + 1) * EVENTS / (KILLS + 1);
        while acknowledged.lock().expect("ids").len() < due {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let victim = kill % dispatchers;
        running[victim].kill9().await;
        running[victim] = Bus::start(db, &[]).await;
    }
    let acknowledged = publishing.await.expect("publishing");
    assert_eq!(acknowledged.len(), EVENTS);
    let published_in = started.elapsed();
    let wanted: HashSet<&str> = acknowledged.iter().map(String::as_str).collect();
    let until = Instant::now() + Duration::from_secs(180);
    let (mut seen, mut missing);
    loop {
        seen = receiver.seen();
        let got: HashSet<String> = seen.iter().map(|s| s.header("webhook-id")).collect();
        missing = wanted.iter().filter(|id| !got.contains(**id)).count();
        if missing == 0 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for delivery in &seen {
        *per_id.entry(delivery.header("webhook-id")).or_default() += 1;
    }
    let repeats = seen.len() - per_id.len();
    eprintln!(
        "{}: {} published in {published_in:?} with {KILLS} kill -9 of {dispatchers} dispatcher(s); \
         {} deliveries, {} distinct, {repeats} repeats, {missing} missing, done after {:?}",
        db.name,
        acknowledged.len(),
        seen.len(),
        per_id.len(),
        started.elapsed()
    );
    assert_eq!(
        missing, 0,
        "{}: acknowledged events never delivered",
        db.name
    );
    assert!(
        per_id.keys().all(|id| wanted.contains(id.as_str())),
        "only published events arrive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_on_sqlite() {
    nothing_lost(&support::sqlite(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_on_postgres_with_two_dispatchers() {
    let Some(db) = support::postgres() else {
        return;
    };
    nothing_lost(&db, 2).await;
}
