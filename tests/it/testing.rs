//! `sdk::testing`: code that calls services, tested without a server, through the real
//! pipeline; and error values for fakes.

use std::time::Duration;

use sdk::{
    prelude::*,
    testing::{self, Reply, ScriptedTransport},
    ServiceConfig, TimeoutKind,
};

/// A user.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct User {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
}

/// The user service.
#[service_interface(name = "user-service")]
pub(crate) trait UserService {
    /// One user.
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, id: u64) -> ServiceResult<User>;

    /// Creates a user.
    #[service_call(POST, "/users")]
    async fn create_user(&self, #[body] user: User) -> ServiceResult<User>;
}

/// The code under test: it only knows the trait.
async fn greeting(users: &impl UserService, id: u64) -> String {
    match users.get_user(id).await {
        Ok(user) => format!("hello, {}", user.name),
        Err(e) if e.status_code() == Some(http::StatusCode::NOT_FOUND) => "who?".into(),
        Err(e) if e.is_timeout() => "too slow".into(),
        Err(e) if e.is_circuit_open() => "later".into(),
        Err(_) => "error".into(),
    }
}

fn ada() -> User {
    User {
        id: 7,
        name: "Ada".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_scripted_transport_runs_the_real_pipeline() {
    let transport = ScriptedTransport::new()
        .once(http::Method::GET, "/users/7", Reply::status(503))
        .on(http::Method::GET, "/users/7", Reply::json(&ada()))
        .on(
            http::Method::GET,
            "/users/8",
            Reply::json(&ada()).delay(Duration::from_secs(60)),
        )
        .once(http::Method::POST, "/users", Reply::connect_error())
        .on(
            http::Method::POST,
            "/users",
            Reply::json(&ada()).body("{\"id\":7,\"name\":\"Ada\"}"),
        );
    let sdk = transport.sdk(&["user-service"]).expect("valid");
    let users = UserServiceClient::new(&sdk);

    // The 503 is retried by the real retry layer.
    assert_eq!(greeting(&users, 7).await, "hello, Ada");
    // Unscripted: 404.
    assert_eq!(greeting(&users, 9).await, "who?");
    // The deadline fires on a slow answer (paused time: instantly).
    let quick = users.with_timeout(Duration::from_millis(500));
    assert_eq!(greeting(&quick, 8).await, "too slow");
    // A refused connection sent nothing, so even a POST is retried.
    assert_eq!(users.create_user(ada()).await.expect("retried"), ada());

    let seen = transport.requests();
    let paths: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert_eq!(
        paths,
        [
            "GET http://user-service.test/users/7",
            "GET http://user-service.test/users/7",
            "GET http://user-service.test/users/9",
            "GET http://user-service.test/users/8",
            "POST http://user-service.test/users",
            "POST http://user-service.test/users",
        ]
    );
    assert_eq!(seen[4].body, serde_json::to_vec(&ada()).expect("json"));

    // The same transport under a configuration of one's own.
    let once = ServiceSdk::builder()
        .transport(transport.clone())
        .service(
            "user-service",
            ServiceConfig::new()
                .instance("http://users.test")
                .retry(RetryConfig::none()),
        )
        .build()
        .expect("valid");
    let transport = transport.once(http::Method::GET, "/users/7", Reply::status(503));
    assert_eq!(greeting(&UserServiceClient::new(&once), 7).await, "error");
    assert_eq!(transport.requests().len(), 7, "not retried");
}

/// A fake needs no `http` or `bytes` to return the errors real calls return.
struct Failing(ServiceError);

impl UserService for Failing {
    async fn get_user(&self, _id: u64) -> ServiceResult<User> {
        Err(match &self.0 {
            ServiceError::Timeout { .. } => testing::timeout_error(
                "user-service",
                TimeoutKind::Deadline,
                Duration::from_secs(1),
            ),
            ServiceError::CircuitOpen { .. } => {
                testing::circuit_open_error("user-service", Duration::from_secs(5))
            }
            _ => testing::status_error("user-service", http::StatusCode::NOT_FOUND, "no such user"),
        })
    }

    async fn create_user(&self, _user: User) -> ServiceResult<User> {
        Err(testing::transport_error("user-service", true))
    }
}

#[tokio::test]
async fn fakes_return_the_errors_real_calls_return() {
    let not_found = testing::status_error("user-service", http::StatusCode::NOT_FOUND, "x");
    assert_eq!(greeting(&Failing(not_found), 1).await, "who?");
    let timeout = testing::timeout_error("user-service", TimeoutKind::Attempt, Duration::ZERO);
    assert_eq!(greeting(&Failing(timeout), 1).await, "too slow");
    let open = testing::circuit_open_error("user-service", Duration::ZERO);
    assert_eq!(greeting(&Failing(open), 1).await, "later");
    let err = Failing(testing::transport_error("user-service", true))
        .create_user(ada())
        .await
        .expect_err("fails");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        testing::status_error("user-service", http::StatusCode::NOT_FOUND, "no such user")
            .body()
            .map(|b| b.as_ref()),
        Some(&b"no such user"[..])
    );
}

/// A transport answering with whole bodies gets no `Host` header from the SDK (reqwest
/// writes its own; a broker has no use for one): the SDK makes one per instance only for
/// hyper-util's HTTP/1.1 client, which would otherwise format one per request. The trace
/// context still goes out.
#[tokio::test]
async fn a_custom_transport_gets_no_host_header() {
    let transport = ScriptedTransport::new().fallback(Reply::status(200));
    let sdk = ServiceSdk::builder()
        .transport(transport.clone())
        .service("svc", ServiceConfig::new().instance("http://svc.test"))
        .build()
        .expect("valid");
    let answer = sdk.get_client("svc").get("/x").response().await;
    assert_eq!(answer.expect("answered").status(), 200);
    let seen = transport.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get(http::header::HOST), None);
    assert!(seen[0].headers.contains_key("traceparent"));
}

#[tokio::test]
async fn a_custom_transports_answers_are_held_to_the_body_limit() {
    let transport = ScriptedTransport::new().fallback(Reply::status(200).body("x".repeat(100)));
    // The limit set after the transport still counts.
    let sdk = ServiceSdk::builder()
        .transport(transport)
        .transport_config(sdk::transport::TransportConfig::new().max_response_bytes(10))
        .service("svc", ServiceConfig::new().instance("http://svc.test"))
        .build()
        .expect("valid");
    let err = sdk
        .get_client("svc")
        .get("/big")
        .response()
        .await
        .expect_err("over 10 bytes");
    assert!(
        matches!(err, ServiceError::BodyTooLarge { limit: 10, .. }),
        "{err:?}"
    );
}
