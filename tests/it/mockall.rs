//! mockall with a generated trait: `#[service_interface]` first, then
//! `#[cfg_attr(test, mockall::automock)]`, so mockall sees the trait as generated (methods
//! returning `impl Future + Send`), and an expectation returns a boxed future.

use sdk::{prelude::*, testing};

/// A user.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct User {
    /// Its id.
    pub id: u64,
}

/// The user service.
#[service_interface(name = "user-service")]
#[cfg_attr(test, mockall::automock)]
pub(crate) trait UserService {
    /// One user.
    #[service_call(GET, "/users/<id>")]
    async fn get_user(&self, id: u64) -> ServiceResult<User>;
}

async fn exists(users: &impl UserService, id: u64) -> bool {
    users.get_user(id).await.is_ok()
}

#[tokio::test]
async fn a_generated_trait_is_mocked() {
    let mut users = MockUserService::new();
    users
        .expect_get_user()
        .withf(|id| *id == 7)
        .times(1)
        .returning(|id| Box::pin(async move { Ok(User { id }) }));
    users.expect_get_user().returning(|_| {
        Box::pin(async {
            Err(testing::status_error(
                "user-service",
                http::StatusCode::NOT_FOUND,
                "",
            ))
        })
    });
    assert!(exists(&users, 7).await);
    assert!(!exists(&users, 8).await);
}
