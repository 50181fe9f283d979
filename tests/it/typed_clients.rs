//! Generated clients against real servers: every parameter kind and HTTP method arrives as
//! written, each policy attribute changes behaviour, and the trait works with a fake.

use std::time::Duration;

use crate::support::{Reply, Scripted};
use sdk::{circuit_breaker::CircuitState, prelude::*, retry::RetryConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

/// A user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct User {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
}

/// The user service, as its callers see it.
#[service_interface(name = "user-service", base_path = "/api/v1")]
pub(crate) trait UserService {
    /// Fetches one user.
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, id: String) -> ServiceResult<User>;

    /// Lists users.
    #[service_call(GET, "/users")]
    async fn list_users(
        &self,
        #[query] limit: u32,
        #[query] active: Option<bool>,
        #[query("tag")] tags: Vec<String>,
        #[header("X-Tenant")] tenant: String,
    ) -> ServiceResult<Vec<User>>;

    /// Creates a user; safe to retry thanks to the idempotency key.
    #[service_call(POST, "/users")]
    #[retry(max_attempts = 3, delay = "10ms")]
    async fn create_user(
        &self,
        #[body] user: User,
        #[idempotency_key] key: String,
    ) -> ServiceResult<User>;

    /// Replaces a user.
    #[service_call(PUT, "/users/<id>")]
    async fn replace_user(&self, id: u64, #[body] user: User) -> ServiceResult<User>;

    /// Renames a user.
    #[service_call(PATCH, "/users/<id>")]
    async fn rename_user(&self, id: u64, #[body] name: String) -> ServiceResult<User>;

    /// Deletes a user.
    #[service_call(DELETE, "/users/<id>")]
    async fn delete_user(&self, id: u64) -> ServiceResult<()>;

    /// Checks a user exists.
    #[service_call(HEAD, "/users/<id>")]
    async fn user_exists(&self, id: u64) -> ServiceResult<()>;

    /// A user's orders: cached, retried, guarded and time-boxed.
    #[service_call(GET, "/users/<id>/orders")]
    #[cached(ttl = "5m", vary_on = ["accept-language"])]
    #[retry(max_attempts = 3, delay = "100ms", backoff = 2.0)]
    #[circuit_breaker(failure_threshold = 2, recovery_timeout = "30s")]
    #[timeout("2s")]
    async fn user_orders(&self, id: u64) -> ServiceResult<Vec<u64>>;

    /// A plain call with no policy of its own.
    #[service_call(GET, "/plain/<id>")]
    async fn plain(&self, id: u64) -> ServiceResult<Vec<u64>>;

    /// A slow call with a tight deadline.
    #[service_call(GET, "/slow")]
    #[timeout("200ms")]
    async fn slow(&self) -> ServiceResult<()>;
}

fn sdk_for(url: &str) -> ServiceSdk {
    // The service itself does not retry: only methods with #[retry] do.
    let config = ServiceConfig::new()
        .instance(url)
        .retry(RetryConfig::new().max_attempts(1));
    ServiceSdk::builder()
        .service("user-service", config)
        .build()
        .expect("valid")
}

#[tokio::test(start_paused = true)]
async fn every_parameter_kind_reaches_the_server_as_written() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 1, "name": "a" }))).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));

    users.get_user("../admin".into()).await.expect("ok");
    server.set_fallback(Reply::json(serde_json::json!([])));
    users
        .list_users(10, None, vec!["a b".into(), "c&d".into()], "acme".into())
        .await
        .expect("ok");
    users
        .list_users(5, Some(true), vec![], "acme".into())
        .await
        .expect("ok");
    server.set_fallback(Reply::json(serde_json::json!({ "id": 2, "name": "b" })));
    let created = users
        .create_user(
            User {
                id: 0,
                name: "b".into(),
            },
            "key-1".into(),
        )
        .await
        .expect("ok");
    assert_eq!(created.id, 2);

    let seen = server.seen();
    assert_eq!(
        seen[0].uri, "/api/v1/users/..%2Fadmin",
        "one encoded segment"
    );
    assert_eq!(
        seen[1].uri, "/api/v1/users?limit=10&tag=a+b&tag=c%26d",
        "None omitted, Vec repeated, renamed"
    );
    assert_eq!(seen[1].headers["x-tenant"], "acme");
    assert_eq!(seen[2].uri, "/api/v1/users?limit=5&active=true");
    assert_eq!(seen[3].body.as_ref(), br#"{"id":0,"name":"b"}"#);
    assert_eq!(seen[3].headers["content-type"], "application/json");
    assert_eq!(seen[3].headers["idempotency-key"], "key-1");
}

#[tokio::test(start_paused = true)]
async fn every_http_method() {
    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 7, "name": "x" }))).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));
    users.replace_user(7, User::default()).await.expect("put");
    users.rename_user(7, "y".into()).await.expect("patch");
    server.set_fallback(Reply::status(204));
    users.delete_user(7).await.expect("delete");
    server.set_fallback(Reply::status(200));
    users.user_exists(7).await.expect("head");
    let methods: Vec<_> = server
        .seen()
        .iter()
        .map(|s| (s.method.to_string(), s.uri.clone()))
        .collect();
    assert_eq!(
        methods,
        [
            ("PUT".to_owned(), "/api/v1/users/7".to_owned()),
            ("PATCH".to_owned(), "/api/v1/users/7".to_owned()),
            ("DELETE".to_owned(), "/api/v1/users/7".to_owned()),
            ("HEAD".to_owned(), "/api/v1/users/7".to_owned()),
        ]
    );
    assert_eq!(server.seen()[1].body.as_ref(), br#""y""#);
}

#[tokio::test(start_paused = true)]
async fn retry_attribute_retries_and_its_absence_does_not() {
    let server = Scripted::start(Reply::status(503)).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));
    let err = users.plain(1).await.expect_err("503");
    assert_eq!(err.attempts(), 1);
    assert_eq!(
        server.hits(),
        1,
        "no #[retry]: one attempt (the service does not retry)"
    );

    let err = users.user_orders(1).await.expect_err("503");
    assert_eq!(err.attempts(), 3, "#[retry(max_attempts = 3)]");
    assert!(
        err.is_circuit_open(),
        "the third attempt met the breaker its own #[circuit_breaker] opened"
    );
    assert_eq!(
        server.hits(),
        3,
        "two of the three attempts reached the server"
    );
    let times: Vec<_> = server.seen()[1..].iter().map(|s| s.at).collect();
    assert!(
        times[1] - times[0] <= Duration::from_millis(100),
        "delay = 100ms, full jitter"
    );

    let err = users
        .create_user(User::default(), "k".into())
        .await
        .expect_err("503");
    assert_eq!(
        err.attempts(),
        3,
        "an idempotency key makes the POST retryable"
    );
    let keys: Vec<_> = server.seen()[3..]
        .iter()
        .map(|s| s.headers["idempotency-key"].clone())
        .collect();
    assert_eq!(keys, ["k", "k", "k"], "the same key on every attempt");
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_attribute_sets_the_threshold() {
    let server = Scripted::start(Reply::status(500)).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));
    for _ in 0..2 {
        let _ = users.user_orders(1).await;
    }
    let err = users.user_orders(1).await.expect_err("open");
    assert!(err.is_circuit_open(), "{err:?}");
    assert_eq!(
        server.hits(),
        2,
        "failure_threshold = 2 (the service default is 5)"
    );
    for _ in 0..4 {
        let _ = users.plain(1).await;
    }
    let states = users.service_client().circuit_state();
    let plain = states
        .iter()
        .find(|c| c.endpoint == "GET /api/v1/plain/<id>")
        .expect("plain endpoint");
    assert_eq!(
        plain.state,
        CircuitState::Closed,
        "methods without the attribute keep the default of 5"
    );
    let orders = states
        .iter()
        .find(|c| c.endpoint == "GET /api/v1/users/<id>/orders")
        .expect("orders endpoint");
    assert_eq!(orders.state, CircuitState::Open);

    server.set_fallback(Reply::json(serde_json::json!([1])));
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..2 {
        users
            .user_orders(1)
            .await
            .expect("half-open probes succeed");
        users.clear_cache();
    }
    let states = users.service_client().circuit_state();
    let orders = states
        .iter()
        .find(|c| c.endpoint == "GET /api/v1/users/<id>/orders")
        .expect("orders endpoint");
    assert_eq!(orders.state, CircuitState::Closed, "recovery_timeout = 30s");
}

#[tokio::test(start_paused = true)]
async fn cached_attribute_hits_the_server_once_within_its_ttl() {
    let server = Scripted::start(Reply::json(serde_json::json!([1, 2]))).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));
    for _ in 0..3 {
        assert_eq!(users.user_orders(9).await.expect("ok"), [1, 2]);
    }
    assert_eq!(server.hits(), 1, "#[cached(ttl = \"5m\")]");
    users.plain(9).await.expect("ok");
    users.plain(9).await.expect("ok");
    assert_eq!(server.hits(), 3, "methods without #[cached] are not cached");

    users.fresh().user_orders(9).await.expect("ok");
    assert_eq!(server.hits(), 4, "fresh() skips the lookup");
    users.user_orders(9).await.expect("ok");
    assert_eq!(server.hits(), 4, "and stores the fresh answer");

    tokio::time::advance(Duration::from_secs(301)).await;
    users.user_orders(9).await.expect("ok");
    assert_eq!(server.hits(), 5, "expired after 5 minutes");
    users.clear_cache();
    users.user_orders(9).await.expect("ok");
    assert_eq!(server.hits(), 6, "clear_cache()");
}

#[tokio::test(start_paused = true)]
async fn timeout_attribute_bounds_the_call() {
    let server = Scripted::start(Reply::status(200).delay(Duration::from_secs(5))).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));
    let started = tokio::time::Instant::now();
    let err = users.slow().await.expect_err("too slow");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn hostile_path_values_are_refused_before_sending() {
    let server = Scripted::start(Reply::status(200)).await;
    let users = UserServiceClient::new(&sdk_for(&server.url));
    for value in ["..", ".", ""] {
        let err = users.get_user(value.into()).await.expect_err("refused");
        assert!(
            matches!(err, ServiceError::InvalidRequest { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("`id`"),
            "names the parameter: {err}"
        );
    }
    assert_eq!(
        server.hits(),
        0,
        "`/users/` (the collection) was never requested"
    );
}

/// A fake, as a user would write one for their own tests.
struct FakeUsers;

impl UserService for FakeUsers {
    async fn get_user(&self, id: String) -> ServiceResult<User> {
        Ok(User {
            id: id.len() as u64,
            name: id,
        })
    }
    async fn list_users(
        &self,
        _: u32,
        _: Option<bool>,
        _: Vec<String>,
        _: String,
    ) -> ServiceResult<Vec<User>> {
        Ok(vec![])
    }
    async fn create_user(&self, user: User, _: String) -> ServiceResult<User> {
        Ok(user)
    }
    async fn replace_user(&self, _: u64, user: User) -> ServiceResult<User> {
        Ok(user)
    }
    async fn rename_user(&self, id: u64, name: String) -> ServiceResult<User> {
        Ok(User { id, name })
    }
    async fn delete_user(&self, _: u64) -> ServiceResult<()> {
        Ok(())
    }
    async fn user_exists(&self, _: u64) -> ServiceResult<()> {
        Ok(())
    }
    async fn user_orders(&self, _: u64) -> ServiceResult<Vec<u64>> {
        Ok(vec![42])
    }
    async fn plain(&self, _: u64) -> ServiceResult<Vec<u64>> {
        Ok(vec![])
    }
    async fn slow(&self) -> ServiceResult<()> {
        Ok(())
    }
}

/// Code under test, generic over the contract.
async fn greeting(users: &impl UserService, id: &str) -> String {
    match users.get_user(id.into()).await {
        Ok(user) => format!("hello {} ({})", user.name, user.id),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test]
async fn a_fake_implements_the_trait_for_generic_code() {
    assert_eq!(greeting(&FakeUsers, "ann").await, "hello ann (3)");
    let spawned = tokio::spawn(async { FakeUsers.user_orders(1).await });
    assert_eq!(spawned.await.expect("task").expect("ok"), [42]);

    let server = Scripted::start(Reply::json(serde_json::json!({ "id": 5, "name": "bo" }))).await;
    let real = UserServiceClient::new(&sdk_for(&server.url));
    assert_eq!(greeting(&real, "5").await, "hello bo (5)");
    let spawned = tokio::spawn({
        let real = real.clone();
        async move { real.get_user("5".into()).await }
    });
    assert_eq!(
        spawned.await.expect("task").expect("ok").id,
        5,
        "generated futures are Send"
    );
}

#[test]
fn the_generated_client_is_cheap_to_clone_and_shareable() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<UserServiceClient>();
    assert_eq!(UserServiceClient::SERVICE, "user-service");
}

#[tokio::test(start_paused = true)]
async fn another_service_name_and_per_call_options() {
    let v1 = Scripted::start(Reply::json(serde_json::json!({ "id": 1, "name": "v1" }))).await;
    let v2 = Scripted::start(Reply::json(serde_json::json!({ "id": 1, "name": "v2" }))).await;
    let sdk = ServiceSdk::builder()
        .service("user-service", ServiceConfig::new().instance(&v1.url))
        .service("users-v2", ServiceConfig::new().instance(&v2.url))
        .build()
        .expect("valid");

    // The same interface, served under another name.
    let v2_users = UserServiceClient::with_service(&sdk, "users-v2");
    assert_eq!(v2_users.get_user("1".into()).await.expect("ok").name, "v2");
    assert_eq!(v1.hits(), 0);

    // A header on every call made through a view, without dropping to ad-hoc calls.
    let tenant = UserServiceClient::new(&sdk).with_header(
        http::HeaderName::from_static("x-tenant"),
        http::HeaderValue::from_static("acme"),
    );
    assert_eq!(tenant.get_user("1".into()).await.expect("ok").name, "v1");
    assert_eq!(v1.seen()[0].headers["x-tenant"], "acme");

    // A deadline for one view's calls, tighter than the method's own #[timeout("2s")].
    v1.set_fallback(Reply::json(serde_json::json!([1])).delay(Duration::from_secs(1)));
    let hurried = UserServiceClient::new(&sdk).with_timeout(Duration::from_millis(300));
    let err = hurried
        .user_orders(1)
        .await
        .expect_err("slower than 300 ms");
    assert!(err.is_timeout(), "{err:?}");
    let patient = UserServiceClient::new(&sdk);
    assert_eq!(patient.user_orders(1).await.expect("within 2 s"), [1]);
}

/// A catalog whose product lookups are cached under the reference SDK's kind of key.
#[service_interface(name = "catalog")]
pub(crate) trait Catalog {
    /// One product: cached under `product:<id>`, a missing one for 30 s.
    #[service_call(GET, "/products/<id>")]
    #[cached(ttl = "5m", key = product_key, cache_on_error = "30s")]
    async fn product(&self, id: u64, #[query] fields: Option<String>) -> ServiceResult<User>;
}

/// The cache key of a product: its id, whatever fields were asked for.
fn product_key(id: &u64, _fields: &Option<String>) -> String {
    format!("product:{id}")
}

#[tokio::test(start_paused = true)]
async fn a_key_function_names_the_entry_and_errors_are_cached_for_their_own_ttl() {
    let server = Scripted::start(Reply::json(
        serde_json::json!({ "id": 123, "name": "lamp" }),
    ))
    .await;
    let sdk = ServiceSdk::builder()
        .service("catalog", ServiceConfig::new().instance(&server.url))
        .build()
        .expect("valid");
    let catalog = CatalogClient::new(&sdk);
    catalog.product(123, None).await.expect("fetched");
    let again = catalog
        .product(123, Some("all".into()))
        .await
        .expect("cached");
    assert_eq!(again.name, "lamp");
    assert_eq!(server.hits(), 1, "one key for both queries");

    catalog.clear_cache_key("product:123");
    catalog.product(123, None).await.expect("fetched again");
    assert_eq!(server.hits(), 2, "cleared by the key the function made");

    server.set_fallback(Reply::status(404));
    for _ in 0..3 {
        let err = catalog.product(9, None).await.expect_err("404");
        assert_eq!(err.status_code(), Some(http::StatusCode::NOT_FOUND));
    }
    assert_eq!(server.hits(), 3, "the 404 is cached");
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(catalog.product(9, None).await.is_err());
    assert_eq!(
        server.hits(),
        4,
        "for 30 s, not the 5 minutes of a found product"
    );
}
