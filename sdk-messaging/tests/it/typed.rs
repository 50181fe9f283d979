//! Typed message interfaces end to end on the machine's NATS and Redis: the generated client sends,
//! the generated handlers route each pattern to the user's implementation of the same
//! trait, and compile errors are spanned (UI tests in `tests/ui`).
#![cfg(feature = "nats")]
#![allow(missing_docs)]

use crate::support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sdk::{http::StatusCode, ServiceResult};
use sdk_messaging::{
    handler_error, message_interface, MessageContext, Messaging, MessagingConfig, NatsSettings,
    TransportKind,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NewUser {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserCreated {
    pub id: u64,
}

/// The user service's messages.
#[message_interface]
pub(crate) trait Users {
    /// Creates a user; answered by the user service.
    #[message_pattern("typed.user.create")]
    #[timeout("2s")]
    async fn create(&self, user: NewUser) -> ServiceResult<User>;

    /// How many users there are.
    #[message_pattern("typed.user.count")]
    #[idempotent]
    async fn count(&self) -> ServiceResult<u64>;

    /// A user was created.
    #[event_pattern("typed.user.created")]
    async fn created(&self, event: UserCreated) -> ServiceResult<()>;
}

/// The user service's implementation of the same trait.
#[derive(Default, Clone)]
struct UserService {
    users: Arc<Mutex<Vec<User>>>,
    events: Arc<Mutex<Vec<(u64, String)>>>,
}

impl Users for UserService {
    async fn create(&self, user: NewUser) -> ServiceResult<User> {
        if user.name.is_empty() {
            return Err(handler_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a user has a name",
            ));
        }
        let mut users = self.users.lock().expect("lock");
        let created = User {
            id: users.len() as u64 + 1,
            name: user.name,
        };
        users.push(created.clone());
        Ok(created)
    }

    async fn count(&self) -> ServiceResult<u64> {
        Ok(self.users.lock().expect("lock").len() as u64)
    }

    async fn created(&self, event: UserCreated) -> ServiceResult<()> {
        let context = MessageContext::current().expect("inside a handler");
        self.events
            .lock()
            .expect("lock")
            .push((event.id, context.subject.to_string()));
        Ok(())
    }
}

/// The generated client and handlers over `messaging`, for group `users-<id>`.
async fn client_and_handlers_meet(messaging: &Messaging, id: &str) {
    let service = UserService::default();
    let server = UsersHandlers::register(messaging.server(&format!("users-{id}")), service.clone())
        .start()
        .await
        .expect("started");

    let users = UsersClient::new(messaging);
    let ada = users
        .create(NewUser { name: "Ada".into() })
        .await
        .expect("created");
    assert_eq!(
        ada,
        User {
            id: 1,
            name: "Ada".into()
        }
    );
    let err = users
        .create(NewUser {
            name: String::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.status_code(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(users.count().await.expect("counted"), 1);
    users
        .created(UserCreated { id: ada.id })
        .await
        .expect("emitted");
    for _ in 0..200 {
        if !service.events.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        *service.events.lock().expect("lock"),
        [(1, "typed.user.created".to_owned())]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_generated_client_and_handlers_meet_over_nats() {
    if support::broker_at("NATS", "127.0.0.1:4222").await.is_none() {
        return;
    }
    let id = support::unique("ty");
    let settings = NatsSettings::new().streams(
        &format!("TYPED_{id}"),
        &format!("ev{id}"),
        &format!("TYPED_DEAD_{id}"),
        &format!("dead{id}"),
    );
    let config =
        MessagingConfig::new(TransportKind::Nats, "nats://127.0.0.1:4222").nats(settings.clone());
    let messaging = Messaging::connect("users", &config).await.expect("connect");
    client_and_handlers_meet(&messaging, &id).await;
    let jetstream =
        async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await.expect("nats"));
    let _ = jetstream.delete_stream(&settings.stream).await;
    let _ = jetstream.delete_stream(&settings.dead_letter_stream).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_generated_client_and_handlers_meet_over_redis() {
    if support::broker_at("Redis", "127.0.0.1:6379")
        .await
        .is_none()
    {
        return;
    }
    let id = support::unique("ty");
    let prefix = format!("sdktest{id}");
    let config = MessagingConfig::new(TransportKind::Redis, "redis://127.0.0.1:6379")
        .redis(sdk_messaging::RedisSettings::new().prefix(&prefix));
    let messaging = Messaging::connect("users", &config).await.expect("connect");
    client_and_handlers_meet(&messaging, &id).await;
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut redis, format!("{prefix}:*"))
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::AsyncCommands::del(&mut redis, keys).await;
    }
}

#[test]
fn mistakes_are_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
