//! The retry schedule on paused time: the API, the dispatcher and a real receiver in the
//! test's own runtime, on a real SQLite file and a real PostgreSQL database, through the
//! whole default schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±20 %) and a
//! `Retry-After`, to the dead letter and its redrive: about 33 hours of the bus's time in
//! a second or two of the machine's.

use crate::support;

use std::time::Duration;

use crate::support::{user, Answer, Api, Database, Receiver, ADMIN};
use sdk::ServiceSdk;
use sdk_events::{
    clock::Clock,
    dispatcher::{Dispatcher, DispatcherConfig},
    server::{router, Bus, BusConfig},
    store::{DeliveryRow, DeliveryStatus, Store},
};
use serde_json::json;

/// How long the test waits, in the machine's time, for the real parts (SQLite's thread,
/// the PostgreSQL server, the sockets) to do what the bus's time allows.
const REAL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits in real time (the paused clock stands still meanwhile) until `check` holds.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + REAL_PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited in vain for {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// The one delivery of `welcome`, once it has had `attempts` attempts recorded.
async fn after_attempts(store: &Store, attempts: i64) -> DeliveryRow {
    until(&format!("attempt {attempts} to be recorded"), async || {
        let rows = store
            .deliveries(None, Some("welcome"), 0, 10)
            .await
            .expect("list deliveries");
        rows.into_iter().find(|row| row.attempts == attempts)
    })
    .await
}

/// What each attempt is answered, and the wait the bus must then choose before the next:
/// the schedule's step ±20 %, or exactly the `Retry-After`.
const SCRIPT: [(Answer, Option<(u64, u64)>); 8] = [
    (Answer(500, None), Some((4_000, 6_000))),
    (Answer(503, Some(90)), Some((90_000, 90_000))),
    (Answer(500, None), Some((1_440_000, 2_160_000))),
    (Answer(502, None), Some((5_760_000, 8_640_000))),
    (Answer(500, None), Some((14_400_000, 21_600_000))),
    (Answer(500, None), Some((28_800_000, 43_200_000))),
    (Answer(500, None), Some((28_800_000, 43_200_000))),
    (Answer(500, None), None), // the eighth attempt is the last: dead
];

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_default_schedule_and_retry_after_run_on_paused_time() {
    // A task that always has work keeps tokio from skipping the clock ahead while the
    // runtime only waits on something real: the bus's time moves by `advance` alone.
    let busy = tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    });
    for db in support::databases() {
        follow_the_schedule(&db).await;
    }
    busy.abort();
}

async fn follow_the_schedule(db: &Database) {
    let clock = Clock::new();
    let store = Store::open(&db.url).await.expect("open the store");
    let config = DispatcherConfig::default();
    let sdk = ServiceSdk::builder().build().expect("sdk");
    let dispatcher = Dispatcher::new(store.clone(), sdk, config.clone(), clock);
    let bus = Bus::new(
        store.clone(),
        BusConfig {
            admin_token: Some(ADMIN.into()),
            // The handlers here are on this machine.
            handlers: sdk::registry::AddressPolicy::any(),
            ..BusConfig::default()
        },
        clock,
        Some(dispatcher.waker()),
    )
    .expect("bus");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = Api {
        url: format!("http://{}", listener.local_addr().expect("addr")),
    };
    let server = tokio::spawn(async move { axum::serve(listener, router(bus)).await });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dispatching = tokio::spawn(dispatcher.run(async {
        let _ = stopped.await;
    }));

    let receiver = Receiver::start().await;
    let (token, _) = api.welcome(&receiver.url).await;
    receiver.then(&SCRIPT.map(|(answer, _)| answer));
    let (status, published) = api.publish(&token, "user.created", user(1)).await;
    assert_eq!(status, 201, "{published}");
    // The dispatcher claims at most once per interval; it claimed as it started.
    tokio::time::advance(config.claim_interval).await;

    for (n, (_, wait)) in (1..).zip(SCRIPT) {
        let row = after_attempts(&store, n).await;
        assert_eq!(receiver.seen().len(), usize::try_from(n).expect("n"));
        let Some((shortest, longest)) = wait else {
            assert_eq!(row.status, "dead", "{}: {row:?}", db.name);
            break;
        };
        assert_eq!(row.status, "pending", "{}: {row:?}", db.name);
        // The clock has not moved since the attempt: what is left is the bus's choice.
        let chosen = u64::try_from(row.due_ms - clock.now_ms()).expect("due after now");
        assert!(
            (shortest..=longest).contains(&chosen),
            "{}: after attempt {n} the bus waits {chosen} ms, not {shortest}..={longest}",
            db.name
        );
        next_attempt_exactly_when_due(&receiver, n, chosen, &config).await;
    }

    redrive_delivers(&api, &store, db.name).await;
    let ids: Vec<_> = receiver
        .seen()
        .iter()
        .map(|seen| seen.header("webhook-id"))
        .collect();
    assert_eq!(ids.len(), 9);
    assert!(
        ids.iter().all(|id| published["id"] == id.as_str()),
        "{ids:?}"
    );

    let _ = stop.send(());
    dispatching.await.expect("the dispatcher stops");
    server.abort();
}

/// Dead, listed, re-driven: the next attempt (answered 204) delivers, once the handler's
/// breaker, opened by the failures, is waited out (without spending attempts).
async fn redrive_delivers(api: &Api, store: &Store, db: &str) {
    let dead = api
        .admin_get("/v1/deliveries?status=dead&subscription=welcome")
        .await;
    let seq = dead["deliveries"][0]["seq"]
        .as_i64()
        .expect("a dead delivery");
    api.admin_post(&format!("/v1/deliveries/{seq}/redrive"), json!({}), 200)
        .await;
    let mut waited = Duration::ZERO;
    loop {
        let rows = store
            .deliveries(Some(DeliveryStatus::Delivered), Some("welcome"), 0, 10)
            .await
            .expect("list deliveries");
        if let Some(row) = rows.first() {
            assert_eq!(row.attempts, 1, "{db}: {row:?}");
            break;
        }
        assert!(waited < Duration::from_secs(120), "{db}: not re-driven");
        tokio::time::advance(Duration::from_secs(1)).await;
        waited += Duration::from_secs(1);
        real_pause(std::time::Duration::from_millis(20)).await;
    }
}

/// Moves the clock to just before the attempt after `n` is due (nothing may arrive), then
/// on by the dispatcher's look-for-work interval until it arrives: no earlier than due, and
/// within a few looks of it.
async fn next_attempt_exactly_when_due(
    receiver: &Receiver,
    n: i64,
    chosen_ms: u64,
    config: &DispatcherConfig,
) {
    let before = receiver.seen().len();
    let last = receiver.seen().last().map(|seen| seen.at).expect("seen");
    tokio::time::advance(Duration::from_millis(chosen_ms - 1)).await;
    // Let the dispatcher look for work at this instant: nothing is due yet.
    real_pause(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        receiver.seen().len(),
        before,
        "attempt {} came early",
        n + 1
    );
    let mut looks = 0;
    let arrived = loop {
        looks += 1;
        assert!(looks <= 4, "attempt {} did not come once due", n + 1);
        tokio::time::advance(config.poll).await;
        let within = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while receiver.seen().len() == before && std::time::Instant::now() < within {
            tokio::task::yield_now().await;
        }
        if let Some(seen) = receiver.seen().get(before) {
            break seen.at;
        }
    };
    let gap = arrived - last;
    let chosen = Duration::from_millis(chosen_ms);
    assert!(
        gap >= chosen && gap <= chosen + config.poll * 4,
        "attempt {} came {gap:?} after the one before, due after {chosen:?}",
        n + 1
    );
}

/// Lets the real parts work for `duration` of the machine's time, the clock standing still.
async fn real_pause(duration: std::time::Duration) {
    let until = std::time::Instant::now() + duration;
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}
