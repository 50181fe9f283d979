//! `batch_call` and `Batch`: concurrent named calls, a result per name.

use std::time::Duration;

use crate::support::{Reply, Scripted};
use sdk::{retry::RetryConfig, ServiceConfig, ServiceError};

#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
struct User {
    id: u64,
}

#[tokio::test(start_paused = true)]
async fn mixed_successes_and_failures() {
    let users = Scripted::start(Reply::json(serde_json::json!({ "id": 42 }))).await;
    let orders = Scripted::start(Reply::status(500).body("boom")).await;
    let once = || ServiceConfig::new().retry(RetryConfig::new().max_attempts(1));
    let sdk = sdk::ServiceSdk::builder()
        .service("users", once().instance(&users.url))
        .service("orders", once().instance(&orders.url))
        .build()
        .expect("valid");
    let (u, o) = (sdk.get_client("users"), sdk.get_client("orders"));

    let mut batch = sdk.batch().concurrency(2);
    let user = batch.add("user", u.get("/users/42").send::<User>());
    let recent = batch.add("orders", o.get("/orders").send::<Vec<u64>>());
    let count = batch.add("count", async { Ok::<_, ServiceError>(3usize) });
    let mut results = batch.run().await;

    assert_eq!(results.len(), 3);
    assert_eq!(
        results.get(&user).and_then(|r| r.ok()).map(|u| u.id),
        Some(42)
    );
    let shown = format!("{results:?}");
    assert!(
        shown.contains(r#""user": Ok(<it::batch::User>)"#) && shown.contains(r#""orders": Err("#),
        "{shown}"
    );
    assert_eq!(
        results.failed().map(|(name, _)| name).collect::<Vec<_>>(),
        ["orders"]
    );
    assert_eq!(results.succeeded().collect::<Vec<_>>(), ["user", "count"]);
    assert_eq!(
        results.take(&user).expect("typed, no JSON round trip"),
        User { id: 42 }
    );
    let err = results.take(&recent).expect_err("500");
    assert_eq!(
        err.status_code(),
        Some(http::StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(results.take(&count).expect("plain value"), 3);
}

#[tokio::test(start_paused = true)]
async fn batch_call_runs_concurrently_and_keeps_finished_results_at_the_deadline() {
    // One by one, these twenty calls would take 10 s + 19 × 1 s = 29 s; together, 10 s.
    let fast =
        Scripted::start(Reply::json(serde_json::json!({ "id": 1 })).delay(Duration::from_secs(1)))
            .await;
    let slow =
        Scripted::start(Reply::json(serde_json::json!({ "id": 2 })).delay(Duration::from_secs(10)))
            .await;
    let sdk = sdk::ServiceSdk::builder()
        .service("fast", ServiceConfig::new().instance(&fast.url))
        .service("slow", ServiceConfig::new().instance(&slow.url))
        .build()
        .expect("valid");

    let started = tokio::time::Instant::now();
    let results = sdk
        .batch_call((0..20).map(|i| {
            let client = sdk.get_client(if i == 0 { "slow" } else { "fast" });
            (format!("call-{i}"), async move {
                client.get("/users/1").send::<User>().await
            })
        }))
        .await;
    assert_eq!(results.successes().count(), 20);
    // Typed, in the order given, and iterable by reference or by value.
    let names: Vec<&str> = results.iter().map(|(name, _)| name).collect();
    assert_eq!(names[..3], ["call-0", "call-1", "call-2"]);
    assert_eq!(
        results.get("call-0").map(|r| r.as_ref().map(|u| u.id).ok()),
        Some(Some(2))
    );
    for (_, result) in &results {
        assert!(result.is_ok());
    }
    assert!(format!("{results:?}").contains(r#""call-1": Ok(User { id: 1 })"#));
    let ids: u64 = results
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .map(|u| u.id)
        .sum();
    assert_eq!(ids, 2 + 19);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(11),
        "ran concurrently (one by one takes 29 s): {elapsed:?}"
    );

    let mut batch = sdk.batch().deadline(Duration::from_secs(2));
    let slow_key = batch.add("slow", {
        let client = sdk.get_client("slow");
        async move { client.get("/users/2").send::<User>().await }
    });
    let fast_key = batch.add("fast", {
        let client = sdk.get_client("fast");
        async move { client.get("/users/1").send::<User>().await }
    });
    let mut results = batch.run().await;
    assert_eq!(results.take(&fast_key).expect("finished in time").id, 1);
    assert!(matches!(
        results.take(&slow_key),
        Err(ServiceError::Cancelled)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_key_from_another_batch_is_refused() {
    let mut first = sdk::batch::Batch::new();
    let key = first.add("x", async { Ok::<_, ServiceError>(String::from("a")) });
    let mut second = sdk::batch::Batch::new();
    let _ = second.add("y", async { Ok::<_, ServiceError>(1u8) });
    let mut results = second.run().await;
    assert!(matches!(
        results.take(&key),
        Err(ServiceError::InvalidRequest { .. })
    ));
    let _ = first;
}

#[tokio::test(start_paused = true)]
async fn batch_call_futures_may_borrow() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 5 }))).await;
    let sdk = sdk::ServiceSdk::builder()
        .service("users", ServiceConfig::new().instance(&server.url))
        .build()
        .expect("valid");
    let users = sdk.get_client("users");
    let ids = [5u64, 5, 5];
    // The calls borrow `users` and `ids`: nothing needs to be cloned or 'static.
    let results = sdk
        .batch_call(ids.iter().map(|id| {
            (
                format!("user-{id}"),
                users.get(&format!("/users/{id}")).send::<User>(),
            )
        }))
        .await;
    assert_eq!(results.len(), 3);
    assert!(results.failed().next().is_none());
}
